variable "name" {
  description = "Prefix of the role name, e.g. hello-birthday-production."
  type        = string
}

variable "github_repository" {
  description = "The GitHub repository (OWNER/REPO) whose workflows may deploy."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must look like OWNER/REPO."
  }
}

variable "github_environment" {
  description = "The GitHub environment whose jobs may assume the role (its protection rules gate the deploy)."
  type        = string
}

variable "github_oidc_provider_arn" {
  description = "ARN of the token.actions.githubusercontent.com OIDC provider (created by terraform/bootstrap)."
  type        = string
}

variable "cluster_name" {
  description = "ECS cluster of the service."
  type        = string
}

variable "service_name" {
  description = "The one ECS service the role may update."
  type        = string
}

variable "task_definition_family" {
  description = "The task definition family whose new revisions the role registers (and tags)."
  type        = string
}

variable "passable_role_arns" {
  description = "The task and execution roles, which a new task definition revision names and ECS must be passed."
  type        = list(string)
}

variable "ecr_repository_arn" {
  description = "The image repository: the role adds the <environment>-<sha> tag to each image it deployed (bootstrap/ecr.tf keeps those)."
  type        = string
}
