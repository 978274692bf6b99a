# The ECS service and its task definition, planned against a mock AWS provider: the settings a
# zero-downtime rolling deploy depends on. The inputs are what terraform/modules/environment
# passes (container port 8080, three private subnets, one per zone); the app-side facts (the
# port, the binary, /data, the shutdown timeout) are checked against the Dockerfile and src/ by
# tests/infra.rs.

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

# Known ARNs during plan, so the IAM statements that name them can be compared.
override_resource {
  target          = aws_cloudwatch_log_group.app
  override_during = plan
  values = {
    arn = "arn:aws:logs:us-east-1:123456789012:log-group:/ecs/hello-birthday-test/hello-birthday"
  }
}

variables {
  cluster_name             = "hello-birthday-test"
  service_name             = "hello-birthday"
  image                    = "123456789012.dkr.ecr.us-east-1.amazonaws.com/hello-birthday:0123456789abcdef0123456789abcdef01234567"
  ecr_repository_arn       = "arn:aws:ecr:us-east-1:123456789012:repository/hello-birthday"
  container_port           = 8080
  private_subnet_ids       = ["subnet-aaaa", "subnet-bbbb", "subnet-cccc"]
  security_group_id        = "sg-tasks"
  target_group_arn         = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/hello-birthday-test/0123456789abcdef"
  alb_arn_suffix           = "app/hello-birthday-test/0123456789abcdef"
  target_group_arn_suffix  = "targetgroup/hello-birthday-test/0123456789abcdef"
  efs_file_system_id       = "fs-0123456789abcdef0"
  efs_file_system_arn      = "arn:aws:elasticfilesystem:us-east-1:123456789012:file-system/fs-0123456789abcdef0"
  efs_access_point_id      = "fsap-0123456789abcdef0"
  efs_access_point_arn     = "arn:aws:elasticfilesystem:us-east-1:123456789012:access-point/fsap-0123456789abcdef0"
  deployment_alarm_names   = ["hello-birthday-test-5xx-rate"]
  collector_image          = "123456789012.dkr.ecr.us-east-1.amazonaws.com/ecr-public/aws-observability/aws-otel-collector:v0.43.3"
  collector_repository_arn = "arn:aws:ecr:us-east-1:123456789012:repository/ecr-public/aws-observability/aws-otel-collector"
  prometheus_workspace_arn = "arn:aws:aps:us-east-1:123456789012:workspace/ws-0123456789abcdef"
  prometheus_endpoint      = "https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-0123456789abcdef/"
  # The load balancer module's idle_timeout.
  load_balancer_idle_timeout = 60
}

run "rolling_deploys_keep_full_capacity" {
  command = plan

  assert {
    condition     = aws_ecs_service.app.deployment_minimum_healthy_percent == 100
    error_message = "deployment_minimum_healthy_percent must be 100: below it ECS stops old tasks before their replacements pass the readiness check, and every deploy loses capacity (and the requests in flight on those tasks)."
  }
  assert {
    condition     = aws_ecs_service.app.deployment_maximum_percent == 200
    error_message = "deployment_maximum_percent must be 200: with minimum healthy at 100 %, a full set of new tasks has to fit beside the old one, or the deploy cannot start a single replacement."
  }
  assert {
    condition     = one(aws_ecs_service.app.deployment_controller).type == "ECS"
    error_message = "The deployment controller must be ECS (rolling update): the percentages, circuit breaker and alarms above only apply to it."
  }
  assert {
    condition     = one(aws_ecs_service.app.deployment_circuit_breaker).enable && one(aws_ecs_service.app.deployment_circuit_breaker).rollback
    error_message = "The deployment circuit breaker must be enabled with rollback: otherwise an image whose tasks never become healthy keeps the deploy retrying forever instead of returning to the last good revision."
  }
  assert {
    condition     = one(aws_ecs_service.app.alarms).enable && one(aws_ecs_service.app.alarms).rollback
    error_message = "Deployment alarms must be enabled with rollback: a revision that passes health checks but answers users with 5xx is only rolled back by the alarms."
  }
  assert {
    condition     = length(setsubtract(var.deployment_alarm_names, one(aws_ecs_service.app.alarms).alarm_names)) == 0
    error_message = "Every deployment alarm given to the module must guard the deployment (alarms.alarm_names)."
  }
  assert {
    condition     = aws_ecs_service.app.health_check_grace_period_seconds >= 20 && aws_ecs_service.app.health_check_grace_period_seconds <= 120
    error_message = "health_check_grace_period_seconds must be 20-120 s: long enough for image pull, EFS mount and two readiness checks (so slow starters are not killed in a loop), short enough that a broken task is replaced quickly."
  }
  assert {
    condition     = aws_ecs_service.app.availability_zone_rebalancing == "ENABLED"
    error_message = "availability_zone_rebalancing must be ENABLED, so tasks spread over the zones again after a zone comes back."
  }
  assert {
    condition     = aws_ecs_service.app.launch_type == "FARGATE" && aws_ecs_service.app.platform_version == "LATEST"
    error_message = "The service must run on Fargate platform LATEST (1.4.0 or later): older platforms cannot mount EFS volumes."
  }
  assert {
    condition     = aws_ecs_service.app.enable_execute_command == false
    error_message = "ECS Exec must stay off: the image has no shell, and exec would need extra task-role permissions."
  }
}

run "one_task_per_zone_in_private_subnets" {
  command = plan

  assert {
    condition     = aws_ecs_service.app.desired_count == var.desired_count && var.desired_count >= length(var.private_subnet_ids)
    error_message = "desired_count must be the requested count and at least one task per zone (subnet): fewer leaves a zone without a task, and losing the other zones takes the service down."
  }
  assert {
    condition     = aws_appautoscaling_target.app.min_capacity == var.min_capacity && aws_appautoscaling_target.app.min_capacity >= length(var.private_subnet_ids)
    error_message = "Autoscaling must never go below one task per zone (min_capacity >= number of private subnets)."
  }
  assert {
    condition     = aws_appautoscaling_target.app.max_capacity == var.max_capacity && aws_appautoscaling_target.app.max_capacity >= aws_appautoscaling_target.app.min_capacity
    error_message = "Autoscaling's maximum must be the requested one and not below its minimum."
  }
  assert {
    condition     = one(aws_ecs_service.app.network_configuration).subnets == toset(var.private_subnet_ids) && length(var.private_subnet_ids) >= 3
    error_message = "Tasks must run in the three (or more) private subnets, one per zone, so ECS spreads them over the zones."
  }
  assert {
    condition     = one(aws_ecs_service.app.network_configuration).assign_public_ip == false
    error_message = "Tasks must not get public IPs (assign_public_ip = false): they are reached only through the load balancer and reach AWS through VPC endpoints."
  }
  assert {
    condition     = one(aws_ecs_service.app.network_configuration).security_groups == toset([var.security_group_id])
    error_message = "Tasks must have exactly the tasks security group, which admits only the load balancer (and metrics scrapers)."
  }
}

run "load_balancer_targets_the_container" {
  command = plan

  assert {
    condition     = one(aws_ecs_service.app.load_balancer).target_group_arn == var.target_group_arn
    error_message = "The service must register its tasks with the app's target group."
  }
  assert {
    condition     = one(aws_ecs_service.app.load_balancer).container_name == jsondecode(aws_ecs_task_definition.app.container_definitions)[0].name
    error_message = "load_balancer.container_name must be the task definition's container, or ECS refuses the service."
  }
  assert {
    condition     = one(aws_ecs_service.app.load_balancer).container_port == var.container_port && jsondecode(aws_ecs_task_definition.app.container_definitions)[0].portMappings[0].containerPort == var.container_port
    error_message = "The load balancer and the container's port mapping must both use the container port the app listens on."
  }
}

run "task_definition" {
  command = plan

  assert {
    condition     = aws_ecs_task_definition.app.requires_compatibilities == toset(["FARGATE"]) && aws_ecs_task_definition.app.network_mode == "awsvpc"
    error_message = "The task definition must be for Fargate (awsvpc networking): each task gets its own ENI, which the target group registers by IP."
  }
  assert {
    condition     = [for c in jsondecode(aws_ecs_task_definition.app.container_definitions) : c.name if c.essential] == [local.container_name] && jsondecode(aws_ecs_task_definition.app.container_definitions)[0].name == local.container_name
    error_message = "The app's container must come first and be the task's only essential container (the task stops when it does)."
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.app.container_definitions)[0].image == var.image
    error_message = "The first revision must run the image the module was given."
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.app.container_definitions)[0].readonlyRootFilesystem == true
    error_message = "The root file system must be read-only: only the EFS mount is writable, so a compromised process cannot drop files anywhere else."
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.app.container_definitions)[0].stopTimeout == local.stop_timeout && local.stop_timeout <= 120
    error_message = "stopTimeout must be the module's stop_timeout and at most 120 s (Fargate's maximum; larger values are rejected). tests/infra.rs checks it exceeds the app's shutdown timeout."
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.app.container_definitions)[0].healthCheck.command == ["CMD", local.binary, "healthcheck"]
    error_message = "The container health check must run the binary's own healthcheck subcommand (exec form; the distroless image has no shell or curl)."
  }
  assert {
    condition = (
      jsondecode(aws_ecs_task_definition.app.container_definitions)[0].healthCheck.interval == 15 &&
      jsondecode(aws_ecs_task_definition.app.container_definitions)[0].healthCheck.timeout == 5 &&
      jsondecode(aws_ecs_task_definition.app.container_definitions)[0].healthCheck.retries == 3 &&
      jsondecode(aws_ecs_task_definition.app.container_definitions)[0].healthCheck.startPeriod >= 10 &&
      jsondecode(aws_ecs_task_definition.app.container_definitions)[0].healthCheck.startPeriod <= 30
    )
    error_message = "The container health check must be interval 15 s, timeout 5 s, 3 retries, start period 10-30 s: a hung process is replaced within a minute, a slow start is not."
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.app.container_definitions)[0].logConfiguration.logDriver == "awslogs" && jsondecode(aws_ecs_task_definition.app.container_definitions)[0].logConfiguration.options.mode == "non-blocking"
    error_message = "Logs must go to CloudWatch (awslogs) in non-blocking mode: a CloudWatch Logs hiccup must drop log lines, not stall requests."
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.app.container_definitions)[0].logConfiguration.options["awslogs-group"] == aws_cloudwatch_log_group.app.name
    error_message = "The container must log to the module's log group (the one with a retention period), not to one ECS would create without."
  }
  assert {
    condition     = [for e in jsondecode(aws_ecs_task_definition.app.container_definitions)[0].environment : e.value if e.name == "RUST_LOG"] == [var.log_level]
    error_message = "RUST_LOG must be set once, to var.log_level."
  }
  assert {
    condition     = aws_ecs_task_definition.app.skip_destroy == true
    error_message = "skip_destroy must be true: the running service, and a rollback, may still use the revision Terraform replaces."
  }
}

run "data_volume_is_efs_through_the_access_point" {
  command = plan

  assert {
    condition     = length(aws_ecs_task_definition.app.volume) == 1
    error_message = "The task must have exactly one volume, the EFS data volume."
  }
  assert {
    condition = (
      length(jsondecode(aws_ecs_task_definition.app.container_definitions)[0].mountPoints) == 1 &&
      jsondecode(aws_ecs_task_definition.app.container_definitions)[0].mountPoints[0].sourceVolume == one(aws_ecs_task_definition.app.volume).name &&
      jsondecode(aws_ecs_task_definition.app.container_definitions)[0].mountPoints[0].containerPath == local.data_path &&
      jsondecode(aws_ecs_task_definition.app.container_definitions)[0].mountPoints[0].readOnly == false
    )
    error_message = "The container must mount the EFS volume, writable, at the data path and nowhere else: it is the only place the app may write."
  }
  assert {
    condition     = one(one(aws_ecs_task_definition.app.volume).efs_volume_configuration).file_system_id == var.efs_file_system_id
    error_message = "The data volume must be the module's EFS file system."
  }
  assert {
    condition     = one(one(aws_ecs_task_definition.app.volume).efs_volume_configuration).transit_encryption == "ENABLED"
    error_message = "EFS transit encryption must be ENABLED: the file system policy denies non-TLS clients, and access points with IAM authorization require it."
  }
  assert {
    condition     = one(one(one(aws_ecs_task_definition.app.volume).efs_volume_configuration).authorization_config).iam == "ENABLED"
    error_message = "EFS IAM authorization must be ENABLED: the task role is what the file system policy allows to mount and write."
  }
  assert {
    condition     = one(one(one(aws_ecs_task_definition.app.volume).efs_volume_configuration).authorization_config).access_point_id == var.efs_access_point_id
    error_message = "The volume must mount through the access point, which forces the container's uid/gid and the data root directory."
  }
}

run "roles_are_least_privilege" {
  command = plan

  assert {
    condition = alltrue([
      for s in data.aws_iam_policy_document.ecs_tasks_trust.statement :
      s.actions == toset(["sts:AssumeRole"]) &&
      [for p in s.principals : p.identifiers] == [toset(["ecs-tasks.amazonaws.com"])] &&
      contains([for c in s.condition : c.variable], "aws:SourceAccount")
    ])
    error_message = "Only ECS tasks of this account may assume the task and execution roles (confused-deputy guard on aws:SourceAccount)."
  }
  assert {
    condition = (
      length(data.aws_iam_policy_document.task.statement) == 2 &&
      data.aws_iam_policy_document.task.statement[0].actions == toset(["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]) &&
      data.aws_iam_policy_document.task.statement[0].resources == toset([var.efs_file_system_arn]) &&
      [for c in data.aws_iam_policy_document.task.statement[0].condition : toset(c.values) if c.variable == "elasticfilesystem:AccessPointArn"] == [toset([var.efs_access_point_arn])]
    )
    error_message = "The task role may only mount and write the file system, through the access point: no ClientRootAccess, nothing else in AWS."
  }
  assert {
    condition = alltrue([
      for s in data.aws_iam_policy_document.execution.statement :
      s.resources != toset(["*"]) || s.actions == toset(["ecr:GetAuthorizationToken"])
    ])
    error_message = "The execution role may use resource \"*\" only for ecr:GetAuthorizationToken (which cannot be scoped); everything else names the repository or the log group."
  }
  assert {
    condition = (
      [for s in data.aws_iam_policy_document.execution.statement : s.resources if s.sid == "PullTheAppImage"] == [toset([var.ecr_repository_arn])] &&
      [for s in data.aws_iam_policy_document.execution.statement : s.resources if s.sid == "WriteTheAppLogs"] == [toset(["${aws_cloudwatch_log_group.app.arn}:*"])]
    )
    error_message = "The execution role may pull only the app's repository and write only the app's log group."
  }
}

run "fewer_than_three_tasks_is_refused" {
  command = plan

  variables {
    min_capacity = 2
  }

  expect_failures = [var.min_capacity]
}

run "a_cpu_size_fargate_does_not_offer_is_refused" {
  command = plan

  variables {
    cpu = 384
  }

  expect_failures = [var.cpu]
}

# The metrics collector sidecar: present, but unable to affect the app, its health or its deploys.
run "collector_sidecar_cannot_take_the_app_down" {
  command = plan

  assert {
    condition     = [for c in jsondecode(aws_ecs_task_definition.app.container_definitions) : c.essential if c.name == local.collector_name] == [false]
    error_message = "The collector sidecar must exist exactly once and be non-essential: a collector that fails must not stop the task."
  }
  assert {
    condition     = alltrue([for c in jsondecode(aws_ecs_task_definition.app.container_definitions) : length(lookup(c, "dependsOn", [])) == 0])
    error_message = "No container may dependsOn another: the app must start, pass its health check and be deployed whatever the collector does."
  }
  assert {
    condition = (
      one(aws_ecs_service.app.load_balancer).container_name == local.container_name &&
      [for c in jsondecode(aws_ecs_task_definition.app.container_definitions) : c.name if can(c.healthCheck)] == [local.container_name]
    )
    error_message = "The load balancer must target the app's container, and the only container health check must be the app's."
  }
  assert {
    condition     = startswith(one([for c in jsondecode(aws_ecs_task_definition.app.container_definitions) : c.image if c.name == local.collector_name]), "123456789012.dkr.ecr.us-east-1.amazonaws.com/ecr-public/aws-observability/aws-otel-collector:v")
    error_message = "The collector image must be the pinned aws-otel-collector release through the ECR pull-through cache."
  }
  assert {
    condition = (
      aws_ecs_task_definition.app.cpu == tostring(var.cpu) && aws_ecs_task_definition.app.memory == tostring(var.memory) &&
      sum([for c in jsondecode(aws_ecs_task_definition.app.container_definitions) : c.cpu]) <= var.cpu &&
      sum([for c in jsondecode(aws_ecs_task_definition.app.container_definitions) : lookup(c, "memory", lookup(c, "memoryReservation", 0))]) <= var.memory &&
      one([for c in jsondecode(aws_ecs_task_definition.app.container_definitions) : c.cpu if c.name == local.container_name]) >= 256 &&
      one([for c in jsondecode(aws_ecs_task_definition.app.container_definitions) : c.memoryReservation if c.name == local.container_name]) >= 512 &&
      one([for c in jsondecode(aws_ecs_task_definition.app.container_definitions) : c.memory if c.name == local.collector_name]) > 0
    )
    error_message = "The task size must be the module's cpu and memory, the containers' CPU and memory must fit it, the app must keep its 256 CPU / 512 MiB, and the collector must have a hard memory limit."
  }
  assert {
    condition = (
      yamldecode(local.collector_config).receivers.prometheus.config.scrape_configs[0].job_name == "hello-birthday" &&
      yamldecode(local.collector_config).receivers.prometheus.config.scrape_configs[0].static_configs[0].targets == ["localhost:${var.container_port}"] &&
      yamldecode(local.collector_config).receivers.prometheus.config.scrape_configs[0].metrics_path == "/metrics"
    )
    error_message = "The collector must scrape the app's /metrics on localhost:<container port> as job hello-birthday, the job monitoring/rules.yml selects."
  }
  assert {
    condition = (
      yamldecode(local.collector_config).exporters.prometheusremotewrite.endpoint == "${var.prometheus_endpoint}api/v1/remote_write" &&
      yamldecode(local.collector_config).exporters.prometheusremotewrite.auth.authenticator == "sigv4auth" &&
      contains(yamldecode(local.collector_config).service.extensions, "sigv4auth") &&
      yamldecode(local.collector_config).service.pipelines.metrics.exporters == ["prometheusremotewrite"]
    )
    error_message = "The collector must remote-write, SigV4-signed, to the workspace's remote-write URL."
  }
  assert {
    condition     = [for c in jsondecode(aws_ecs_task_definition.app.container_definitions) : [for e in c.environment : e.value if e.name == "AOT_CONFIG_CONTENT"] if c.name == local.collector_name] == [[local.collector_config]]
    error_message = "The collector's configuration must reach it in AOT_CONFIG_CONTENT."
  }
  assert {
    condition = (
      [for s in data.aws_iam_policy_document.task.statement : s.actions if s.sid == "RemoteWriteToTheWorkspace"] == [toset(["aps:RemoteWrite"])] &&
      [for s in data.aws_iam_policy_document.task.statement : s.resources if s.sid == "RemoteWriteToTheWorkspace"] == [toset([var.prometheus_workspace_arn])] &&
      length(flatten([for s in data.aws_iam_policy_document.task.statement : [for a in s.actions : a if startswith(a, "aps:")]])) == 1
    )
    error_message = "The task role may only aps:RemoteWrite, and only to this environment's workspace."
  }
  assert {
    condition     = [for s in data.aws_iam_policy_document.execution.statement : s.resources if s.sid == "PullTheCollectorImageThroughTheCache"] == [toset([var.collector_repository_arn])]
    error_message = "The execution role may pull (and import into the cache) only the collector's cache repository."
  }
}

run "a_task_too_small_for_app_and_collector_is_refused" {
  command = plan

  variables {
    cpu    = 256
    memory = 512
  }

  expect_failures = [aws_ecs_task_definition.app]
}

# The app's keep-alive timeout against the load balancer's idle timeout: AWS asks targets to keep
# idle connections open longer than the load balancer does, or a client gets a 502 when the load
# balancer reuses a connection the app is closing. The app's default (75 s) is only a default,
# so the task sets it, and the module checks it against what it is told the idle timeout is
# (terraform/modules/environment passes the load balancer module's idle_timeout output).
run "keep_alive_outlasts_the_load_balancers_idle_timeout" {
  command = plan

  assert {
    condition     = length([for e in jsondecode(aws_ecs_task_definition.app.container_definitions)[0].environment : e if e.name == "KEEP_ALIVE_TIMEOUT_MS"]) == 1
    error_message = "The app's container must set KEEP_ALIVE_TIMEOUT_MS exactly once, so that it is the checked value and not the app's default."
  }
  assert {
    condition     = alltrue([for e in jsondecode(aws_ecs_task_definition.app.container_definitions)[0].environment : tonumber(e.value) > var.load_balancer_idle_timeout * 1000 if e.name == "KEEP_ALIVE_TIMEOUT_MS"])
    error_message = "KEEP_ALIVE_TIMEOUT_MS in the rendered container environment must be longer than the load balancer's idle timeout (in ms)."
  }
  assert {
    condition     = [for e in jsondecode(aws_ecs_task_definition.app.container_definitions)[0].environment : e.value if e.name == "KEEP_ALIVE_TIMEOUT_MS"] == ["75000"]
    error_message = "By default the task must pass 75000 ms, the app's own default (src/configuration.rs), in whole milliseconds."
  }
}

run "a_longer_load_balancer_idle_timeout_carries_the_keep_alive_timeout_with_it" {
  command = plan

  variables {
    load_balancer_idle_timeout = 300
    keep_alive_timeout_ms      = 315000
  }

  assert {
    condition     = [for e in jsondecode(aws_ecs_task_definition.app.container_definitions)[0].environment : e.value if e.name == "KEEP_ALIVE_TIMEOUT_MS"] == ["315000"]
    error_message = "KEEP_ALIVE_TIMEOUT_MS must be var.keep_alive_timeout_ms."
  }
}

run "a_keep_alive_timeout_equal_to_the_idle_timeout_is_refused" {
  command = plan

  variables {
    keep_alive_timeout_ms = 60000
  }

  expect_failures = [var.keep_alive_timeout_ms]
}

# The default keep-alive (75 s) is not enough once the load balancer waits longer.
run "the_default_keep_alive_under_a_longer_idle_timeout_is_refused" {
  command = plan

  variables {
    load_balancer_idle_timeout = 120
  }

  expect_failures = [var.keep_alive_timeout_ms]
}
