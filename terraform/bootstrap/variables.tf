variable "region" {
  description = "AWS region of the state bucket and the ECR repository (the environments' region)."
  type        = string
  default     = "us-east-1"
}

variable "aws_account_id" {
  description = "The account to bootstrap; the provider refuses any other. null to skip the check."
  type        = string
  default     = null

  validation {
    condition     = var.aws_account_id == null || can(regex("^[0-9]{12}$", var.aws_account_id))
    error_message = "aws_account_id must be 12 digits."
  }
}

variable "app_name" {
  description = "Name of the app: the ECR repository's name and the prefix of every resource name."
  type        = string
  default     = "hello-birthday"
}

variable "github_repository" {
  description = "The GitHub repository (OWNER/REPO) whose workflows get roles."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must look like OWNER/REPO."
  }
}

variable "environments" {
  description = "Environments (Terraform roots and GitHub environments of the same names) that get a Terraform apply role, in promotion order."
  type        = list(string)
  default     = ["staging", "production"]
}

variable "create_github_oidc_provider" {
  description = "Create the account's token.actions.githubusercontent.com OIDC provider. Set false when the account already has one (there can be only one per URL)."
  type        = bool
  default     = true
}

variable "images_to_keep" {
  description = "How many images ECR keeps of those never deployed to an environment; older ones expire."
  type        = number
  default     = 100
}

variable "deployed_images_to_keep" {
  description = "Per environment, how many of the images deployed there ECR keeps (tag <env>-<sha>): the running one and the rollback horizon."
  type        = number
  default     = 20

  validation {
    condition     = var.deployed_images_to_keep >= 2
    error_message = "Keep at least the running image and the one before it."
  }
}
