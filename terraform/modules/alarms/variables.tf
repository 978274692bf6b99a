variable "name" {
  description = "Prefix of the topic and alarm names."
  type        = string
}

variable "alb_arn_suffix" {
  description = "ARN suffix of the load balancer (the LoadBalancer metric dimension)."
  type        = string
}

variable "target_group_arn_suffix" {
  description = "ARN suffix of the target group (the TargetGroup metric dimension)."
  type        = string
}

variable "cluster_name" {
  description = "ECS cluster name (Container Insights dimension)."
  type        = string
}

variable "service_name" {
  description = "ECS service name (Container Insights dimension)."
  type        = string
}

variable "alarm_email" {
  description = "Address subscribed to the alarm topic; null for none (subscribe a pager or chat integration instead)."
  type        = string
  default     = null
}

variable "max_5xx_percent" {
  description = "Alarm when more than this percentage of requests get a 5xx."
  type        = number
  default     = 5
}

variable "max_p99_seconds" {
  description = "Alarm when the p99 target response time exceeds this many seconds. Requests take milliseconds; the app's lock timeout is 2 s."
  type        = number
  default     = 1
}

variable "prometheus_rules" {
  description = "Prometheus rules (recording rules and alerts) the workspace evaluates: the text of monitoring/rules.yml."
  type        = string
}

variable "prometheus_log_retention_days" {
  description = "Days to keep the workspace's rule-evaluation and Alertmanager logs."
  type        = number
  default     = 30
}
