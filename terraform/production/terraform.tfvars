# Production: three zones, at least three tasks, HTTPS (set domain_name and route53_zone_id,
# or certificate_arn, before serving real users: without them the ALB serves plain HTTP).

github_repository = "OWNER/hello-birthday"
# aws_account_id  = "123456789012"
region = "us-east-1"
# Three zones of the region: one task, one EFS mount target and one endpoint ENI in each.
availability_zones = ["us-east-1a", "us-east-1b", "us-east-1c"]

# The commit SHA of an image already in ECR (README, "Deploying to AWS", step 4). It only
# matters when the service is created; the Deploy workflow owns the running image afterwards.
# image_tag = "0123456789abcdef0123456789abcdef01234567"

vpc_cidr    = "10.20.0.0/16"
task_cpu    = 512
task_memory = 1024
min_tasks   = 3
max_tasks   = 12

# domain_name     = "hello.example.com"
# route53_zone_id = "Z0123456789ABCDEFGHIJ"

deletion_protection   = true
log_retention_days    = 30
flow_log_traffic_type = "ALL"
# alarm_email         = "oncall@example.com"

# Per-client-IP budgets of the WAF, per 5 minutes (docs/operations.md, "AWS WAF": how to tell
# whether to raise them). The defaults: 3000 PUT and 30000 GET and other requests.
# waf_put_limit = 3000
# waf_get_limit = 30000
