# One complete environment of hello-birthday: network, storage, load balancer, service, alarms
# and the deploy role, wired together. terraform/staging and terraform/production each call
# this module once with their own variables, so the two cannot drift apart in shape.
#
# The facts below are the app's, not choices: tests/infra.rs checks each against the Dockerfile
# and the source (src/routes/health.rs, src/configuration.rs).

locals {
  name = "${var.app_name}-${var.environment}"

  # The image's EXPOSE and LISTEN_ADDR port.
  container_port = 8080
  # The app's readiness route (GET /health, alias of /health/ready): 503 while the data
  # directory cannot be written or the task is shutting down.
  readiness_path = "/health"
  # The image's USER (distroless nonroot). Every file on EFS is created as this user.
  container_uid = 65532
  container_gid = 65532

  # The ADOT collector sidecar's release (public.ecr.aws/aws-observability/aws-otel-collector),
  # pulled through the account's ECR pull-through cache (terraform/bootstrap, prefix
  # ecr-public): the tasks reach ECR through endpoints but nothing on the internet.
  collector_version    = "v0.43.3"
  collector_repository = "ecr-public/aws-observability/aws-otel-collector"
}

data "aws_region" "current" {}

data "aws_caller_identity" "current" {}

# Created once for both environments by terraform/bootstrap: production runs the very image
# that staging ran.
data "aws_ecr_repository" "app" {
  name = var.ecr_repository_name
}

module "network" {
  source = "../network"

  name                               = local.name
  vpc_cidr                           = var.vpc_cidr
  availability_zones                 = var.availability_zones
  container_port                     = local.container_port
  metrics_scraper_security_group_ids = var.metrics_scraper_security_group_ids
  flow_log_traffic_type              = var.flow_log_traffic_type
}

module "storage" {
  source = "../storage"

  name              = local.name
  subnet_ids_by_az  = module.network.private_subnet_ids_by_az
  security_group_id = module.network.efs_security_group_id
  posix_uid         = local.container_uid
  posix_gid         = local.container_gid
  client_role_arns  = [module.service.task_role_arn]
}

module "load_balancer" {
  source = "../load-balancer"

  name                = local.name
  vpc_id              = module.network.vpc_id
  public_subnet_ids   = module.network.public_subnet_ids
  security_group_id   = module.network.alb_security_group_id
  container_port      = local.container_port
  health_check_path   = local.readiness_path
  domain_name         = var.domain_name
  route53_zone_id     = var.route53_zone_id
  certificate_arn     = var.certificate_arn
  deletion_protection = var.deletion_protection
  access_logs_bucket  = var.access_logs_bucket

  waf_put_limit = var.waf_put_limit
  waf_get_limit = var.waf_get_limit
  # The WAF log names users (in paths) as the app's logs do: kept as long.
  waf_log_retention_days = var.log_retention_days
}

module "service" {
  source = "../service"

  cluster_name       = local.name
  service_name       = var.app_name
  image              = "${data.aws_ecr_repository.app.repository_url}:${var.image_tag}"
  ecr_repository_arn = data.aws_ecr_repository.app.arn
  container_port     = local.container_port
  cpu                = var.task_cpu
  memory             = var.task_memory
  log_level          = var.log_level
  log_retention_days = var.log_retention_days

  # The app must keep idle connections open longer than the load balancer does: the service
  # module refuses a keep-alive timeout that is not above this very load balancer's.
  keep_alive_timeout_ms      = var.keep_alive_timeout_ms
  load_balancer_idle_timeout = module.load_balancer.idle_timeout

  desired_count = var.min_tasks
  min_capacity  = var.min_tasks
  max_capacity  = var.max_tasks

  private_subnet_ids      = module.network.private_subnet_ids
  security_group_id       = module.network.tasks_security_group_id
  target_group_arn        = module.load_balancer.target_group_arn
  alb_arn_suffix          = module.load_balancer.arn_suffix
  target_group_arn_suffix = module.load_balancer.target_group_arn_suffix

  efs_file_system_id   = module.storage.file_system_id
  efs_file_system_arn  = module.storage.file_system_arn
  efs_access_point_id  = module.storage.access_point_id
  efs_access_point_arn = module.storage.access_point_arn

  deployment_alarm_names = module.alarms.deployment_alarm_names

  collector_image          = "${data.aws_caller_identity.current.account_id}.dkr.ecr.${data.aws_region.current.region}.amazonaws.com/${local.collector_repository}:${local.collector_version}"
  collector_repository_arn = "arn:aws:ecr:${data.aws_region.current.region}:${data.aws_caller_identity.current.account_id}:repository/${local.collector_repository}"
  prometheus_workspace_arn = module.alarms.prometheus_workspace_arn
  prometheus_endpoint      = module.alarms.prometheus_endpoint
}

module "alarms" {
  source = "../alarms"

  name                    = local.name
  alb_arn_suffix          = module.load_balancer.arn_suffix
  target_group_arn_suffix = module.load_balancer.target_group_arn_suffix
  # The same strings the service module names its cluster and service with (not its outputs:
  # the service refers to these alarms, so they cannot wait for it).
  cluster_name = local.name
  service_name = var.app_name
  alarm_email  = var.alarm_email
  # The very file promtool tests (monitoring/tests.yml), not a copy.
  prometheus_rules = file("${path.module}/../../../monitoring/rules.yml")
}

module "ci_access" {
  source = "../ci-access"

  name                     = local.name
  github_repository        = var.github_repository
  github_environment       = var.environment
  github_oidc_provider_arn = "arn:aws:iam::${data.aws_caller_identity.current.account_id}:oidc-provider/token.actions.githubusercontent.com"
  cluster_name             = module.service.cluster_name
  service_name             = module.service.service_name
  task_definition_family   = module.service.task_definition_family
  passable_role_arns       = [module.service.task_role_arn, module.service.execution_role_arn]
  ecr_repository_arn       = data.aws_ecr_repository.app.arn
}
