variable "name" {
  description = "Name of the load balancer and its target group (at most 32 characters)."
  type        = string

  validation {
    condition     = length(var.name) <= 32
    error_message = "Load balancer and target group names are limited to 32 characters."
  }
}

variable "vpc_id" {
  description = "The VPC of the target group."
  type        = string
}

variable "public_subnet_ids" {
  description = "Public subnets, one per zone."
  type        = list(string)
}

variable "security_group_id" {
  description = "Security group of the load balancer."
  type        = string
}

variable "container_port" {
  description = "The port the app listens on in its container."
  type        = number
}

variable "health_check_path" {
  description = "The app's readiness route, which the target group health-checks."
  type        = string
  default     = "/health"

  validation {
    condition     = startswith(var.health_check_path, "/")
    error_message = "health_check_path must start with a slash."
  }
}

variable "domain_name" {
  description = "DNS name for the service, e.g. hello.example.com. With route53_zone_id: an ACM certificate and an alias record are created."
  type        = string
  default     = null
}

variable "route53_zone_id" {
  description = "Route 53 hosted zone that holds domain_name."
  type        = string
  default     = null
}

variable "certificate_arn" {
  description = "An existing ACM certificate for the HTTPS listener, when DNS is not in Route 53. Ignored when domain_name and route53_zone_id are set."
  type        = string
  default     = null
}

variable "deletion_protection" {
  description = "Refuse to delete the load balancer until this is turned off."
  type        = bool
  default     = true
}

variable "access_logs_bucket" {
  description = "An existing S3 bucket (with the ELB log-delivery bucket policy) to receive access logs; null for none."
  type        = string
  default     = null
}

# Per-IP budgets of the WAF's rate-based rules, per 5-minute window (waf.tf). Sized against
# docs/capacity-and-costs.md: the service holds about 4,000 PUT/s (the lock stripes) and tens of
# thousands of GET/s (the tasks' CPU). One address at the PUT default sends at most ~10 PUT/s on
# average, a quarter of a percent of that, and below the ~60 PUT/s at which writes to one user
# serialise; at the GET default ~100 requests/s. A person needs a handful of requests per
# window, so both leave room for many clients behind one NAT address (offices, carrier-grade
# NAT) and for a backend that calls the API for its users.
variable "waf_put_limit" {
  description = "Most PUT requests one client IP may send in 5 minutes before the WAF answers 429 (AWS accepts 10 to 2,000,000,000)."
  type        = number
  default     = 3000

  validation {
    condition     = var.waf_put_limit == floor(var.waf_put_limit) && var.waf_put_limit >= 10 && var.waf_put_limit <= 2000000000
    error_message = "waf_put_limit must be a whole number of requests per 5 minutes between 10 and 2,000,000,000 (the range AWS WAF's rate-based rules accept)."
  }
}

variable "waf_get_limit" {
  description = "Most GET requests (and any other method but PUT) one client IP may send in 5 minutes before the WAF answers 429 (AWS accepts 10 to 2,000,000,000)."
  type        = number
  default     = 30000

  validation {
    condition     = var.waf_get_limit == floor(var.waf_get_limit) && var.waf_get_limit >= 10 && var.waf_get_limit <= 2000000000
    error_message = "waf_get_limit must be a whole number of requests per 5 minutes between 10 and 2,000,000,000 (the range AWS WAF's rate-based rules accept)."
  }
}

variable "waf_log_retention_days" {
  description = "Days to keep the WAF's log of blocked and counted requests (client addresses and paths with usernames: as long as the app's logs)."
  type        = number
  default     = 30
}
