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
