# Alarms on what users feel (5xx rate, p99 latency) and on what precedes it (unhealthy
# targets, fewer running tasks than desired), all notifying one SNS topic. The 5xx-rate alarm
# also guards deployments: the ECS service rolls a deployment back when it fires during one.
#
# The app answers 5xx only when storage fails (README, "Errors"), so the 5xx rate is also the
# EFS health signal.

resource "aws_sns_topic" "alarms" {
  name = "${var.name}-alarms"
}

resource "aws_sns_topic_subscription" "email" {
  count = var.alarm_email == null ? 0 : 1

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email" # AWS mails a confirmation link first; nothing arrives until it is clicked.
  endpoint  = var.alarm_email
}

locals {
  actions = [aws_sns_topic.alarms.arn]
  alb_dimensions = {
    LoadBalancer = var.alb_arn_suffix
    TargetGroup  = var.target_group_arn_suffix
  }
}

resource "aws_cloudwatch_metric_alarm" "http_5xx_rate" {
  alarm_name        = "${var.name}-5xx-rate"
  alarm_description = "More than ${var.max_5xx_percent} % of requests answered 5xx (by the tasks or the load balancer) in 2 of the last 3 minutes."
  alarm_actions     = local.actions
  ok_actions        = local.actions

  comparison_operator = "GreaterThanThreshold"
  threshold           = var.max_5xx_percent
  evaluation_periods  = 3
  datapoints_to_alarm = 2
  treat_missing_data  = "notBreaching"

  metric_query {
    id          = "rate"
    label       = "5xx responses, % of requests"
    expression  = "IF(requests > 0, 100 * (FILL(target5xx, 0) + FILL(elb5xx, 0)) / requests, 0)"
    return_data = true
  }

  metric_query {
    id = "requests"
    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "RequestCount"
      dimensions  = { LoadBalancer = var.alb_arn_suffix }
      period      = 60
      stat        = "Sum"
    }
  }

  metric_query {
    id = "target5xx"
    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "HTTPCode_Target_5XX_Count"
      dimensions  = { LoadBalancer = var.alb_arn_suffix }
      period      = 60
      stat        = "Sum"
    }
  }

  metric_query {
    id = "elb5xx"
    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "HTTPCode_ELB_5XX_Count"
      dimensions  = { LoadBalancer = var.alb_arn_suffix }
      period      = 60
      stat        = "Sum"
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "unhealthy_targets" {
  alarm_name        = "${var.name}-unhealthy-targets"
  alarm_description = "A task has failed the load balancer's readiness check for 3 minutes (EFS unreachable from it, or the task is wedged)."
  alarm_actions     = local.actions
  ok_actions        = local.actions

  namespace           = "AWS/ApplicationELB"
  metric_name         = "UnHealthyHostCount"
  dimensions          = local.alb_dimensions
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
}

resource "aws_cloudwatch_metric_alarm" "p99_latency" {
  alarm_name        = "${var.name}-p99-latency"
  alarm_description = "The slowest 1 % of requests took more than ${var.max_p99_seconds} s for 5 minutes (EFS slow, or lock or storage-slot contention)."
  alarm_actions     = local.actions
  ok_actions        = local.actions

  namespace           = "AWS/ApplicationELB"
  metric_name         = "TargetResponseTime"
  dimensions          = local.alb_dimensions
  extended_statistic  = "p99"
  period              = 60
  evaluation_periods  = 5
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.max_p99_seconds
  treat_missing_data  = "notBreaching"
}

# Container Insights metrics. A task being replaced dips below desired for a minute or two;
# five minutes below means ECS cannot place or keep tasks (zone outage, image pull or EFS
# mount failures, a crash loop).
resource "aws_cloudwatch_metric_alarm" "running_below_desired" {
  alarm_name        = "${var.name}-running-below-desired"
  alarm_description = "The service has run fewer tasks than desired for 5 minutes."
  alarm_actions     = local.actions
  ok_actions        = local.actions

  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  evaluation_periods  = 5
  # No data at all (a new service, a metrics delay) keeps the previous state; a service with
  # no tasks still reports RunningTaskCount 0, and its 503s trip the 5xx alarm too.
  treat_missing_data = "missing"

  metric_query {
    id          = "missing"
    label       = "Desired minus running tasks"
    expression  = "desired - running"
    return_data = true
  }

  metric_query {
    id = "desired"
    metric {
      namespace   = "ECS/ContainerInsights"
      metric_name = "DesiredTaskCount"
      dimensions  = { ClusterName = var.cluster_name, ServiceName = var.service_name }
      period      = 60
      stat        = "Average"
    }
  }

  metric_query {
    id = "running"
    metric {
      namespace   = "ECS/ContainerInsights"
      metric_name = "RunningTaskCount"
      dimensions  = { ClusterName = var.cluster_name, ServiceName = var.service_name }
      period      = 60
      stat        = "Average"
    }
  }
}

# ---------------------------------------------------------------------------------------------
# Prometheus alerts. Each task's collector sidecar (terraform/modules/service) remote-writes the
# app's /metrics to this Amazon Managed Service for Prometheus workspace. The workspace
# evaluates monitoring/rules.yml (the same file promtool tests in CI, passed in by the
# environment module, never a copy) and its Alertmanager publishes firing alerts to the same
# SNS topic as the CloudWatch alarms above: one place for on-call to subscribe.

data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

resource "aws_cloudwatch_log_group" "prometheus" {
  # AMP's vended logs (rule evaluation and Alertmanager errors) need the /aws/vendedlogs/ prefix.
  name              = "/aws/vendedlogs/prometheus/${var.name}"
  retention_in_days = var.prometheus_log_retention_days
}

resource "aws_prometheus_workspace" "this" {
  alias = var.name

  # Rule-evaluation and alert-delivery failures (a rule the workspace rejects, an SNS publish
  # that is denied) land here instead of nowhere.
  logging_configuration {
    log_group_arn = "${aws_cloudwatch_log_group.prometheus.arn}:*"
  }
}

resource "aws_prometheus_rule_group_namespace" "app" {
  name         = "hello-birthday"
  workspace_id = aws_prometheus_workspace.this.id
  data         = var.prometheus_rules
}

resource "aws_prometheus_alert_manager_definition" "this" {
  workspace_id = aws_prometheus_workspace.this.id
  definition = yamlencode({
    alertmanager_config = {
      route = {
        receiver        = "sns"
        group_by        = ["alertname", "severity"]
        group_wait      = "30s"
        group_interval  = "5m"
        repeat_interval = "4h"
        routes = [
          # monitoring/rules.yml's severities: critical repeats hourly until resolved, warning
          # every 12 h. Same topic; the SNS message attribute "severity" lets a subscription
          # filter (page on critical, chat on warning).
          { receiver = "sns", matchers = ["severity=\"critical\""], repeat_interval = "1h" },
          { receiver = "sns", matchers = ["severity=\"warning\""], repeat_interval = "12h" },
        ]
      }
      receivers = [
        {
          name = "sns"
          sns_configs = [
            {
              topic_arn     = aws_sns_topic.alarms.arn
              send_resolved = true
              sigv4         = { region = data.aws_region.current.region }
              subject       = "[{{ .Status | toUpper }}] {{ .GroupLabels.alertname }} ({{ .GroupLabels.severity }})"
              attributes    = { severity = "{{ .GroupLabels.severity }}" }
            }
          ]
        }
      ]
    }
  })

  # The workspace's Alertmanager checks that it may publish when the definition is loaded.
  depends_on = [aws_sns_topic_policy.alarms]
}

# The topic's policy replaces SNS's default one, so it restates what that allowed (the account
# manages and publishes) and adds the two services that publish: CloudWatch alarms of this
# account, and this workspace's Alertmanager. Each service only with a source condition, so no
# other account's alarm or workspace can use the topic (confused-deputy guard).
resource "aws_sns_topic_policy" "alarms" {
  arn    = aws_sns_topic.alarms.arn
  policy = data.aws_iam_policy_document.topic.json
}

data "aws_iam_policy_document" "topic" {
  statement {
    sid = "TheAccountManagesTheTopic"
    actions = [
      "sns:GetTopicAttributes",
      "sns:SetTopicAttributes",
      "sns:AddPermission",
      "sns:RemovePermission",
      "sns:DeleteTopic",
      "sns:Subscribe",
      "sns:ListSubscriptionsByTopic",
      "sns:Publish",
    ]
    resources = [aws_sns_topic.alarms.arn]
    principals {
      type        = "AWS"
      identifiers = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
  statement {
    sid       = "CloudWatchAlarmsOfThisAccountPublish"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alarms.arn]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:aws:cloudwatch:${data.aws_region.current.region}:${data.aws_caller_identity.current.account_id}:alarm:${var.name}-*"]
    }
  }
  statement {
    sid = "ThisWorkspacesAlertmanagerPublishes"
    # What AMP's documentation lists for an SNS receiver.
    actions   = ["sns:Publish", "sns:GetTopicAttributes"]
    resources = [aws_sns_topic.alarms.arn]
    principals {
      type        = "Service"
      identifiers = ["aps.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_prometheus_workspace.this.arn]
    }
  }
}
