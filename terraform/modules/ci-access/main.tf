# The role the deploy workflow assumes, through GitHub's OIDC provider, to roll one
# environment's service onto a new image. No stored AWS keys anywhere.
#
# Only jobs that run in this repository's GitHub environment of the same name can assume it:
# such a job's token has sub = "repo:OWNER/REPO:environment:ENV" (a job with an environment
# never presents the ref:refs/heads/main form). The environment's protection rules (branch
# main only; reviewers for production) are therefore part of this trust policy.
#
# What the deploy needs, and nothing else: read the live task definition, register a new
# revision (with the family's tags), update and watch this one service, pass this service's
# two roles to ECS, and add the "<environment>-<sha>" tag to the image it deployed, which keeps
# that image out of the ECR lifecycle policy's expiry (terraform/bootstrap/ecr.tf).
# Pushing images is the image-push role's job (terraform/bootstrap).

data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  ecs_arn_prefix            = "arn:aws:ecs:${data.aws_region.current.region}:${data.aws_caller_identity.current.account_id}"
  service_arn               = "${local.ecs_arn_prefix}:service/${var.cluster_name}/${var.service_name}"
  task_definition_revisions = "${local.ecs_arn_prefix}:task-definition/${var.task_definition_family}:*"
}

data "aws_iam_policy_document" "trust" {
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [var.github_oidc_provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:aud"
      values   = ["sts.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:sub"
      values   = ["repo:${var.github_repository}:environment:${var.github_environment}"]
    }
  }
}

resource "aws_iam_role" "deploy" {
  name                 = "${var.name}-deploy"
  description          = "GitHub Actions deploys ${var.service_name} in ${var.cluster_name} with this role"
  assume_role_policy   = data.aws_iam_policy_document.trust.json
  max_session_duration = 3600
}

resource "aws_iam_role_policy" "deploy" {
  name   = "deploy-service"
  role   = aws_iam_role.deploy.id
  policy = data.aws_iam_policy_document.deploy.json
}

data "aws_iam_policy_document" "deploy" {
  statement {
    sid = "TaskDefinitions"
    # Neither action supports resource-level permissions.
    actions = [
      "ecs:DescribeTaskDefinition",
      "ecs:RegisterTaskDefinition",
    ]
    resources = ["*"]
  }

  # The render action reads the family's tags (Terraform's default_tags) and the new revision
  # carries them, and ECS authorises tags on create separately.
  statement {
    sid       = "TagNewRevisionsOfTheFamily"
    actions   = ["ecs:TagResource"]
    resources = [local.task_definition_revisions]
    condition {
      test     = "StringEquals"
      variable = "ecs:CreateAction"
      values   = ["RegisterTaskDefinition"]
    }
  }

  statement {
    sid       = "ReadTheFamilysTags"
    actions   = ["ecs:ListTagsForResource"]
    resources = [local.task_definition_revisions]
  }

  statement {
    sid = "UpdateAndWatchTheService"
    actions = [
      "ecs:UpdateService",
      "ecs:DescribeServices",
    ]
    resources = [local.service_arn]
  }

  # Retagging is BatchGetImage (the manifest) then PutImage (the same manifest, a new tag). The
  # repository's tags are immutable, so no existing tag can be moved; and PutImage cannot add
  # layers (that needs the layer upload actions, which the role does not have).
  statement {
    sid = "TagTheDeployedImage"
    actions = [
      "ecr:BatchGetImage",
      "ecr:DescribeImages",
      "ecr:PutImage",
    ]
    resources = [var.ecr_repository_arn]
  }

  statement {
    sid       = "PassTheServiceRolesToEcs"
    actions   = ["iam:PassRole"]
    resources = var.passable_role_arns
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }
}
