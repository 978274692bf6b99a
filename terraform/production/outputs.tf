output "url" {
  description = "Base URL of the service."
  value       = module.app.url
}

output "load_balancer_dns_name" {
  description = "The load balancer's DNS name."
  value       = module.app.load_balancer_dns_name
}

output "ecr_repository_url" {
  description = "The ECR repository the images come from."
  value       = module.app.ecr_repository_url
}

output "cluster_name" {
  description = "ECS cluster."
  value       = module.app.cluster_name
}

output "service_name" {
  description = "ECS service."
  value       = module.app.service_name
}

output "task_definition_family" {
  description = "Task definition family (the deploy workflow renders new revisions from its latest)."
  value       = module.app.task_definition_family
}

output "container_name" {
  description = "The app's container in the task definition (the deploy workflow puts each new image into it)."
  value       = module.app.container_name
}

output "deploy_role_arn" {
  description = "Role the deploy workflow assumes."
  value       = module.app.deploy_role_arn
}

output "task_role_arn" {
  description = "Role the app runs as."
  value       = module.app.task_role_arn
}

output "execution_role_arn" {
  description = "Role ECS starts tasks with."
  value       = module.app.execution_role_arn
}

output "log_group_name" {
  description = "CloudWatch log group of the app."
  value       = module.app.log_group_name
}

output "waf_log_group_name" {
  description = "CloudWatch log group of the requests the WAF blocked or counted."
  value       = module.app.waf_log_group_name
}

output "alarm_topic_arn" {
  description = "SNS topic of the alarms."
  value       = module.app.alarm_topic_arn
}

output "efs_file_system_id" {
  description = "The EFS file system holding the data."
  value       = module.app.efs_file_system_id
}

output "github_environment_variables" {
  description = "Variables to set on the GitHub environment of the same name."
  value       = module.app.github_environment_variables
}
