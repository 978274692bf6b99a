output "state_bucket" {
  description = "S3 bucket of the Terraform state (repository variable TF_STATE_BUCKET; backend-config bucket=)."
  value       = aws_s3_bucket.state.bucket
}

output "ecr_repository_url" {
  description = "The image repository."
  value       = aws_ecr_repository.app.repository_url
}

output "github_oidc_provider_arn" {
  description = "The account's GitHub Actions OIDC provider."
  value       = local.oidc_provider_arn
}

output "image_push_role_arn" {
  description = "Role of the deploy workflow's build job (repository variable AWS_IMAGE_PUSH_ROLE_ARN)."
  value       = aws_iam_role.image_push.arn
}

output "terraform_plan_role_arn" {
  description = "Role of terraform.yml's plan job (repository variable AWS_TERRAFORM_PLAN_ROLE_ARN)."
  value       = aws_iam_role.terraform_plan.arn
}

output "terraform_apply_role_arns" {
  description = "Role that applies Terraform in each environment's deploy job (environment variable AWS_TERRAFORM_APPLY_ROLE_ARN)."
  value       = { for env, role in aws_iam_role.terraform_apply : env => role.arn }
}

output "github_repository_variables" {
  description = "Variables to set on the GitHub repository (Settings > Secrets and variables > Actions > Variables)."
  value = {
    AWS_REGION                  = data.aws_region.current.region
    TF_STATE_BUCKET             = aws_s3_bucket.state.bucket
    ECR_REPOSITORY              = aws_ecr_repository.app.name
    AWS_IMAGE_PUSH_ROLE_ARN     = aws_iam_role.image_push.arn
    AWS_TERRAFORM_PLAN_ROLE_ARN = aws_iam_role.terraform_plan.arn
  }
}
