# The staging environment: everything in terraform/modules/environment, with this file's
# variables (terraform.tfvars). Planned on pull requests by .github/workflows/terraform.yml;
# applied by the deploy job of the GitHub environment "staging" (deploy-environment.yml), just
# before it rolls out the image of the same commit.

module "app" {
  source = "../modules/environment"

  environment       = "staging"
  github_repository = var.github_repository
  image_tag         = var.image_tag

  vpc_cidr           = var.vpc_cidr
  availability_zones = var.availability_zones
  task_cpu           = var.task_cpu
  task_memory        = var.task_memory
  min_tasks          = var.min_tasks
  max_tasks          = var.max_tasks

  domain_name         = var.domain_name
  route53_zone_id     = var.route53_zone_id
  certificate_arn     = var.certificate_arn
  deletion_protection = var.deletion_protection
  access_logs_bucket  = var.access_logs_bucket

  alarm_email                        = var.alarm_email
  log_retention_days                 = var.log_retention_days
  flow_log_traffic_type              = var.flow_log_traffic_type
  metrics_scraper_security_group_ids = var.metrics_scraper_security_group_ids

  waf_put_limit = var.waf_put_limit
  waf_get_limit = var.waf_get_limit
}
