variable "name" {
  description = "Name of the file system (creation token and Name tag)."
  type        = string
}

variable "subnet_ids_by_az" {
  description = "The tasks' private subnets keyed by zone: one mount target in each."
  type        = map(string)

  validation {
    condition     = length(var.subnet_ids_by_az) >= 3
    error_message = "Give one subnet in each of at least three zones."
  }
}

variable "security_group_id" {
  description = "Security group of the mount targets (NFS from the tasks only)."
  type        = string
}

variable "posix_uid" {
  description = "User id every NFS operation through the access point runs as: the container's USER."
  type        = number

  validation {
    condition     = var.posix_uid > 0
    error_message = "posix_uid must not be root (0)."
  }
}

variable "posix_gid" {
  description = "Group id every NFS operation through the access point runs as: the container's group."
  type        = number

  validation {
    condition     = var.posix_gid > 0
    error_message = "posix_gid must not be root (0)."
  }
}

variable "root_directory" {
  description = "Directory on the file system that the access point exposes as the mount's root."
  type        = string
  default     = "/hello-birthday"

  validation {
    condition     = startswith(var.root_directory, "/") && var.root_directory != "/"
    error_message = "root_directory must be an absolute path below the file system root."
  }
}

variable "client_role_arns" {
  description = "IAM roles (the task role) allowed to mount and write through the access point."
  type        = list(string)
}

variable "transition_to_ia" {
  description = "When a file not accessed for this long moves to Infrequent Access storage."
  type        = string
  default     = "AFTER_30_DAYS"
}
