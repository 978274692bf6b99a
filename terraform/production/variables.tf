variable "region" {
  description = "AWS region of the environment."
  type        = string
  default     = "us-east-1"
}

variable "aws_account_id" {
  description = "The account this environment lives in; the provider refuses any other. null to skip the check."
  type        = string
  default     = null

  validation {
    condition     = var.aws_account_id == null || can(regex("^[0-9]{12}$", var.aws_account_id))
    error_message = "aws_account_id must be 12 digits."
  }
}

variable "github_repository" {
  description = "The GitHub repository (OWNER/REPO) that deploys this environment."
  type        = string
}

variable "image_tag" {
  description = "Commit SHA of an image in ECR that the service is created with (README, \"Deploying to AWS\")."
  type        = string
}

variable "availability_zones" {
  description = "Availability zones of the region to run in: three, one task per zone."
  type        = list(string)

  validation {
    condition     = alltrue([for az in var.availability_zones : startswith(az, var.region)])
    error_message = "Every availability zone must be in var.region."
  }
}

variable "vpc_cidr" {
  description = "The environment's VPC range (/16)."
  type        = string
}

variable "task_cpu" {
  description = "CPU units per task (256 = 0.25 vCPU)."
  type        = number
}

variable "task_memory" {
  description = "Memory per task in MiB."
  type        = number
}

variable "min_tasks" {
  description = "Tasks at rest and the autoscaling minimum: one per zone."
  type        = number
  default     = 3
}

variable "max_tasks" {
  description = "Autoscaling maximum."
  type        = number
}

variable "domain_name" {
  description = "DNS name of the service (HTTPS); null for plain HTTP on the load balancer's name (demo only)."
  type        = string
  default     = null
}

variable "route53_zone_id" {
  description = "Route 53 hosted zone of domain_name."
  type        = string
  default     = null
}

variable "certificate_arn" {
  description = "Existing ACM certificate, when DNS is not in Route 53."
  type        = string
  default     = null
}

variable "deletion_protection" {
  description = "Protect the load balancer from deletion."
  type        = bool
  default     = true
}

variable "access_logs_bucket" {
  description = "Existing S3 bucket (with the ELB log-delivery policy) for load balancer access logs; null for none."
  type        = string
  default     = null
}

variable "alarm_email" {
  description = "Address subscribed to the alarm topic; null for none."
  type        = string
  default     = null
}

variable "log_retention_days" {
  description = "Days to keep the app's logs (they name users)."
  type        = number
  default     = 30
}

variable "flow_log_traffic_type" {
  description = "VPC Flow Logs traffic type: REJECT, ACCEPT or ALL."
  type        = string
  default     = "REJECT"
}

variable "metrics_scraper_security_group_ids" {
  description = "Security groups allowed to scrape /metrics on the tasks."
  type        = list(string)
  default     = []
}

variable "waf_put_limit" {
  description = "PUT requests one client IP may send per 5 minutes before the WAF answers 429 (docs/operations.md, \"AWS WAF\")."
  type        = number
  default     = 3000
}

variable "waf_get_limit" {
  description = "GET (and other non-PUT) requests one client IP may send per 5 minutes before the WAF answers 429."
  type        = number
  default     = 30000
}
