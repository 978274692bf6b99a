variable "cluster_name" {
  description = "Name of the ECS cluster; also the task definition family and the prefix of the roles and policies."
  type        = string
}

variable "service_name" {
  description = "Name of the ECS service."
  type        = string
}

variable "image" {
  description = "Image of the first task definition revision (repository URL and tag). Later revisions come from the deploy workflow."
  type        = string
}

variable "ecr_repository_arn" {
  description = "The ECR repository the execution role may pull from."
  type        = string
}

variable "container_port" {
  description = "The port the app listens on (the image's EXPOSE and LISTEN_ADDR)."
  type        = number
}

variable "cpu" {
  description = "Task CPU units (256 = 0.25 vCPU): the app and the collector sidecar together."
  type        = number
  default     = 512

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096], var.cpu)
    error_message = "cpu must be one of Fargate's sizes: 256, 512, 1024, 2048, 4096."
  }
}

variable "memory" {
  description = "Task memory in MiB, the app and the collector sidecar together; must be a valid Fargate combination with cpu."
  type        = number
  default     = 1024
}

variable "load_balancer_idle_timeout" {
  description = "Seconds the load balancer keeps an idle connection open (its idle_timeout): the app's keep-alive timeout must be longer."
  type        = number

  validation {
    condition     = var.load_balancer_idle_timeout >= 1 && var.load_balancer_idle_timeout <= 4000
    error_message = "load_balancer_idle_timeout must be 1 to 4000 seconds, the range an ALB accepts."
  }
}

variable "keep_alive_timeout_ms" {
  description = "KEEP_ALIVE_TIMEOUT_MS of the app: an idle kept-alive connection is closed after this many milliseconds. Must be longer than the load balancer's idle timeout."
  type        = number
  default     = 75000

  # AWS asks targets to keep idle connections open longer than the load balancer does: a target
  # that closes first races the load balancer reusing the connection, and the client gets a 502.
  validation {
    condition     = var.keep_alive_timeout_ms == floor(var.keep_alive_timeout_ms) && var.keep_alive_timeout_ms > var.load_balancer_idle_timeout * 1000
    error_message = "keep_alive_timeout_ms must be a whole number of milliseconds longer than the load balancer's idle timeout (load_balancer_idle_timeout * 1000): otherwise the app closes idle connections the load balancer may still reuse, and clients get 502s."
  }
}

variable "log_level" {
  description = "RUST_LOG of the app (tracing EnvFilter syntax)."
  type        = string
  default     = "info"
}

variable "log_retention_days" {
  description = "Days to keep the app's logs. They name users: keep only as long as needed."
  type        = number
  default     = 30
}

variable "desired_count" {
  description = "Tasks when the service is created; autoscaling owns the count afterwards."
  type        = number
  default     = 3
}

variable "min_capacity" {
  description = "Fewest tasks autoscaling may run: one per zone."
  type        = number
  default     = 3

  validation {
    condition     = var.min_capacity >= 3
    error_message = "min_capacity must be at least 3, one task per zone."
  }
}

variable "max_capacity" {
  description = "Most tasks autoscaling may run."
  type        = number
  default     = 12
}

variable "requests_per_task_per_minute" {
  description = "Target of the request-count scaling policy: ALB requests per task per minute."
  type        = number
  default     = 3000
}

variable "cpu_target_percent" {
  description = "Target of the CPU scaling policy: average CPU utilisation of the service."
  type        = number
  default     = 60
}

variable "private_subnet_ids" {
  description = "Subnets of the tasks, one per zone."
  type        = list(string)
}

variable "security_group_id" {
  description = "Security group of the tasks."
  type        = string
}

variable "target_group_arn" {
  description = "Target group the service registers its tasks with."
  type        = string
}

variable "alb_arn_suffix" {
  description = "ARN suffix of the load balancer, for the request-count scaling metric."
  type        = string
}

variable "target_group_arn_suffix" {
  description = "ARN suffix of the target group, for the request-count scaling metric."
  type        = string
}

variable "efs_file_system_id" {
  description = "The EFS file system mounted at /data."
  type        = string
}

variable "efs_file_system_arn" {
  description = "ARN of the EFS file system, for the task role's policy."
  type        = string
}

variable "efs_access_point_id" {
  description = "The access point the tasks mount."
  type        = string
}

variable "efs_access_point_arn" {
  description = "ARN of the access point, for the task role's policy condition."
  type        = string
}

variable "deployment_alarm_names" {
  description = "CloudWatch alarms that fail and roll back a deployment when they fire during it."
  type        = list(string)

  validation {
    condition     = length(var.deployment_alarm_names) > 0
    error_message = "Give at least one deployment alarm."
  }
}

variable "collector_image" {
  description = "The ADOT collector sidecar's image, pinned by tag, through the account's ECR pull-through cache of public.ecr.aws."
  type        = string

  validation {
    condition     = can(regex("/ecr-public/aws-observability/aws-otel-collector:v[0-9]+\\.[0-9]+\\.[0-9]+$", var.collector_image))
    error_message = "collector_image must be the pull-through cache's aws-otel-collector with a release tag (vX.Y.Z), not latest."
  }
}

variable "collector_repository_arn" {
  description = "ARN of the pull-through cache repository of the collector image (the execution role may pull and import only it)."
  type        = string
}

variable "prometheus_workspace_arn" {
  description = "The Prometheus workspace the collector remote-writes to (the task role may aps:RemoteWrite to it only)."
  type        = string
}

variable "prometheus_endpoint" {
  description = "The workspace's Prometheus endpoint, ending in /."
  type        = string

  validation {
    condition     = endswith(var.prometheus_endpoint, "/")
    error_message = "prometheus_endpoint must end in / (the workspace's prometheus_endpoint attribute does)."
  }
}
