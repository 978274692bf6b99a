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
