output "topic_arn" {
  description = "SNS topic every alarm notifies."
  value       = aws_sns_topic.alarms.arn
}

output "deployment_alarm_names" {
  description = "Alarms that fail and roll back an ECS deployment when they fire during it."
  value       = [aws_cloudwatch_metric_alarm.http_5xx_rate.alarm_name]
}

output "alarm_names" {
  description = "Every alarm."
  value = [
    aws_cloudwatch_metric_alarm.http_5xx_rate.alarm_name,
    aws_cloudwatch_metric_alarm.unhealthy_targets.alarm_name,
    aws_cloudwatch_metric_alarm.p99_latency.alarm_name,
    aws_cloudwatch_metric_alarm.running_below_desired.alarm_name,
  ]
}

output "prometheus_workspace_arn" {
  description = "ARN of the Prometheus workspace (the collectors' aps:RemoteWrite is scoped to it)."
  value       = aws_prometheus_workspace.this.arn
}

output "prometheus_workspace_id" {
  description = "ID of the Prometheus workspace."
  value       = aws_prometheus_workspace.this.id
}

output "prometheus_endpoint" {
  description = "The workspace's Prometheus endpoint (ends in /); remote write is api/v1/remote_write under it, queries api/v1/query."
  value       = aws_prometheus_workspace.this.prometheus_endpoint
}
