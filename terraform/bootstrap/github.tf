# GitHub Actions gets AWS access through OIDC only: each job asks GitHub for a token naming
# its repository and ref or environment, and STS swaps it for a role's short-lived
# credentials. No AWS keys are stored in GitHub.
#
# Which job may assume which role is decided by the token's `sub` claim:
#
#   role                             sub                                    used by
#   <app>-image-push                 repo:R:ref:refs/heads/main             deploy.yml, build job
#   <app>-terraform-plan             repo:R:pull_request                    terraform.yml, plan job
#   <app>-terraform-apply-<env>      repo:R:environment:<env>               deploy.yml, deploy jobs
#                                                                           (deploy order, terraform apply)
#   <app>-<env>-deploy (per env,     repo:R:environment:<env>               deploy.yml, deploy jobs
#     in terraform/modules/ci-access)                                       (the rollout)
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
# Terraform plan on pull requests: read the resources the environment roots manage and their
# two state files, nothing else. Plans run with -lock=false (terraform.yml), so the role writes
# nothing at all, not even a lock file. Only pull requests from branches of this repository
# get an OIDC token; forks get none.
#
# Deliberately not AWS's ReadOnlyAccess: that reads every S3 object in the account (this
# bucket's bootstrap state included), CloudWatch log events, SSM parameters and more. The list
# below is what the AWS provider calls to refresh the resources in terraform/modules: describe,
# list and get-configuration calls, none of which return data the app stores or logs.

resource "aws_iam_role" "terraform_plan" {
  name               = "${var.app_name}-terraform-plan"
  description        = "GitHub Actions (pull requests) plans the hello-birthday Terraform roots"
  assume_role_policy = data.aws_iam_policy_document.github_trust["terraform_plan"].json
}

resource "aws_iam_role_policy" "terraform_plan" {
  name   = "read-the-stack"
  role   = aws_iam_role.terraform_plan.id
  policy = data.aws_iam_policy_document.terraform_plan.json
}

data "aws_iam_policy_document" "terraform_plan" {
  # Describe and List calls of these services have no resource-level permissions (or only on
  # ARNs that do not exist before the plan), so they cannot be scoped to this stack.
  statement {
    sid = "DescribeTheStacksResources"
    actions = [
      # network: VPC, subnets, routes, endpoints, security groups, flow logs
      "ec2:Describe*",
      # load-balancer: load balancer, listeners, rules, target group, certificate, DNS records
      "elasticloadbalancing:Describe*",
      "acm:DescribeCertificate",
      "acm:ListTagsForCertificate",
      "route53:GetHostedZone",
      "route53:ListResourceRecordSets",
      "route53:GetChange",
      "route53:ListTagsForResource",
      # load-balancer: the WAF web ACL, its association with the load balancer, its logging
      "wafv2:GetWebACL",
      "wafv2:GetWebACLForResource",
      "wafv2:GetLoggingConfiguration",
      "wafv2:ListTagsForResource",
      # service: cluster, service, task definition, autoscaling, log group (never its events)
      "ecs:Describe*",
      "ecs:List*",
      "application-autoscaling:Describe*",
      "application-autoscaling:ListTagsForResource",
      "logs:DescribeLogGroups",
      "logs:ListTagsForResource",
      "logs:ListTagsLogGroup",
      # storage: file system, mount targets, access point, file system and backup policies
      "elasticfilesystem:Describe*",
      "elasticfilesystem:ListTagsForResource",
      # alarms: the alarms, the topic and its subscription
      "cloudwatch:DescribeAlarms",
      "cloudwatch:ListTagsForResource",
      "sns:GetTopicAttributes",
      "sns:GetSubscriptionAttributes",
      "sns:ListSubscriptionsByTopic",
      "sns:ListTagsForResource",
      # alarms: the Prometheus workspace, its rules, Alertmanager definition and logging
      "aps:DescribeWorkspace",
      "aps:DescribeRuleGroupsNamespace",
      "aps:DescribeAlertManagerDefinition",
      "aps:DescribeLoggingConfiguration",
      "aps:ListTagsForResource",
      # environment: data.aws_ecr_repository (the repository bootstrap made)
      "ecr:DescribeRepositories",
      "ecr:DescribeImages",
      "ecr:ListTagsForResource",
    ]
    resources = ["*"]
  }

  # The environments' own IAM roles (task, execution, deploy, flow logs): hello-birthday-<env>-*.
  statement {
    sid = "ReadTheEnvironmentsRoles"
    actions = [
      "iam:GetRole",
      "iam:GetRolePolicy",
      "iam:ListRolePolicies",
      "iam:ListAttachedRolePolicies",
      "iam:ListRoleTags",
    ]
    resources = [
      for env in var.environments : "arn:aws:iam::${data.aws_caller_identity.current.account_id}:role/${var.app_name}-${env}-*"
    ]
  }

  # The environments' state files, and no other object in the bucket (not bootstrap's state,
  # not the .tflock files: no lock is taken).
  statement {
    sid       = "ListTheStateBucket"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.state.arn]
  }
  statement {
    sid       = "ReadTheEnvironmentsState"
    actions   = ["s3:GetObject"]
    resources = [for env in var.environments : "${aws_s3_bucket.state.arn}/${env}/terraform.tfstate"]
  }
  # The state objects are SSE-KMS encrypted (state.tf): decrypting them, only through S3.
  statement {
    sid       = "DecryptTheStateThroughS3"
    actions   = ["kms:Decrypt"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${data.aws_region.current.region}.amazonaws.com"]
    }
  }
}

# ---------------------------------------------------------------------------------------------
# Terraform apply, one role per environment. PowerUserAccess (everything but IAM and account
# management) plus IAM on the environment's own roles (name prefix <app>-<env>-) and the
# service-linked roles ECS, ELB, autoscaling and EFS create on first use, minus explicit denies
# (terraform_apply_guardrails below): no other environment's state or tagged resources, and no
# changes to the state bucket itself.
#
# The denies stop mistakes and a plain misuse of one environment's role against another. They
# are not an isolation boundary: the role can create roles (with its own prefix) with any inline
# policy and hand them to ECS tasks or Lambda functions, whose code is then not bound by these
# denies; and services or resources that do not authorize by tag stay reachable. The GitHub
# environment's protection rules are what guard the role. Separate AWS accounts per environment
# are the real isolation (README).

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

resource "aws_iam_role_policy" "terraform_apply_guardrails" {
  for_each = aws_iam_role.terraform_apply

  name   = "not-the-other-environments"
  role   = each.value.id
  policy = data.aws_iam_policy_document.terraform_apply_guardrails[each.key].json
}

locals {
  # Per environment: the other environments, whose state and resources it must not touch.
  other_environments = {
    for env in var.environments : env => [for other in var.environments : other if other != env]
  }
}

data "aws_iam_policy_document" "terraform_apply_guardrails" {
  for_each = toset(var.environments)

  # Every other root's state and lock file (terraform/<env>/versions.tf: key <env>/..., and
  # bootstrap/... for terraform/bootstrap): not read, written or deleted.
  statement {
    sid       = "NotTheOtherRootsState"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [for root in concat(local.other_environments[each.key], ["bootstrap"]) : "${aws_s3_bucket.state.arn}/${root}/*"]
  }

  # The bucket keeps every state version, encrypted, private and TLS-only: none of that may
  # change, and no old state version may be deleted.
  statement {
    sid    = "NotTheStateBucketsSettings"
    effect = "Deny"
    actions = [
      "s3:DeleteBucket",
      "s3:DeleteBucketPolicy",
      "s3:DeleteObjectVersion",
      "s3:PutBucket*",
      "s3:PutEncryptionConfiguration",
      "s3:PutLifecycleConfiguration",
      "s3:PutReplicationConfiguration",
    ]
    resources = [aws_s3_bucket.state.arn, "${aws_s3_bucket.state.arn}/*"]
  }

  # Everything the other environments' roots create carries Environment=<env> (default_tags in
  # terraform/<env>/providers.tf; the ECS service propagates it to its tasks). Any action on a
  # resource with such a tag is denied, for every service that authorizes by aws:ResourceTag
  # (EC2, ELB, ECS, EFS, IAM roles, CloudWatch alarms, SNS, ACM, Application Auto Scaling,
  # Logs). Untagged resources and calls on "*" (Describe*) are not matched.
  statement {
    sid       = "NotTheOtherEnvironmentsResources"
    effect    = "Deny"
    actions   = ["*"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/Environment"
      values   = local.other_environments[each.key]
    }
  }
}
