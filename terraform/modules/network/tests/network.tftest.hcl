# The VPC, its subnets and the security groups, planned against a mock AWS provider: three zones,
# tasks reachable only from the load balancer, EFS only from the tasks. Each environment's own
# zones and range are checked by terraform/modules/environment's validations when its root is
# planned (terraform/<env>/tests).

mock_provider "aws" {
  mock_data "aws_region" {
    defaults = {
      region = "us-east-1"
    }
  }
}

# Known security group ids during plan, so the rules can be checked to reference the right group.
# Distinct subnet ids during plan, so the endpoints can be checked to have an ENI in each.
override_resource {
  target          = aws_subnet.private["us-east-1a"]
  override_during = plan
  values = {
    id = "subnet-private-a"
  }
}

override_resource {
  target          = aws_subnet.private["us-east-1b"]
  override_during = plan
  values = {
    id = "subnet-private-b"
  }
}

override_resource {
  target          = aws_subnet.private["us-east-1c"]
  override_during = plan
  values = {
    id = "subnet-private-c"
  }
}

override_resource {
  target          = aws_security_group.alb
  override_during = plan
  values = {
    id = "sg-alb"
  }
}

override_resource {
  target          = aws_security_group.tasks
  override_during = plan
  values = {
    id = "sg-tasks"
  }
}

override_resource {
  target          = aws_security_group.efs
  override_during = plan
  values = {
    id = "sg-efs"
  }
}

override_resource {
  target          = aws_security_group.endpoints
  override_during = plan
  values = {
    id = "sg-endpoints"
  }
}

variables {
  name               = "hello-birthday-test"
  vpc_cidr           = "10.0.0.0/16"
  availability_zones = ["us-east-1a", "us-east-1b", "us-east-1c"]
  container_port     = 8080
}

run "three_zones" {
  command = plan

  assert {
    condition     = toset([for s in aws_subnet.private : s.availability_zone]) == toset(var.availability_zones) && length(aws_subnet.private) == length(var.availability_zones)
    error_message = "There must be one private (task) subnet in each zone, so ECS can place one task per zone."
  }
  assert {
    condition     = alltrue([for s in concat(values(aws_subnet.private), values(aws_subnet.public)) : cidrsubnet(var.vpc_cidr, 0, 0) == cidrsubnet("${cidrhost(s.cidr_block, 0)}/${split("/", var.vpc_cidr)[1]}", 0, 0)])
    error_message = "Every subnet must lie inside the VPC's range."
  }
  assert {
    condition     = toset([for s in aws_subnet.public : s.availability_zone]) == toset(var.availability_zones) && length(aws_subnet.public) == length(var.availability_zones)
    error_message = "There must be one public (load balancer) subnet in each zone."
  }
  assert {
    condition     = alltrue([for s in aws_subnet.public : s.map_public_ip_on_launch == false])
    error_message = "Nothing launched in the public subnets may get a public IP; the ALB assigns its own."
  }
  assert {
    condition = length(distinct(concat(
      [for s in aws_subnet.public : cidrsubnet("${cidrhost(s.cidr_block, 0)}/20", 0, 0)],
      [for s in aws_subnet.private : s.cidr_block],
    ))) == 1 + length(aws_subnet.private)
    error_message = "The public /24s must share one /20 that no private /20 uses, and the private /20s must not overlap each other."
  }
  assert {
    condition     = toset(keys(aws_vpc_endpoint.interface)) == toset(["ecr.api", "ecr.dkr", "logs", "aps-workspaces"]) && alltrue([for e in aws_vpc_endpoint.interface : e.subnet_ids == toset([for s in aws_subnet.private : s.id]) && e.private_dns_enabled])
    error_message = "Tasks without internet access need ECR, CloudWatch Logs and Prometheus remote-write (aps-workspaces) interface endpoints with private DNS, with an ENI in every zone."
  }
  assert {
    condition     = aws_vpc_endpoint.s3.vpc_endpoint_type == "Gateway"
    error_message = "ECR image layers come from S3: the private subnets need the S3 gateway endpoint."
  }
}

run "only_the_load_balancer_reaches_the_tasks" {
  command = plan

  assert {
    condition = (
      aws_vpc_security_group_ingress_rule.tasks_from_alb.security_group_id == "sg-tasks" &&
      aws_vpc_security_group_ingress_rule.tasks_from_alb.referenced_security_group_id == "sg-alb" &&
      aws_vpc_security_group_ingress_rule.tasks_from_alb.from_port == var.container_port &&
      aws_vpc_security_group_ingress_rule.tasks_from_alb.to_port == var.container_port &&
      aws_vpc_security_group_ingress_rule.tasks_from_alb.cidr_ipv4 == null
    )
    error_message = "The tasks must admit the container port from the load balancer's security group only (no CIDR)."
  }
  assert {
    condition = (
      aws_vpc_security_group_egress_rule.alb_to_tasks.referenced_security_group_id == "sg-tasks" &&
      aws_vpc_security_group_egress_rule.alb_to_tasks.from_port == var.container_port &&
      aws_vpc_security_group_egress_rule.alb_to_tasks.to_port == var.container_port
    )
    error_message = "The load balancer may send requests and health checks to the tasks on the container port only."
  }
  assert {
    condition = (
      aws_vpc_security_group_ingress_rule.efs_from_tasks.security_group_id == "sg-efs" &&
      aws_vpc_security_group_ingress_rule.efs_from_tasks.referenced_security_group_id == "sg-tasks" &&
      aws_vpc_security_group_ingress_rule.efs_from_tasks.from_port == 2049 &&
      aws_vpc_security_group_ingress_rule.efs_from_tasks.to_port == 2049 &&
      aws_vpc_security_group_ingress_rule.efs_from_tasks.cidr_ipv4 == null
    )
    error_message = "EFS must admit NFS (2049) from the tasks' security group only."
  }
  assert {
    condition     = aws_vpc_security_group_egress_rule.tasks_to_efs.referenced_security_group_id == "sg-efs" && aws_vpc_security_group_egress_rule.tasks_to_efs.from_port == 2049
    error_message = "The tasks must be allowed NFS to the EFS security group."
  }
}

run "fewer_than_three_zones_is_refused" {
  command = plan

  variables {
    availability_zones = ["us-east-1a", "us-east-1b"]
  }

  expect_failures = [var.availability_zones]
}

run "a_zone_twice_is_refused" {
  command = plan

  variables {
    availability_zones = ["us-east-1a", "us-east-1b", "us-east-1a"]
  }

  expect_failures = [var.availability_zones]
}
