variable "name" {
  description = "Prefix of every resource name, e.g. hello-birthday-production."
  type        = string
}

variable "vpc_cidr" {
  description = "The VPC's IPv4 range; a /16 leaves room for three /24 public and three /20 private subnets."
  type        = string
  default     = "10.0.0.0/16"

  validation {
    condition     = can(cidrnetmask(var.vpc_cidr)) && tonumber(split("/", var.vpc_cidr)[1]) <= 16
    error_message = "vpc_cidr must be an IPv4 CIDR block of /16 or larger."
  }
}

variable "availability_zones" {
  description = "Availability zones (names, e.g. us-east-1a) to spread subnets over: one task, one EFS mount target and one endpoint ENI per zone."
  type        = list(string)

  validation {
    # Three is the point: losing one zone leaves two serving. More is allowed, fewer is not.
    condition     = length(distinct(var.availability_zones)) == length(var.availability_zones) && length(var.availability_zones) >= 3 && length(var.availability_zones) <= 6
    error_message = "Give 3 to 6 distinct availability zones."
  }
}

variable "container_port" {
  description = "The port the app listens on in its container (the image's EXPOSE)."
  type        = number
}

variable "metrics_scraper_security_group_ids" {
  description = "Security groups (e.g. of a Prometheus in the VPC) allowed to scrape /metrics on the tasks' container port."
  type        = list(string)
  default     = []
}

variable "flow_log_traffic_type" {
  description = "Which flows VPC Flow Logs records: REJECT (cheap, shows blocked attempts), ACCEPT or ALL."
  type        = string
  default     = "REJECT"

  validation {
    condition     = contains(["ACCEPT", "REJECT", "ALL"], var.flow_log_traffic_type)
    error_message = "flow_log_traffic_type must be ACCEPT, REJECT or ALL."
  }
}

variable "flow_log_retention_days" {
  description = "Days to keep VPC flow logs."
  type        = number
  default     = 90
}
