# What the deploy workflow and docs/deploying.md read by name; everything else the environment
# module outputs is under `app` (terraform output -json app).

output "task_definition_family" {
  description = "Task definition family (the deploy workflow renders new revisions from its latest)."
  value       = module.app.task_definition_family
}

output "container_name" {
  description = "The app's container in the task definition (the deploy workflow puts each new image into it)."
  value       = module.app.container_name
}

output "github_environment_variables" {
  description = "Variables to set on the GitHub environment of the same name."
  value       = module.app.github_environment_variables
}

output "alarm_topic_arn" {
  description = "SNS topic of the alarms."
  value       = module.app.alarm_topic_arn
}

output "app" {
  description = "Every output of terraform/modules/environment (url, cluster, service, roles, log groups, EFS)."
  value       = module.app
}
