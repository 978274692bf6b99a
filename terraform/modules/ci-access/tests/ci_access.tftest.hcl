# The deploy role of one environment, planned against a mock AWS provider: only GitHub jobs of
# that environment can assume it, and it can roll this one service onto a new image and do
# nothing else.

mock_provider "aws" {
  mock_data "aws_region" {
    defaults = {
      region = "us-east-1"
    }
  }
  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
    }
  }
}

variables {
  name                     = "hello-birthday-production"
  github_repository        = "OWNER/hello-birthday"
  github_environment       = "production"
  github_oidc_provider_arn = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
  cluster_name             = "hello-birthday-production"
  service_name             = "hello-birthday"
  task_definition_family   = "hello-birthday-production"
  passable_role_arns = [
    "arn:aws:iam::123456789012:role/hello-birthday-production-task",
    "arn:aws:iam::123456789012:role/hello-birthday-production-execution",
  ]
  ecr_repository_arn = "arn:aws:ecr:us-east-1:123456789012:repository/hello-birthday"
}

run "only_the_environments_jobs_assume_the_role" {
  command = plan

  assert {
    condition = alltrue([
      for s in data.aws_iam_policy_document.trust.statement :
      toset(s.actions) == toset(["sts:AssumeRoleWithWebIdentity"]) &&
      [for p in s.principals : { type = p.type, identifiers = toset(p.identifiers) }] == [{ type = "Federated", identifiers = toset([var.github_oidc_provider_arn]) }]
    ])
    error_message = "Only GitHub's OIDC provider may assume the deploy role, with AssumeRoleWithWebIdentity."
  }
  assert {
    condition = alltrue([
      for s in data.aws_iam_policy_document.trust.statement : anytrue([
        for c in s.condition : c.test == "StringEquals" && c.variable == "token.actions.githubusercontent.com:aud" && toset(c.values) == toset(["sts.amazonaws.com"])
      ])
    ])
    error_message = "The trust policy must require the token's audience to be sts.amazonaws.com."
  }
  assert {
    condition = alltrue([
      for s in data.aws_iam_policy_document.trust.statement : anytrue([
        for c in s.condition : c.test == "StringEquals" && c.variable == "token.actions.githubusercontent.com:sub" && toset(c.values) == toset(["repo:OWNER/hello-birthday:environment:production"])
      ])
    ])
    error_message = "Only jobs of this repository's GitHub environment of the same name (sub = repo:OWNER/REPO:environment:ENV, exact match, no wildcard) may deploy: the environment's protection rules gate the role."
  }
  assert {
    condition     = aws_iam_role.deploy.max_session_duration == 3600
    error_message = "Deploy credentials must last at most an hour."
  }
}

run "the_role_deploys_this_service_only" {
  command = plan

  assert {
    condition = alltrue([
      for s in data.aws_iam_policy_document.deploy.statement :
      !anytrue([for a in s.actions : strcontains(a, "*")])
    ])
    error_message = "The deploy policy must name every action; no wildcards."
  }
  assert {
    condition = alltrue([
      for s in data.aws_iam_policy_document.deploy.statement :
      !contains(tolist(s.resources), "*") || toset(s.actions) == toset(["ecs:DescribeTaskDefinition", "ecs:RegisterTaskDefinition"])
    ])
    error_message = "Only the task definition calls, which support no resource-level permissions, may use resource \"*\"."
  }
  assert {
    condition = (
      [for s in data.aws_iam_policy_document.deploy.statement : toset(s.resources) if contains(tolist(s.actions), "ecs:UpdateService")] ==
      [toset(["arn:aws:ecs:us-east-1:123456789012:service/hello-birthday-production/hello-birthday"])]
    )
    error_message = "The role may update only this environment's service."
  }
  assert {
    condition = alltrue([
      for s in data.aws_iam_policy_document.deploy.statement :
      !contains(tolist(s.actions), "iam:PassRole") || (
        toset(s.resources) == toset(var.passable_role_arns) &&
        anytrue([for c in s.condition : c.variable == "iam:PassedToService" && toset(c.values) == toset(["ecs-tasks.amazonaws.com"])])
      )
    ])
    error_message = "The role may pass only the service's task and execution roles, and only to ECS tasks."
  }
  assert {
    condition = length(setintersection(
      flatten([for s in data.aws_iam_policy_document.deploy.statement : tolist(s.actions)]),
      ["ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload", "ecr:BatchDeleteImage", "ecs:DeleteService", "ecs:CreateService"],
    )) == 0
    error_message = "The deploy role must not push image layers, delete images or create/delete services: pushing is the image-push role's job (terraform/bootstrap)."
  }
}
