# The Prometheus side of the alarms module, planned against a mock AWS provider: the workspace
# evaluates monitoring/rules.yml itself, its Alertmanager routes to the alarm topic, and the
# topic lets only this workspace (and this account's CloudWatch alarms) publish.

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

override_resource {
  target          = aws_sns_topic.alarms
  override_during = plan
  values = {
    arn = "arn:aws:sns:us-east-1:123456789012:hello-birthday-test-alarms"
  }
}

override_resource {
  target          = aws_prometheus_workspace.this
  override_during = plan
  values = {
    id                  = "ws-0123456789abcdef"
    arn                 = "arn:aws:aps:us-east-1:123456789012:workspace/ws-0123456789abcdef"
    prometheus_endpoint = "https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-0123456789abcdef/"
  }
}

variables {
  name                    = "hello-birthday-test"
  alb_arn_suffix          = "app/hello-birthday-test/0123456789abcdef"
  target_group_arn_suffix = "targetgroup/hello-birthday-test/0123456789abcdef"
  cluster_name            = "hello-birthday-test"
  service_name            = "hello-birthday"
  # The real file, as terraform/modules/environment passes it.
  prometheus_rules = file("../../../monitoring/rules.yml")
}

run "prometheus_rules_and_alert_routing" {
  command = plan

  assert {
    condition     = aws_prometheus_rule_group_namespace.app.data == file("../../../monitoring/rules.yml") && aws_prometheus_rule_group_namespace.app.workspace_id == aws_prometheus_workspace.this.id
    error_message = "The workspace must load monitoring/rules.yml itself, unchanged."
  }
  assert {
    condition = alltrue([
      for r in yamldecode(aws_prometheus_alert_manager_definition.this.definition).alertmanager_config.receivers :
      alltrue([for c in r.sns_configs : c.topic_arn == aws_sns_topic.alarms.arn && c.sigv4.region == "us-east-1"])
    ])
    error_message = "Every Alertmanager receiver must publish to the alarm topic, signed for the topic's region."
  }
  assert {
    condition     = contains(yamldecode(aws_prometheus_alert_manager_definition.this.definition).alertmanager_config.route.group_by, "alertname")
    error_message = "Alerts must be grouped by alertname."
  }
}

run "topic_policy_admits_only_this_workspace" {
  command = plan

  assert {
    condition = alltrue([
      for s in data.aws_iam_policy_document.topic.statement :
      contains(flatten([for c in s.condition : c.variable]), "aws:SourceArn") && contains(flatten([for c in s.condition : c.variable]), "aws:SourceAccount")
      if contains(flatten([for p in s.principals : tolist(p.identifiers)]), "aps.amazonaws.com")
    ]) && length([for s in data.aws_iam_policy_document.topic.statement : s if contains(flatten([for p in s.principals : tolist(p.identifiers)]), "aps.amazonaws.com")]) == 1
    error_message = "aps.amazonaws.com may publish to the topic only in one statement with aws:SourceArn and aws:SourceAccount conditions."
  }
  assert {
    condition = [
      for s in data.aws_iam_policy_document.topic.statement :
      [for c in s.condition : toset(c.values) if c.variable == "aws:SourceArn"]
      if contains(flatten([for p in s.principals : tolist(p.identifiers)]), "aps.amazonaws.com")
    ] == [[toset([aws_prometheus_workspace.this.arn])]]
    error_message = "The aps.amazonaws.com statement's source must be this environment's workspace."
  }
  assert {
    condition = alltrue([
      for s in data.aws_iam_policy_document.topic.statement :
      length(s.condition) > 0
      if anytrue([for p in s.principals : p.type == "Service"])
    ])
    error_message = "Every service principal on the topic must carry a source condition (confused-deputy guard)."
  }
  assert {
    condition     = !contains(flatten([for s in data.aws_iam_policy_document.topic.statement : [for p in s.principals : tolist(p.identifiers)]]), "*")
    error_message = "The topic must not be open to every principal."
  }
  assert {
    condition     = aws_sns_topic_policy.alarms.arn == aws_sns_topic.alarms.arn
    error_message = "The policy must be the alarm topic's."
  }
}
