variable "environment" {
  description = "Environment name; also the GitHub environment whose jobs may deploy it."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,15}$", var.environment))
    error_message = "environment must be 2-16 lowercase letters, digits or dashes."
  }
}

variable "app_name" {
  description = "Name of the app: the ECS service's name and the prefix of every resource name."
  type        = string
  default     = "hello-birthday"
}

variable "github_repository" {
  description = "The GitHub repository (OWNER/REPO) that deploys this environment."
  type        = string
}

variable "ecr_repository_name" {
  description = "The ECR repository created by terraform/bootstrap."
  type        = string
  default     = "hello-birthday"
}

variable "image_tag" {
  description = "Commit SHA of an image in ECR for the task definition revision Terraform registers. Only the revision the service is created with runs it: afterwards the deploy workflow owns the image."
  type        = string

  validation {
    condition     = can(regex("^[0-9a-f]{40}$", var.image_tag))
    error_message = "image_tag must be the full commit SHA of an image the deploy workflow pushed (README, \"Deploying to AWS\")."
  }
}

variable "vpc_cidr" {
  description = "The environment's VPC range (/16)."
  type        = string

  validation {
    condition     = can(cidrnetmask(var.vpc_cidr)) && tonumber(split("/", var.vpc_cidr)[1]) == 16
    error_message = "The VPC must be a /16: the network module carves three /24 public and three /20 private subnets from it."
  }
}

variable "availability_zones" {
  description = "Availability zones of the region to run in (three): one task, one mount target and one endpoint ENI per zone."
  type        = list(string)

  validation {
    condition     = length(distinct(var.availability_zones)) == 3 && length(var.availability_zones) == 3
    error_message = "An environment runs in three distinct availability zones (one task, mount target and endpoint ENI in each): losing one leaves two serving."
  }
  validation {
    condition     = alltrue([for az in var.availability_zones : startswith(az, data.aws_region.current.region)])
    error_message = "Every availability zone must be in the provider's region."
  }
}

variable "task_cpu" {
  description = "CPU units per task (256 = 0.25 vCPU): the app's 256 plus the collector sidecar's 128, rounded up to a Fargate size."
  type        = number
  default     = 512
}

variable "task_memory" {
  description = "Memory per task in MiB: the app's 512 plus the collector sidecar's 256, rounded up to a Fargate size."
  type        = number
  default     = 1024

  validation {
    condition = contains(lookup({
      "256"  = [512, 1024, 2048]
      "512"  = [1024, 2048, 3072, 4096]
      "1024" = [2048, 3072, 4096, 5120, 6144, 7168, 8192]
      "2048" = [for gb in range(4, 17) : gb * 1024]
      "4096" = [for gb in range(8, 31) : gb * 1024]
    }, tostring(var.task_cpu), []), var.task_memory)
    error_message = "task_cpu and task_memory must be a combination Fargate offers, or registering the task definition fails at apply time."
  }
}

variable "min_tasks" {
  description = "Tasks at rest and the autoscaling minimum: one per zone."
  type        = number
  default     = 3

  validation {
    condition     = var.min_tasks >= length(var.availability_zones)
    error_message = "An environment keeps at least one task per zone."
  }
}

variable "max_tasks" {
  description = "Autoscaling maximum."
  type        = number
  default     = 12

  validation {
    condition     = var.max_tasks >= var.min_tasks
    error_message = "Autoscaling's maximum must not be below min_tasks."
  }
}

variable "log_level" {
  description = "RUST_LOG of the app."
  type        = string
  default     = "info"
}

variable "keep_alive_timeout_ms" {
  description = "KEEP_ALIVE_TIMEOUT_MS of the app (its default, 75000): idle kept-alive connections are closed after this long. Must be above the load balancer's idle timeout (60 s)."
  type        = number
  default     = 75000

  # Checked against the load balancer this environment actually builds (its idle_timeout
  # output), so raising the idle timeout there without the keep-alive here fails the plan.
  validation {
    condition     = var.keep_alive_timeout_ms > module.load_balancer.idle_timeout * 1000
    error_message = "keep_alive_timeout_ms must be longer than the load balancer's idle timeout: AWS asks targets to keep idle connections open longer than the load balancer, or clients get 502s."
  }
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

variable "log_retention_days" {
  description = "Days to keep the app's logs (they name users)."
  type        = number
  default     = 30
}

variable "domain_name" {
  description = "DNS name of the service; with route53_zone_id, HTTPS with an ACM certificate and an alias record."
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
  description = "Protect the load balancer from deletion (always, in staging and production)."
  type        = bool
  default     = true

  validation {
    condition     = var.deletion_protection || !contains(["staging", "production"], var.environment)
    error_message = "The load balancer of staging and production must be protected from deletion."
  }
}

variable "access_logs_bucket" {
  description = "Existing S3 bucket for load balancer access logs; null for none."
  type        = string
  default     = null
}

variable "alarm_email" {
  description = "Address subscribed to the alarm topic; null for none."
  type        = string
  default     = null
}

variable "metrics_scraper_security_group_ids" {
  description = "Security groups allowed to scrape /metrics on the tasks."
  type        = list(string)
  default     = []
}

variable "flow_log_traffic_type" {
  description = "VPC Flow Logs traffic type: REJECT, ACCEPT or ALL."
  type        = string
  default     = "REJECT"
}
