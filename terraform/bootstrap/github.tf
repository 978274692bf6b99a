# GitHub Actions gets AWS access through OIDC only: each job asks GitHub for a token naming
# its repository and ref or environment, and STS swaps it for a role's short-lived
# credentials. No AWS keys are stored in GitHub.
#
# Which job may assume which role is decided by the token's `sub` claim:
#
#   role                             sub                                    used by
#   <app>-image-push                 repo:R:ref:refs/heads/main             deploy.yml, build job
#   <app>-terraform-plan             repo:R:pull_request                    terraform.yml, plan job
#   <app>-terraform-apply-<env>      repo:R:environment:<env>               terraform.yml, apply jobs
#   <app>-<env>-deploy (per env,     repo:R:environment:<env>               deploy.yml, deploy jobs
#     in terraform/modules/ci-access)
#
# A job that names an environment always presents the environment form, so the GitHub
# environments' protection rules (deployments from main only; required reviewers for
# production) gate the apply and deploy roles.

locals {
  oidc_provider_arn = (
    var.create_github_oidc_provider
    ? aws_iam_openid_connect_provider.github[0].arn
    : "arn:aws:iam::${data.aws_caller_identity.current.account_id}:oidc-provider/token.actions.githubusercontent.com"
  )
  repo = var.github_repository
}

# AWS trusts GitHub's OIDC endpoint through its own root CAs; no thumbprint needed.
resource "aws_iam_openid_connect_provider" "github" {
  count = var.create_github_oidc_provider ? 1 : 0

  url            = "https://token.actions.githubusercontent.com"
  client_id_list = ["sts.amazonaws.com"]
}

data "aws_iam_policy_document" "github_trust" {
  for_each = merge(
    { image_push = ["repo:${local.repo}:ref:refs/heads/main"] },
    { terraform_plan = ["repo:${local.repo}:pull_request"] },
    { for env in var.environments : "terraform_apply_${env}" => ["repo:${local.repo}:environment:${env}"] },
  )

  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [local.oidc_provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:aud"
      values   = ["sts.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:sub"
      values   = each.value
    }
  }
}

# ---------------------------------------------------------------------------------------------
# Image push: the deploy workflow's build job pushes one image per commit, and nothing else.

resource "aws_iam_role" "image_push" {
  name               = "${var.app_name}-image-push"
  description        = "GitHub Actions (main) pushes hello-birthday images to ECR"
  assume_role_policy = data.aws_iam_policy_document.github_trust["image_push"].json
}

resource "aws_iam_role_policy" "image_push" {
  name   = "push-images"
  role   = aws_iam_role.image_push.id
  policy = data.aws_iam_policy_document.image_push.json
}

data "aws_iam_policy_document" "image_push" {
  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"] # cannot be scoped to a repository
    resources = ["*"]
  }
  statement {
    sid = "PushToTheAppRepository"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:CompleteLayerUpload",
      "ecr:DescribeImages",
      "ecr:GetDownloadUrlForLayer",
      "ecr:InitiateLayerUpload",
      "ecr:PutImage",
      "ecr:UploadLayerPart",
    ]
    resources = [aws_ecr_repository.app.arn]
  }
}

# ---------------------------------------------------------------------------------------------
# Terraform plan on pull requests: read everything, write only lock files in the state bucket.
# Only pull requests from branches of this repository get an OIDC token; forks get none.

resource "aws_iam_role" "terraform_plan" {
  name               = "${var.app_name}-terraform-plan"
  description        = "GitHub Actions (pull requests) plans the hello-birthday Terraform roots"
  assume_role_policy = data.aws_iam_policy_document.github_trust["terraform_plan"].json
}

resource "aws_iam_role_policy_attachment" "terraform_plan_read_only" {
  role       = aws_iam_role.terraform_plan.name
  policy_arn = "arn:aws:iam::aws:policy/ReadOnlyAccess"
}

resource "aws_iam_role_policy" "terraform_plan_lock" {
  name   = "state-lock-files"
  role   = aws_iam_role.terraform_plan.id
  policy = data.aws_iam_policy_document.terraform_plan_lock.json
}

data "aws_iam_policy_document" "terraform_plan_lock" {
  statement {
    sid       = "TakeAndReleaseStateLocks"
    actions   = ["s3:PutObject", "s3:DeleteObject"]
    resources = ["${aws_s3_bucket.state.arn}/*.tflock"]
  }
}

# ---------------------------------------------------------------------------------------------
# Terraform apply, one role per environment. PowerUserAccess (everything but IAM and account
# management) plus IAM on the environment's own roles (name prefix <app>-<env>-) and the
# service-linked roles ECS, ELB, autoscaling and EFS create on first use.
#
# This is administrator-equivalent within the account, as any role that can create IAM roles
# is; the GitHub environment's protection rules are what guard it. Separate AWS accounts per
# environment are the stronger isolation (README).

resource "aws_iam_role" "terraform_apply" {
  for_each = toset(var.environments)

  name               = "${var.app_name}-terraform-apply-${each.key}"
  description        = "GitHub Actions (environment ${each.key}) applies terraform/${each.key}"
  assume_role_policy = data.aws_iam_policy_document.github_trust["terraform_apply_${each.key}"].json
}

resource "aws_iam_role_policy_attachment" "terraform_apply_power_user" {
  for_each = aws_iam_role.terraform_apply

  role       = each.value.name
  policy_arn = "arn:aws:iam::aws:policy/PowerUserAccess"
}

resource "aws_iam_role_policy" "terraform_apply_iam" {
  for_each = aws_iam_role.terraform_apply

  name   = "manage-environment-roles"
  role   = each.value.id
  policy = data.aws_iam_policy_document.terraform_apply_iam[each.key].json
}

data "aws_iam_policy_document" "terraform_apply_iam" {
  for_each = toset(var.environments)

  statement {
    sid = "TheEnvironmentsOwnRoles"
    actions = [
      "iam:CreateRole",
      "iam:DeleteRole",
      "iam:GetRole",
      "iam:UpdateRole",
      "iam:UpdateRoleDescription",
      "iam:UpdateAssumeRolePolicy",
      "iam:TagRole",
      "iam:UntagRole",
      "iam:ListRoleTags",
      "iam:PutRolePolicy",
      "iam:GetRolePolicy",
      "iam:DeleteRolePolicy",
      "iam:ListRolePolicies",
      "iam:ListAttachedRolePolicies",
      "iam:ListInstanceProfilesForRole",
      "iam:PassRole",
    ]
    resources = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:role/${var.app_name}-${each.key}-*"]
  }

  statement {
    sid       = "ServiceLinkedRolesOnFirstUse"
    actions   = ["iam:CreateServiceLinkedRole"]
    resources = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:role/aws-service-role/*"]
    condition {
      test     = "StringEquals"
      variable = "iam:AWSServiceName"
      values = [
        "ecs.amazonaws.com",
        "elasticloadbalancing.amazonaws.com",
        "ecs.application-autoscaling.amazonaws.com",
        "elasticfilesystem.amazonaws.com",
      ]
    }
  }

  # EFS automatic backups (aws_efs_backup_policy) run as AWS Backup's default service role.
  statement {
    sid     = "EfsAutomaticBackups"
    actions = ["iam:GetRole", "iam:PassRole"]
    resources = [
      "arn:aws:iam::${data.aws_caller_identity.current.account_id}:role/service-role/AWSBackupDefaultServiceRole",
    ]
  }
}
