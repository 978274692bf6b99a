output "cluster_name" {
  description = "The ECS cluster."
  value       = aws_ecs_cluster.this.name
}

output "cluster_arn" {
  description = "ARN of the ECS cluster."
  value       = aws_ecs_cluster.this.arn
}

output "service_name" {
  description = "The ECS service."
  value       = aws_ecs_service.app.name
}

output "service_arn" {
  description = "ARN of the ECS service (the deploy role may update only this one)."
  value       = aws_ecs_service.app.id
}

output "task_definition_family" {
  description = "Family the deploy workflow renders new revisions from."
  value       = aws_ecs_task_definition.app.family
}

output "container_name" {
  description = "Name of the app's container in the task definition."
  value       = local.container_name
}

output "task_role_arn" {
  description = "Role the app runs as."
  value       = aws_iam_role.task.arn
}

output "execution_role_arn" {
  description = "Role ECS starts the tasks with."
  value       = aws_iam_role.execution.arn
}

output "log_group_name" {
  description = "CloudWatch log group of the app."
  value       = aws_cloudwatch_log_group.app.name
}
