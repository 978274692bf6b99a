# terraform/production with its real terraform.tfvars, planned against a mock AWS provider (no AWS
# account, no credentials). A successful plan means every module's input validation holds for
# this environment's values (three distinct zones, at least three tasks, a Fargate CPU size,
# names within AWS's limits). Then this environment's zones and sizes are planned through the
# network and service modules. The settings that do not vary per environment are asserted once,
# in terraform/modules/*/tests.

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
  # Not in terraform.tfvars: the commit SHA of an image in ECR, given when the stack is created.
  image_tag = "0123456789abcdef0123456789abcdef01234567"
}

run "plans_with_the_real_tfvars" {
  command = plan

  assert {
    condition     = length(var.availability_zones) == 3 && length(distinct(var.availability_zones)) == 3
    error_message = "Production must run in three distinct availability zones (one task, mount target and endpoint ENI in each): losing one leaves two serving."
  }
  assert {
    condition     = var.min_tasks >= length(var.availability_zones) && var.max_tasks >= var.min_tasks
    error_message = "Production must keep at least one task per zone, and autoscaling's maximum must not be below that."
  }
  assert {
    condition = contains(lookup({
      "256"  = [512, 1024, 2048]
      "512"  = [1024, 2048, 3072, 4096]
      "1024" = [2048, 3072, 4096, 5120, 6144, 7168, 8192]
      "2048" = [for gb in range(4, 17) : gb * 1024]
      "4096" = [for gb in range(8, 31) : gb * 1024]
    }, tostring(var.task_cpu), []), var.task_memory)
    error_message = "task_cpu and task_memory must be a combination Fargate offers, or registering the task definition fails at apply time."
  }
  assert {
    condition     = tonumber(split("/", var.vpc_cidr)[1]) == 16
    error_message = "The VPC must be a /16: the network module carves three /24 public and three /20 private subnets from it."
  }
  assert {
    condition     = var.deletion_protection == true
    error_message = "The load balancer must be protected from deletion."
  }
  assert {
    condition = (
      module.app.cluster_name == "hello-birthday-production" &&
      module.app.task_definition_family == "hello-birthday-production" &&
      module.app.service_name == "hello-birthday" &&
      module.app.container_name == "hello-birthday" && output.container_name == "hello-birthday"
    )
    error_message = "The cluster, family, service and container names must be the ones the deploy workflow and the GitHub environment variables use."
  }
  assert {
    condition     = toset(keys(output.github_environment_variables)) == toset(["APP_URL", "AWS_DEPLOY_ROLE_ARN", "ECS_CLUSTER", "ECS_SERVICE"]) && output.github_environment_variables.ECS_CLUSTER == "hello-birthday-production"
    error_message = "The root must output every variable the deploy workflow reads from the GitHub environment."
  }
}

# This environment's zones and range through the network module (the same inputs
# terraform/modules/environment passes it).
run "network_for_these_zones" {
  command = plan

  module {
    source = "../modules/network"
  }

  variables {
    name           = "hello-birthday-production"
    container_port = 8080
  }

  assert {
    condition     = toset([for s in aws_subnet.private : s.availability_zone]) == toset(var.availability_zones) && length(aws_subnet.private) == 3
    error_message = "Production's tasks must get one private subnet in each of its three zones."
  }
  assert {
    condition     = alltrue([for s in aws_subnet.private : cidrsubnet(var.vpc_cidr, 0, 0) == cidrsubnet("${cidrhost(s.cidr_block, 0)}/16", 0, 0)])
    error_message = "Every private subnet must lie inside production's VPC range."
  }
}

# This environment's sizes through the service module (the same inputs
# terraform/modules/environment passes it: desired_count and min_capacity are min_tasks).
run "service_for_these_sizes" {
  command = plan

  module {
    source = "../modules/service"
  }

  variables {
    cluster_name             = "hello-birthday-production"
    service_name             = "hello-birthday"
    image                    = "123456789012.dkr.ecr.us-east-1.amazonaws.com/hello-birthday:${var.image_tag}"
    ecr_repository_arn       = "arn:aws:ecr:us-east-1:123456789012:repository/hello-birthday"
    container_port           = 8080
    cpu                      = var.task_cpu
    memory                   = var.task_memory
    desired_count            = var.min_tasks
    min_capacity             = var.min_tasks
    max_capacity             = var.max_tasks
    private_subnet_ids       = [for az in var.availability_zones : "subnet-${az}"]
    security_group_id        = "sg-tasks"
    target_group_arn         = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/hello-birthday-production/0123456789abcdef"
    alb_arn_suffix           = "app/hello-birthday-production/0123456789abcdef"
    target_group_arn_suffix  = "targetgroup/hello-birthday-production/0123456789abcdef"
    efs_file_system_id       = "fs-0123456789abcdef0"
    efs_file_system_arn      = "arn:aws:elasticfilesystem:us-east-1:123456789012:file-system/fs-0123456789abcdef0"
    efs_access_point_id      = "fsap-0123456789abcdef0"
    efs_access_point_arn     = "arn:aws:elasticfilesystem:us-east-1:123456789012:access-point/fsap-0123456789abcdef0"
    deployment_alarm_names   = ["hello-birthday-production-5xx-rate"]
    collector_image          = "123456789012.dkr.ecr.us-east-1.amazonaws.com/ecr-public/aws-observability/aws-otel-collector:v0.43.3"
    collector_repository_arn = "arn:aws:ecr:us-east-1:123456789012:repository/ecr-public/aws-observability/aws-otel-collector"
    prometheus_workspace_arn = "arn:aws:aps:us-east-1:123456789012:workspace/ws-0123456789abcdef"
    prometheus_endpoint      = "https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-0123456789abcdef/"
    # The load balancer module's idle_timeout.
    load_balancer_idle_timeout = 60
  }

  assert {
    condition     = aws_ecs_service.app.desired_count >= 3 && aws_appautoscaling_target.app.min_capacity >= 3
    error_message = "Production must start and stay at three or more tasks, one per zone."
  }
  assert {
    condition     = aws_ecs_task_definition.app.cpu == tostring(var.task_cpu) && aws_ecs_task_definition.app.memory == tostring(var.task_memory)
    error_message = "Production's task size must reach the task definition."
  }
  assert {
    condition     = one(aws_ecs_service.app.network_configuration).assign_public_ip == false && length(one(aws_ecs_service.app.network_configuration).subnets) == length(var.availability_zones)
    error_message = "Production's tasks must spread over a private subnet in each zone, without public IPs."
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
