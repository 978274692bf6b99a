# The ECS cluster, the Fargate task definition and the service that keeps `desired_count` tasks
# (one per zone) registered with the load balancer, plus their IAM roles, logs and autoscaling.
#
# Zero-downtime rolling deploys, end to end (diagram.md shows the sequence):
#   * the service starts new tasks next to the old ones (maximum 200 %) and stops none before
#     the new ones are healthy (minimum healthy 100 %);
#   * a new task takes traffic once the target group's readiness checks pass;
#   * an old task is deregistered first, drained for the target group's deregistration delay,
#     then sent SIGTERM; the app finishes in-flight requests within its shutdown timeout
#     (20 s by default), well inside stopTimeout, after which ECS would SIGKILL it;
#   * a deployment whose tasks keep failing, or that trips the deployment alarms, rolls back to
#     the last good one by itself (circuit breaker and alarms, both with rollback).
#
# Terraform registers the first task definition revision and owns its settings. The deploy
# workflow owns the image: it renders a new revision from the latest one in the family with the
# new image and updates the service, so the service's task_definition is ignored here.

data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  region     = data.aws_region.current.region
  account_id = data.aws_caller_identity.current.account_id

  container_name = "hello-birthday"
  # The image's ENTRYPOINT binary; its `healthcheck` subcommand probes /health/live.
  binary = "/usr/local/bin/hello-birthday"
  # The image's DATA_DIR: the only writable path in the container.
  data_path = "/data"

  # After SIGTERM the app serves for DRAIN_DELAY_SECS (0 here: ECS deregisters the task from
  # the load balancer and drains it before sending SIGTERM), then gives in-flight requests
  # SHUTDOWN_TIMEOUT_SECS (app default 20) to finish. ECS sends SIGKILL after stopTimeout,
  # so it must be longer. Fargate allows at most 120. tests/infra.rs checks the inequality.
  stop_timeout = 30

  # The task's CPU and memory budget, per container. The app keeps the reservation it had as the
  # task's only container (0.25 vCPU, 512 MiB); the collector sidecar gets its own on top, and
  # var.cpu/var.memory (the Fargate task size) must hold both (a precondition on the task
  # definition checks it). The collector's memory is a hard limit: if it ever grows past it,
  # ECS kills the collector (non-essential: the task and the app go on), never the app.
  #   * app: cpu shares and a soft memory reservation. Neither caps it: it may use whatever
  #     the task has left, up to the task size.
  #   * collector: 128 CPU units and 256 MiB. AWS publishes no sizing for the ADOT collector
  #     as a sidecar; its own ECS examples give it about 256 MiB. One scrape job of a few
  #     hundred series every 30 s, batched to remote write, is far below that; its
  #     memory_limiter processor starts refusing data at 200 MiB, so the Go heap stays under
  #     the hard limit instead of the container being killed.
  app_cpu          = 256
  app_memory       = 512
  collector_cpu    = 128
  collector_memory = 256

  collector_name = "metrics-collector"
  # The scrape job's name becomes the job label on every series; monitoring/rules.yml selects
  # job="hello-birthday" everywhere.
  scrape_job      = "hello-birthday"
  scrape_interval = "30s"

  # The ADOT collector's configuration, passed in AOT_CONFIG_CONTENT: scrape the app over the
  # task's loopback (awsvpc: the containers of a task share localhost), label every series
  # with the task it came from, remote-write to the workspace signed with the task role.
  collector_config = yamlencode({
    extensions = {
      sigv4auth = { region = local.region, service = "aps" }
      # /  on 13133 for a future container health check; nothing probes it yet.
      health_check = { endpoint = "localhost:13133" }
    }
    receivers = {
      prometheus = {
        config = {
          global = { scrape_interval = local.scrape_interval, scrape_timeout = "10s" }
          scrape_configs = [
            {
              job_name       = local.scrape_job
              metrics_path   = "/metrics"
              static_configs = [{ targets = ["localhost:${var.container_port}"] }]
            }
          ]
        }
      }
    }
    processors = {
      memory_limiter = { check_interval = "1s", limit_mib = 200, spike_limit_mib = 40 }
      # The task's ARN, zone, cluster... from the ECS task metadata endpoint (local, no AWS call).
      "resourcedetection/ecs" = { detectors = ["env", "ecs"], timeout = "2s", override = false }
      # Every task scrapes localhost:<port>, so the instance label (service.instance.id) would be
      # the same on all of them: make it the task's ARN. The rules aggregate by instance.
      "resource/instance" = {
        attributes = [{ key = "service.instance.id", from_attribute = "aws.ecs.task.arn", action = "upsert" }]
      }
      batch = { timeout = "30s", send_batch_size = 1000 }
    }
    exporters = {
      prometheusremotewrite = {
        endpoint = "${var.prometheus_endpoint}api/v1/remote_write"
        auth     = { authenticator = "sigv4auth" }
        # The resource attributes are labels already folded into job and instance.
        resource_to_telemetry_conversion = { enabled = false }
      }
    }
    service = {
      extensions = ["sigv4auth", "health_check"]
      pipelines = {
        metrics = {
          receivers  = ["prometheus"]
          processors = ["memory_limiter", "resourcedetection/ecs", "resource/instance", "batch"]
          exporters  = ["prometheusremotewrite"]
        }
      }
    }
  })
}

resource "aws_ecs_cluster" "this" {
  name = var.cluster_name

  # Per-task and per-service CPU, memory, network and task-count metrics; the running-task
  # alarm is built on them.
  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_cloudwatch_log_group" "app" {
  name              = "/ecs/${var.cluster_name}/${var.service_name}"
  retention_in_days = var.log_retention_days
}

# ---------------------------------------------------------------------------------------------
# IAM: the execution role is what ECS uses to start the task (pull the image, create log
# streams); the task role is what the app runs as (only: mount and write EFS through the
# access point). Neither can do anything else.

data "aws_iam_policy_document" "ecs_tasks_trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    # Confused-deputy guard: only ECS acting for this account may assume the roles.
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:aws:ecs:${local.region}:${local.account_id}:*"]
    }
  }
}

resource "aws_iam_role" "execution" {
  name               = "${var.cluster_name}-execution"
  description        = "ECS pulls the hello-birthday image and writes its logs with this role"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_trust.json
}

resource "aws_iam_role_policy" "execution" {
  name   = "pull-image-and-write-logs"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

data "aws_iam_policy_document" "execution" {
  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"] # cannot be scoped to a repository
    resources = ["*"]
  }
  statement {
    sid = "PullTheAppImage"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:GetDownloadUrlForLayer",
    ]
    resources = [var.ecr_repository_arn]
  }
  # The collector's image comes through the account's ECR pull-through cache of public.ecr.aws
  # (terraform/bootstrap): the tasks have no internet access, only the ECR endpoints. The first
  # pull of a tag creates the cache repository and imports the image into it.
  statement {
    sid = "PullTheCollectorImageThroughTheCache"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:GetDownloadUrlForLayer",
      "ecr:BatchImportUpstreamImage",
      "ecr:CreateRepository",
    ]
    resources = [var.collector_repository_arn]
  }
  statement {
    sid = "WriteTheAppLogs"
    actions = [
      "logs:CreateLogStream",
      "logs:PutLogEvents",
    ]
    resources = ["${aws_cloudwatch_log_group.app.arn}:*"]
  }
}

resource "aws_iam_role" "task" {
  name               = "${var.cluster_name}-task"
  description        = "The hello-birthday task runs as this role: EFS mount and write through its access point, remote write to its Prometheus workspace"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_trust.json
}

resource "aws_iam_role_policy" "task" {
  name   = "mount-efs-through-access-point"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task.json
}

data "aws_iam_policy_document" "task" {
  statement {
    sid = "MountAndWriteThroughTheAccessPoint"
    actions = [
      "elasticfilesystem:ClientMount",
      "elasticfilesystem:ClientWrite",
    ]
    resources = [var.efs_file_system_arn]
    condition {
      test     = "StringEquals"
      variable = "elasticfilesystem:AccessPointArn"
      values   = [var.efs_access_point_arn]
    }
  }
  # The collector sidecar's remote write, to this environment's workspace and nothing else
  # (no queries, no rule or Alertmanager changes).
  statement {
    sid       = "RemoteWriteToTheWorkspace"
    actions   = ["aps:RemoteWrite"]
    resources = [var.prometheus_workspace_arn]
  }
}

# ---------------------------------------------------------------------------------------------
# The task definition: Fargate, the app (read-only root file system, EFS at /data) and a
# non-essential metrics collector sidecar. The app does not depend on the collector (no
# dependsOn), the load balancer and the container health check are the app's, so a collector
# that fails to start or dies leaves the app, its health and rolling deploys as they were:
# only the metrics stop (the workspace's absent() alert, when there is one, says so).

resource "aws_ecs_task_definition" "app" {
  family                   = var.cluster_name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory # both containers: see local.app_* and local.collector_*
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  volume {
    name = "data"

    efs_volume_configuration {
      file_system_id = var.efs_file_system_id
      # Both are required with an access point and IAM authorization: NFS over TLS, and the
      # task role presented to EFS so the file system policy can check it.
      transit_encryption = "ENABLED"

      authorization_config {
        access_point_id = var.efs_access_point_id
        iam             = "ENABLED"
      }
    }
  }

  container_definitions = jsonencode([
    {
      name      = local.container_name
      image     = var.image
      essential = true
      # The app's own share of the task (see locals): cpu shares and a soft reservation.
      cpu               = local.app_cpu
      memoryReservation = local.app_memory

      portMappings = [
        {
          name          = "http"
          containerPort = var.container_port
          protocol      = "tcp"
        }
      ]

      environment = [
        { name = "RUST_LOG", value = var.log_level },
        # Explicit rather than the app's default, so that it is checked against the load
        # balancer's idle timeout (var.keep_alive_timeout_ms's validation).
        { name = "KEEP_ALIVE_TIMEOUT_MS", value = tostring(var.keep_alive_timeout_ms) },
      ]

      # Nothing but /data is writable: the app needs no /tmp, and a compromised process cannot
      # drop files anywhere else.
      readonlyRootFilesystem = true
      mountPoints = [
        {
          sourceVolume  = "data"
          containerPath = local.data_path
          readOnly      = false
        }
      ]

      # Liveness only (the binary's own probe, no curl in the image): replaces a hung process.
      # Readiness, which depends on EFS, is the target group's job, so a slow EFS takes tasks
      # out of the load balancer instead of getting them killed.
      healthCheck = {
        command     = ["CMD", local.binary, "healthcheck"]
        interval    = 15
        timeout     = 5
        retries     = 3
        startPeriod = 15
      }

      stopTimeout = local.stop_timeout

      # Every request opens a file or two on EFS, on top of its socket.
      ulimits = [
        { name = "nofile", softLimit = 65536, hardLimit = 65536 }
      ]

      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.app.name
          awslogs-region        = local.region
          awslogs-stream-prefix = "app"
          # Never block the app on CloudWatch Logs: a logging hiccup drops log lines (from a
          # 25 MB buffer) rather than stalling requests.
          mode            = "non-blocking"
          max-buffer-size = "25m"
        }
      }
    },
    {
      name  = local.collector_name
      image = var.collector_image
      # Non-essential: the task keeps running when the collector stops, and no container
      # waits for it.
      essential              = false
      cpu                    = local.collector_cpu
      memory                 = local.collector_memory
      readonlyRootFilesystem = true
      environment = [
        { name = "AOT_CONFIG_CONTENT", value = local.collector_config },
      ]
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.app.name
          awslogs-region        = local.region
          awslogs-stream-prefix = "collector"
          mode                  = "non-blocking"
          max-buffer-size       = "4m"
        }
      }
    }
  ])

  lifecycle {
    precondition {
      condition     = var.cpu >= local.app_cpu + local.collector_cpu && var.memory >= local.app_memory + local.collector_memory
      error_message = "The task size (cpu, memory) must hold the app's reservation plus the collector sidecar's: at least ${local.app_cpu + local.collector_cpu} CPU units and ${local.app_memory + local.collector_memory} MiB (Fargate: 512 CPU with 1024 MiB)."
    }
  }

  # Keep old revisions registered when Terraform registers a new one: the running service and
  # a rollback may still use them.
  skip_destroy = true
}

resource "aws_ecs_service" "app" {
  name            = var.service_name
  cluster         = aws_ecs_cluster.this.id
  task_definition = aws_ecs_task_definition.app.arn
  desired_count   = var.desired_count
  launch_type     = "FARGATE"
  # LATEST is 1.4.0 or later, which EFS volumes need.
  platform_version = "LATEST"

  deployment_controller {
    type = "ECS"
  }

  # Rolling update that never dips below full capacity: start up to desired_count new tasks,
  # stop an old one only once a new one is healthy. (AWS's and terraform-aws-ecs's default
  # minimum of 50-66 % would stop old tasks before their replacements serve.)
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  # A new revision whose tasks fail to start or fail their health checks rolls back to the
  # last deployment that reached steady state.
  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  # A new revision that serves errors (healthy to the health checks, broken for users) rolls
  # back when a deployment alarm fires during the deployment.
  alarms {
    alarm_names = var.deployment_alarm_names
    enable      = true
    rollback    = true
  }

  # Readiness failures of a task this young do not count: the app is ready in well under a
  # second, so this only covers image pull, EFS mount and the first two health checks.
  health_check_grace_period_seconds = 30

  # Keep the tasks spread over the zones when one comes back after an outage.
  availability_zone_rebalancing = "ENABLED"

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [var.security_group_id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = var.target_group_arn
    container_name   = local.container_name
    container_port   = var.container_port
  }

  enable_execute_command  = false # distroless: no shell to exec into anyway
  enable_ecs_managed_tags = true
  propagate_tags          = "SERVICE"

  lifecycle {
    # task_definition: the deploy workflow owns the running revision (see the top of this
    # file). desired_count: autoscaling owns it after creation.
    ignore_changes = [task_definition, desired_count]
  }

  # On destroy, the roles' policies must outlive the service, or its tasks hang in DRAINING.
  depends_on = [aws_iam_role_policy.execution, aws_iam_role_policy.task]
}

# ---------------------------------------------------------------------------------------------
# Autoscaling between min_capacity (one task per zone) and max_capacity, on whichever of
# requests per task and CPU asks for more tasks.

resource "aws_appautoscaling_target" "app" {
  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.app.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.min_capacity
  max_capacity       = var.max_capacity
}

resource "aws_appautoscaling_policy" "requests" {
  name               = "${var.cluster_name}-requests-per-target"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.app.service_namespace
  resource_id        = aws_appautoscaling_target.app.resource_id
  scalable_dimension = aws_appautoscaling_target.app.scalable_dimension

  target_tracking_scaling_policy_configuration {
    predefined_metric_specification {
      predefined_metric_type = "ALBRequestCountPerTarget"
      resource_label         = "${var.alb_arn_suffix}/${var.target_group_arn_suffix}"
    }
    target_value       = var.requests_per_task_per_minute
    scale_out_cooldown = 60
    scale_in_cooldown  = 300
  }
}

resource "aws_appautoscaling_policy" "cpu" {
  name               = "${var.cluster_name}-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.app.service_namespace
  resource_id        = aws_appautoscaling_target.app.resource_id
  scalable_dimension = aws_appautoscaling_target.app.scalable_dimension

  target_tracking_scaling_policy_configuration {
    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
    target_value       = var.cpu_target_percent
    scale_out_cooldown = 60
    scale_in_cooldown  = 300
  }
}
