output "url" {
  description = "Base URL of the service (GitHub environment variable APP_URL)."
  value       = module.load_balancer.url
}

output "load_balancer_dns_name" {
  description = "The load balancer's DNS name (point a CNAME here when DNS is not in Route 53)."
  value       = module.load_balancer.dns_name
}

output "ecr_repository_url" {
  description = "Where images are pushed (repository variable ECR_REPOSITORY is its last path segment)."
  value       = data.aws_ecr_repository.app.repository_url
}

output "cluster_name" {
  description = "ECS cluster (GitHub environment variable ECS_CLUSTER)."
  value       = module.service.cluster_name
}

output "service_name" {
  description = "ECS service (GitHub environment variable ECS_SERVICE)."
  value       = module.service.service_name
}

output "task_definition_family" {
  description = "Task definition family (the deploy workflow renders new revisions from its latest, read with terraform output)."
  value       = module.service.task_definition_family
}

output "container_name" {
  description = "The app's container in the task definition (the deploy workflow reads it with terraform output)."
  value       = module.service.container_name
}

output "deploy_role_arn" {
  description = "Role the deploy workflow assumes (GitHub environment variable AWS_DEPLOY_ROLE_ARN)."
  value       = module.ci_access.role_arn
}

output "task_role_arn" {
  description = "Role the app runs as."
  value       = module.service.task_role_arn
}

output "execution_role_arn" {
  description = "Role ECS starts tasks with."
  value       = module.service.execution_role_arn
}

output "log_group_name" {
  description = "CloudWatch log group of the app."
  value       = module.service.log_group_name
}

output "waf_log_group_name" {
  description = "CloudWatch log group of the requests the WAF blocked or counted."
  value       = module.load_balancer.waf_log_group_name
}

output "alarm_topic_arn" {
  description = "SNS topic of the alarms: subscribe on-call here."
  value       = module.alarms.topic_arn
}

output "efs_file_system_id" {
  description = "The EFS file system holding the data."
  value       = module.storage.file_system_id
}

output "github_environment_variables" {
  description = "Variables to set on this GitHub environment (Settings > Environments)."
  value = {
    APP_URL             = module.load_balancer.url
    AWS_DEPLOY_ROLE_ARN = module.ci_access.role_arn
    ECS_CLUSTER         = module.service.cluster_name
    ECS_SERVICE         = module.service.service_name
  }
}
