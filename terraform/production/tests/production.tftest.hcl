# terraform/production as committed, planned against a mock AWS provider (no AWS account, no
# credentials). A successful plan means every module's input validation holds for production's
# settings (three distinct zones in the region, a task per zone, a Fargate size, a /16, names
# within AWS's limits, deletion protection). What does not vary per environment is asserted
# once, in terraform/modules/*/tests.

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
  # The commit SHA of an image in ECR: set in main.tf when the stack is created.
  image_tag = "0123456789abcdef0123456789abcdef01234567"
}

run "plans_with_the_committed_settings" {
  command = plan

  assert {
    condition     = local.aws_account_id == null || can(regex("^[0-9]{12}$", local.aws_account_id))
    error_message = "aws_account_id must be 12 digits, or null."
  }
  assert {
    condition = (
      output.app.cluster_name == "hello-birthday-production" &&
      output.task_definition_family == "hello-birthday-production" &&
      output.app.service_name == "hello-birthday" && output.container_name == "hello-birthday"
    )
    error_message = "The cluster, family, service and container names must be the ones the deploy workflow and the GitHub environment variables use."
  }
  assert {
    condition     = toset(keys(output.github_environment_variables)) == toset(["APP_URL", "AWS_DEPLOY_ROLE_ARN", "ECS_CLUSTER", "ECS_SERVICE"]) && output.github_environment_variables.ECS_CLUSTER == "hello-birthday-production"
    error_message = "The root must output every variable the deploy workflow reads from the GitHub environment."
  }
}

# The task definition as Terraform evaluates it for this environment: the container check runs
# the image with its container definitions (scripts/terraform-offline/run.sh writes them out of
# this run's plan). Only AWS knows the Prometheus workspace's endpoint, which the collector's
# configuration holds; given here, container_definitions is known at plan time.
run "task_definition" {
  command = plan

  override_resource {
    target          = module.app.module.alarms.aws_prometheus_workspace.this
    override_during = plan
    values = {
      prometheus_endpoint = "https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-0123456789abcdef/"
    }
  }
}
