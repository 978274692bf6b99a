# A VPC over the given availability zones (three or more): public subnets hold only the load balancer, private
# subnets hold the tasks, the EFS mount targets and the VPC endpoints. The private subnets have
# no route to the internet at all: the tasks reach ECR, S3 (image layers) and CloudWatch Logs
# through VPC endpoints, and the app itself calls nothing outside the VPC. Endpoints instead of
# NAT gateways: cheaper than one NAT per AZ (README, "What it costs"), no egress path for a
# compromised task, and no shared NAT whose AZ can take the others down.
#
# The security groups that say who may talk to whom live here too, so every traffic flow of the
# stack can be read in one file:
#
#   internet --80/443--> alb --container_port--> tasks --2049--> efs
#                                                tasks --443--> endpoints, S3 (prefix list)

data "aws_region" "current" {}

locals {
  # Named explicitly rather than looked up: a lookup that drops a zone while it is impaired, or
  # picks up one AWS adds, would re-plan every subnet, mount target and endpoint exactly when
  # the stack should stand still.
  azs = var.availability_zones

  # /24 public subnets (the ALB needs a handful of addresses) and /20 private ones (one ENI per
  # task, twice the task count during a deploy), carved so the two ranges never overlap.
  public_cidrs  = { for i, az in local.azs : az => cidrsubnet(var.vpc_cidr, 8, i) }
  private_cidrs = { for i, az in local.azs : az => cidrsubnet(var.vpc_cidr, 4, i + 1) }

  # What a Fargate task (platform 1.4.0+) in a subnet without internet access needs to pull its
  # image from ECR and ship logs. EFS needs no endpoint: its NFS traffic goes to the mount
  # targets, whose DNS names resolve inside the VPC. aps-workspaces: the metrics collector
  # sidecar's remote write to Amazon Managed Service for Prometheus.
  interface_endpoints = toset(["ecr.api", "ecr.dkr", "logs", "aps-workspaces"])
}

resource "aws_vpc" "this" {
  cidr_block = var.vpc_cidr
  # Both are needed for the endpoints' private DNS names and for EFS mount-target names.
  enable_dns_support   = true
  enable_dns_hostnames = true

  tags = { Name = var.name }
}

# AWS creates a default security group that allows all traffic between its members; take every
# rule away so nothing can use it by accident.
resource "aws_default_security_group" "this" {
  vpc_id = aws_vpc.this.id
}

resource "aws_internet_gateway" "this" {
  vpc_id = aws_vpc.this.id
  tags   = { Name = var.name }
}

resource "aws_subnet" "public" {
  for_each = local.public_cidrs

  vpc_id            = aws_vpc.this.id
  availability_zone = each.key
  cidr_block        = each.value
  # The ALB gets its addresses itself; nothing else launched here should get a public IP.
  map_public_ip_on_launch = false

  tags = { Name = "${var.name}-public-${each.key}", Tier = "public" }
}

resource "aws_subnet" "private" {
  for_each = local.private_cidrs

  vpc_id            = aws_vpc.this.id
  availability_zone = each.key
  cidr_block        = each.value

  tags = { Name = "${var.name}-private-${each.key}", Tier = "private" }
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.this.id
  tags   = { Name = "${var.name}-public" }
}

resource "aws_route" "public_internet" {
  route_table_id         = aws_route_table.public.id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this.id
}

resource "aws_route_table_association" "public" {
  for_each = aws_subnet.public

  subnet_id      = each.value.id
  route_table_id = aws_route_table.public.id
}

# One table for every private subnet: without NAT there is no per-AZ route to keep apart, only
# the VPC-local route and the S3 gateway endpoint's prefix list.
resource "aws_route_table" "private" {
  vpc_id = aws_vpc.this.id
  tags   = { Name = "${var.name}-private" }
}

resource "aws_route_table_association" "private" {
  for_each = aws_subnet.private

  subnet_id      = each.value.id
  route_table_id = aws_route_table.private.id
}

# ECR stores image layers in S3. The gateway endpoint is free; its policy lets the VPC reach the
# ECR layer bucket of this region and nothing else in S3.
resource "aws_vpc_endpoint" "s3" {
  vpc_id            = aws_vpc.this.id
  service_name      = "com.amazonaws.${data.aws_region.current.region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = [aws_route_table.private.id]
  policy            = data.aws_iam_policy_document.s3_endpoint.json

  tags = { Name = "${var.name}-s3" }
}

data "aws_iam_policy_document" "s3_endpoint" {
  statement {
    sid       = "EcrImageLayers"
    effect    = "Allow"
    actions   = ["s3:GetObject"]
    resources = ["arn:aws:s3:::prod-${data.aws_region.current.region}-starport-layer-bucket/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }
  }
}

resource "aws_vpc_endpoint" "interface" {
  for_each = local.interface_endpoints

  vpc_id              = aws_vpc.this.id
  service_name        = "com.amazonaws.${data.aws_region.current.region}.${each.key}"
  vpc_endpoint_type   = "Interface"
  private_dns_enabled = true
  # One ENI per AZ, so losing an AZ does not take image pulls or logging in the others with it.
  subnet_ids         = [for s in aws_subnet.private : s.id]
  security_group_ids = [aws_security_group.endpoints.id]

  tags = { Name = "${var.name}-${each.key}" }
}

# ---------------------------------------------------------------------------------------------
# Security groups. Rules are separate resources (one per rule) so a change to one rule does not
# replace the others, and every rule carries a description.

resource "aws_security_group" "alb" {
  name        = "${var.name}-alb"
  description = "Load balancer: HTTP and HTTPS from the internet, to the tasks only"
  vpc_id      = aws_vpc.this.id
  tags        = { Name = "${var.name}-alb" }
}

resource "aws_vpc_security_group_ingress_rule" "alb_http" {
  security_group_id = aws_security_group.alb.id
  description       = "HTTP from anywhere: redirected to HTTPS when a certificate is configured"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_ingress_rule" "alb_https" {
  security_group_id = aws_security_group.alb.id
  description       = "HTTPS from anywhere"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "alb_to_tasks" {
  security_group_id            = aws_security_group.alb.id
  description                  = "Requests and health checks to the tasks"
  ip_protocol                  = "tcp"
  from_port                    = var.container_port
  to_port                      = var.container_port
  referenced_security_group_id = aws_security_group.tasks.id
}

resource "aws_security_group" "tasks" {
  name        = "${var.name}-tasks"
  description = "ECS tasks: the app port from the load balancer; out to EFS and the VPC endpoints only"
  vpc_id      = aws_vpc.this.id
  tags        = { Name = "${var.name}-tasks" }
}

resource "aws_vpc_security_group_ingress_rule" "tasks_from_alb" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "Requests and health checks from the load balancer"
  ip_protocol                  = "tcp"
  from_port                    = var.container_port
  to_port                      = var.container_port
  referenced_security_group_id = aws_security_group.alb.id
}

# A Prometheus inside the VPC (or a peered one) scrapes GET /metrics on each task directly;
# the public load balancer does not route /metrics.
resource "aws_vpc_security_group_ingress_rule" "tasks_from_scrapers" {
  for_each = toset(var.metrics_scraper_security_group_ids)

  security_group_id            = aws_security_group.tasks.id
  description                  = "Prometheus scrapes of /metrics"
  ip_protocol                  = "tcp"
  from_port                    = var.container_port
  to_port                      = var.container_port
  referenced_security_group_id = each.value
}

resource "aws_vpc_security_group_egress_rule" "tasks_to_efs" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "NFS to the EFS mount targets"
  ip_protocol                  = "tcp"
  from_port                    = 2049
  to_port                      = 2049
  referenced_security_group_id = aws_security_group.efs.id
}

resource "aws_vpc_security_group_egress_rule" "tasks_to_endpoints" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "HTTPS to the ECR, CloudWatch Logs and Prometheus remote-write endpoints"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = aws_security_group.endpoints.id
}

resource "aws_vpc_security_group_egress_rule" "tasks_to_s3" {
  security_group_id = aws_security_group.tasks.id
  description       = "HTTPS to S3 (ECR image layers) through the gateway endpoint"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  prefix_list_id    = aws_vpc_endpoint.s3.prefix_list_id
}

resource "aws_security_group" "efs" {
  name        = "${var.name}-efs"
  description = "EFS mount targets: NFS from the tasks only"
  vpc_id      = aws_vpc.this.id
  tags        = { Name = "${var.name}-efs" }
}

resource "aws_vpc_security_group_ingress_rule" "efs_from_tasks" {
  security_group_id            = aws_security_group.efs.id
  description                  = "NFS from the tasks"
  ip_protocol                  = "tcp"
  from_port                    = 2049
  to_port                      = 2049
  referenced_security_group_id = aws_security_group.tasks.id
}

resource "aws_security_group" "endpoints" {
  name        = "${var.name}-endpoints"
  description = "VPC interface endpoints: HTTPS from the tasks only"
  vpc_id      = aws_vpc.this.id
  tags        = { Name = "${var.name}-endpoints" }
}

resource "aws_vpc_security_group_ingress_rule" "endpoints_from_tasks" {
  security_group_id            = aws_security_group.endpoints.id
  description                  = "HTTPS from the tasks"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = aws_security_group.tasks.id
}

# ---------------------------------------------------------------------------------------------
# VPC flow logs: who tried to reach what, for incident response. REJECT-only by default keeps
# the volume (and the bill) small; set flow_log_traffic_type = "ALL" to see accepted flows too.

resource "aws_flow_log" "this" {
  vpc_id                   = aws_vpc.this.id
  traffic_type             = var.flow_log_traffic_type
  log_destination_type     = "cloud-watch-logs"
  log_destination          = aws_cloudwatch_log_group.flow_logs.arn
  iam_role_arn             = aws_iam_role.flow_logs.arn
  max_aggregation_interval = 600

  tags = { Name = var.name }
}

resource "aws_cloudwatch_log_group" "flow_logs" {
  name              = "/vpc/${var.name}/flow-logs"
  retention_in_days = var.flow_log_retention_days
}

resource "aws_iam_role" "flow_logs" {
  name               = "${var.name}-flow-logs"
  description        = "Lets VPC Flow Logs write to its log group"
  assume_role_policy = data.aws_iam_policy_document.flow_logs_trust.json
}

data "aws_caller_identity" "current" {}

data "aws_iam_policy_document" "flow_logs_trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["vpc-flow-logs.amazonaws.com"]
    }
    # Confused-deputy guard: only flow logs of this account may use the role.
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role_policy" "flow_logs" {
  name   = "write-flow-logs"
  role   = aws_iam_role.flow_logs.id
  policy = data.aws_iam_policy_document.flow_logs.json
}

data "aws_iam_policy_document" "flow_logs" {
  statement {
    actions = [
      "logs:CreateLogStream",
      "logs:PutLogEvents",
      "logs:DescribeLogStreams",
    ]
    resources = ["${aws_cloudwatch_log_group.flow_logs.arn}:*"]
  }
}
