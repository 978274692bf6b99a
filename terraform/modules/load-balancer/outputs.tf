output "url" {
  description = "Base URL of the service."
  value = (
    var.domain_name != null && local.https_enabled ? "https://${var.domain_name}" :
    local.https_enabled ? "https://${aws_lb.this.dns_name}" : "http://${aws_lb.this.dns_name}"
  )
}

output "dns_name" {
  description = "The load balancer's own DNS name."
  value       = aws_lb.this.dns_name
}

output "https_enabled" {
  description = "Whether the service is served over HTTPS."
  value       = local.https_enabled
}

output "arn_suffix" {
  description = "The load balancer's ARN suffix, the LoadBalancer dimension of its CloudWatch metrics."
  value       = aws_lb.this.arn_suffix
}

output "target_group_arn" {
  description = "The app's target group. Only known once a listener forwards to it: ECS refuses to attach a service to a target group without a load balancer."
  value       = aws_lb_target_group.app.arn
  depends_on  = [aws_lb_listener.https, aws_lb_listener.http_forward]
}

output "target_group_arn_suffix" {
  description = "The target group's ARN suffix, the TargetGroup dimension of its CloudWatch metrics."
  value       = aws_lb_target_group.app.arn_suffix
}

output "idle_timeout" {
  description = "Seconds the load balancer keeps an idle connection open; the app's keep-alive timeout must be longer."
  value       = aws_lb.this.idle_timeout
}

output "web_acl_arn" {
  description = "The WAF web ACL in front of the load balancer."
  value       = aws_wafv2_web_acl.this.arn
}

output "waf_log_group_name" {
  description = "CloudWatch log group of the requests the WAF blocked or counted."
  value       = aws_cloudwatch_log_group.waf.name
}
