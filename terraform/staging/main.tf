# The staging environment: terraform/modules/environment with staging's settings, which are
# this file. Its own root, so its own state (versions.tf), lock file and provider credentials:
# nothing planned here can touch production. Planned on pull requests by
# .github/workflows/terraform.yml; applied by the deploy job of the GitHub environment
# "staging" (deploy-environment.yml), just before it rolls out the image of the same commit.
# Staging has production's shape (three zones, three tasks, HTTPS when a domain is set),
# smaller tasks and fewer at most.

locals {
  region            = "us-east-1"
  github_repository = "OWNER/hello-birthday"
  # The account staging lives in: the provider refuses credentials of any other. null: no check.
  aws_account_id = null # "123456789012"
}

provider "aws" {
  region              = local.region
  allowed_account_ids = local.aws_account_id == null ? null : [local.aws_account_id]

  default_tags {
    tags = {
      Application = "hello-birthday"
      Environment = "staging"
      ManagedBy   = "terraform"
      Repository  = local.github_repository
    }
  }
}

variable "image_tag" {
  description = "Commit SHA of an image in ECR that the service is created with (docs/deploying.md, step 4): set the default here. Afterwards the deploy workflow owns the running image."
  type        = string
  default     = null
}

module "app" {
  source = "../modules/environment"

  environment       = "staging"
  github_repository = local.github_repository
  image_tag         = var.image_tag

  # Three zones of the region: one task, one EFS mount target and one endpoint ENI in each.
  availability_zones = ["us-east-1a", "us-east-1b", "us-east-1c"]
  vpc_cidr           = "10.10.0.0/16"
  # The app's 256 CPU / 512 MiB plus the metrics collector sidecar's 128 / 256 (docs/deploying.md,
  # "The scrape path"), rounded up to the next Fargate size.
  task_cpu    = 512
  task_memory = 1024
  min_tasks   = 3
  max_tasks   = 6

  # HTTPS: domain_name and route53_zone_id, or certificate_arn.
  # domain_name     = "hello.staging.example.com"
  # route53_zone_id = "Z0123456789ABCDEFGHIJ"

  log_retention_days    = 14
  flow_log_traffic_type = "REJECT"
  # alarm_email         = "oncall@example.com"

  # Per-client-IP budgets of the WAF, per 5 minutes (docs/operations.md, "AWS WAF": how to tell
  # whether to raise them). The defaults: 3000 PUT and 30000 GET and other requests.
  # waf_put_limit = 3000
  # waf_get_limit = 30000
}
