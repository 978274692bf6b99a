# The load balancer and the app's target group, planned against a mock AWS provider: how fast a
# new task takes traffic, how fast a broken or stopping one stops getting it. The inputs are
# what terraform/modules/environment passes; tests/infra.rs checks that its readiness path is a
# readiness route of the app (src/routes/health.rs) and its port the image's EXPOSE.

mock_provider "aws" {}

# Known ARNs during plan, so the WAF's association and logging can be checked to name this load
# balancer, this web ACL and this log group.
override_resource {
  target          = aws_lb.this
  override_during = plan
  values = {
    arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/hello-birthday-test/0123456789abcdef"
  }
}

override_resource {
  target          = aws_wafv2_web_acl.this
  override_during = plan
  values = {
    arn = "arn:aws:wafv2:us-east-1:123456789012:regional/webacl/hello-birthday-test/01234567-89ab-cdef-0123-456789abcdef"
  }
}

override_resource {
  target          = aws_cloudwatch_log_group.waf
  override_during = plan
  values = {
    arn = "arn:aws:logs:us-east-1:123456789012:log-group:aws-waf-logs-hello-birthday-test"
  }
}

variables {
  name              = "hello-birthday-test"
  vpc_id            = "vpc-0123456789abcdef0"
  public_subnet_ids = ["subnet-aaaa", "subnet-bbbb", "subnet-cccc"]
  security_group_id = "sg-alb"
  container_port    = 8080
  health_check_path = "/health"
}

run "target_group_checks_readiness" {
  command = plan

  assert {
    condition     = aws_lb_target_group.app.target_type == "ip" && aws_lb_target_group.app.protocol == "HTTP" && aws_lb_target_group.app.port == var.container_port
    error_message = "The target group must register Fargate tasks by IP (awsvpc) on the container port, over HTTP."
  }
  assert {
    condition     = one(aws_lb_target_group.app.health_check).enabled && one(aws_lb_target_group.app.health_check).path == var.health_check_path
    error_message = "The target group must health-check the app's readiness route (the path the module is given), so a task that cannot write to EFS or is shutting down gets no traffic."
  }
  assert {
    condition     = one(aws_lb_target_group.app.health_check).port == "traffic-port" && one(aws_lb_target_group.app.health_check).protocol == "HTTP"
    error_message = "The health check must probe the port that serves the traffic (traffic-port), over HTTP."
  }
  assert {
    condition     = one(aws_lb_target_group.app.health_check).matcher == "200"
    error_message = "Only 200 counts as ready: the readiness route answers 503 while the task cannot serve."
  }
  assert {
    condition     = one(aws_lb_target_group.app.health_check).interval == 10 && one(aws_lb_target_group.app.health_check).timeout == 5
    error_message = "Health checks every 10 s with a 5 s timeout (AWS's default is 30 s): a new task takes traffic, and a broken one loses it, within about 20 s."
  }
  assert {
    condition     = one(aws_lb_target_group.app.health_check).healthy_threshold == 2 && one(aws_lb_target_group.app.health_check).unhealthy_threshold == 2
    error_message = "Healthy and unhealthy thresholds must be 2 (AWS's defaults are 5 and 2): with 5, a deploy waits 150 s per new task before it takes traffic."
  }
  assert {
    condition     = tonumber(aws_lb_target_group.app.deregistration_delay) >= 10 && tonumber(aws_lb_target_group.app.deregistration_delay) <= 30
    error_message = "deregistration_delay must be 10-30 s: long enough to finish in-flight requests (milliseconds here) before ECS sends SIGTERM, short enough that deploys do not crawl (AWS's default is 300 s)."
  }
}

run "load_balancer_edge" {
  command = plan

  assert {
    condition     = aws_lb.this.load_balancer_type == "application" && aws_lb.this.internal == false
    error_message = "The service is reached through a public Application Load Balancer."
  }
  assert {
    condition     = aws_lb.this.subnets == toset(var.public_subnet_ids) && length(var.public_subnet_ids) >= 3
    error_message = "The load balancer must span the public subnet of every zone, so losing one zone does not take the entry point down."
  }
  assert {
    condition     = aws_lb.this.drop_invalid_header_fields == true
    error_message = "The ALB must drop requests with invalid header names instead of passing them to the app (request smuggling hygiene, checkov CKV_AWS_131)."
  }
  assert {
    condition     = aws_lb.this.enable_deletion_protection == var.deletion_protection
    error_message = "Deletion protection must follow var.deletion_protection (default on)."
  }
}

run "plain_http_without_a_certificate" {
  command = plan

  assert {
    condition     = length(aws_lb_listener.http_forward) == 1 && length(aws_lb_listener.https) == 0 && length(aws_lb_listener.http_redirect) == 0
    error_message = "Without a certificate, port 80 must forward to the app (and nothing listen on 443)."
  }
  assert {
    condition     = one(one(aws_lb_listener.http_forward).default_action).type == "forward"
    error_message = "The plain-HTTP listener must forward to the app's target group."
  }
  assert {
    condition = (
      aws_lb_listener_rule.hide_metrics.priority == 10 &&
      one(aws_lb_listener_rule.hide_metrics.action).type == "fixed-response" &&
      one(one(aws_lb_listener_rule.hide_metrics.action).fixed_response).status_code == "404" &&
      toset(one(one(aws_lb_listener_rule.hide_metrics.condition).path_pattern).values) == toset(["/metrics", "/metrics/*"])
    )
    error_message = "The load balancer must answer /metrics itself with a 404: the metrics are for the Prometheus inside the VPC, not for the internet."
  }
}

run "https_with_a_certificate" {
  command = plan

  variables {
    certificate_arn = "arn:aws:acm:us-east-1:123456789012:certificate/01234567-89ab-cdef-0123-456789abcdef"
  }

  assert {
    condition     = length(aws_lb_listener.https) == 1 && length(aws_lb_listener.http_redirect) == 1 && length(aws_lb_listener.http_forward) == 0
    error_message = "With a certificate, 443 serves the app and 80 only redirects: no plain-HTTP path to the app."
  }
  assert {
    condition     = aws_lb_listener.https[0].protocol == "HTTPS" && aws_lb_listener.https[0].ssl_policy == "ELBSecurityPolicy-TLS13-1-2-2021-06" && aws_lb_listener.https[0].certificate_arn == var.certificate_arn
    error_message = "The HTTPS listener must use the given certificate and the TLS 1.3/1.2 forward-secret policy."
  }
  assert {
    condition     = one(one(aws_lb_listener.http_redirect[0].default_action).redirect).protocol == "HTTPS" && one(one(aws_lb_listener.http_redirect[0].default_action).redirect).port == "443" && one(one(aws_lb_listener.http_redirect[0].default_action).redirect).status_code == "HTTP_301"
    error_message = "Port 80 must redirect permanently (301) to HTTPS on 443."
  }
}

run "a_relative_health_check_path_is_refused" {
  command = plan

  variables {
    health_check_path = "health"
  }

  expect_failures = [var.health_check_path]
}

run "idle_timeout_is_exported_for_the_keep_alive_check" {
  command = plan

  assert {
    condition     = aws_lb.this.idle_timeout == 60 && output.idle_timeout == aws_lb.this.idle_timeout
    error_message = "The ALB's idle timeout must be 60 s (AWS's default) and be the module's idle_timeout output, which terraform/modules/environment checks the app's keep-alive timeout against."
  }
}

# ---------------------------------------------------------------------------------------------
# AWS WAF (waf.tf)

run "waf_protects_this_load_balancer" {
  command = plan

  assert {
    condition     = aws_wafv2_web_acl_association.this.resource_arn == aws_lb.this.arn && aws_wafv2_web_acl_association.this.web_acl_arn == aws_wafv2_web_acl.this.arn
    error_message = "The web ACL must be associated with this module's load balancer (checkov CKV2_AWS_28)."
  }
  assert {
    condition     = aws_wafv2_web_acl.this.scope == "REGIONAL" && length(one(aws_wafv2_web_acl.this.default_action).allow) == 1
    error_message = "A load balancer's web ACL is REGIONAL, and lets through what no rule blocks."
  }
  assert {
    condition = (
      alltrue([for r in aws_wafv2_web_acl.this.rule : one(r.visibility_config).cloudwatch_metrics_enabled && one(r.visibility_config).sampled_requests_enabled]) &&
      one(aws_wafv2_web_acl.this.visibility_config).cloudwatch_metrics_enabled && one(aws_wafv2_web_acl.this.visibility_config).sampled_requests_enabled
    )
    error_message = "Every rule, and the web ACL, must publish CloudWatch metrics (AWS/WAFV2 BlockedRequests by Rule) and keep sampled requests (the console's view of what was blocked)."
  }
  assert {
    condition     = length(distinct([for r in aws_wafv2_web_acl.this.rule : one(r.visibility_config).metric_name])) == length(aws_wafv2_web_acl.this.rule)
    error_message = "Each rule needs its own metric name, or their BlockedRequests add up in one metric."
  }
  assert {
    condition     = toset([for r in aws_wafv2_web_acl.this.rule : r.name]) == toset(["rate-limit-put", "rate-limit-get", "aws-anonymous-ip", "aws-known-bad-inputs", "aws-common"])
    error_message = "The web ACL must hold the two rate limits and the three managed rule groups, and nothing else."
  }
}

run "waf_rate_limits_put_and_get_separately" {
  command = plan

  assert {
    condition = alltrue([
      for r in aws_wafv2_web_acl.this.rule : (
        one(one(r.statement).rate_based_statement).aggregate_key_type == "IP" &&
        one(one(r.statement).rate_based_statement).evaluation_window_sec == 300
      ) if startswith(r.name, "rate-limit-")
    ])
    error_message = "Both rate limits must count per client IP over 5 minutes (the window the limits are sized for)."
  }
  assert {
    condition = [
      for r in aws_wafv2_web_acl.this.rule : one(one(r.statement).rate_based_statement).limit if r.name == "rate-limit-put"
    ] == [var.waf_put_limit]
    error_message = "The PUT rate limit must be var.waf_put_limit."
  }
  assert {
    condition = [
      for r in aws_wafv2_web_acl.this.rule : one(one(r.statement).rate_based_statement).limit if r.name == "rate-limit-get"
    ] == [var.waf_get_limit]
    error_message = "The GET rate limit must be var.waf_get_limit."
  }
  assert {
    condition = [
      for r in aws_wafv2_web_acl.this.rule : [
        for b in one(one(one(r.statement).rate_based_statement).scope_down_statement).byte_match_statement : {
          search   = b.search_string
          position = b.positional_constraint
          method   = length(one(b.field_to_match).method)
          nothing  = [for t in b.text_transformation : t.type]
        }
      ] if r.name == "rate-limit-put"
    ] == [[{ search = "PUT", position = "EXACTLY", method = 1, nothing = ["NONE"] }]]
    error_message = "The PUT budget must count exactly the requests whose method is PUT (a byte match on the method, untransformed)."
  }
  assert {
    condition = [
      for r in aws_wafv2_web_acl.this.rule : [
        for b in one(one(one(one(one(r.statement).rate_based_statement).scope_down_statement).not_statement).statement).byte_match_statement : {
          search   = b.search_string
          position = b.positional_constraint
          method   = length(one(b.field_to_match).method)
        }
      ] if r.name == "rate-limit-get"
    ] == [[{ search = "PUT", position = "EXACTLY", method = 1 }]]
    error_message = "The GET budget must count every request whose method is not PUT (GET, HEAD, and whatever else a client sends), so no method escapes a budget."
  }
  assert {
    condition = alltrue([
      for r in aws_wafv2_web_acl.this.rule : (
        one(one(one(r.action).block).custom_response).response_code == 429 &&
        one(one(one(r.action).block).custom_response).custom_response_body_key == "rate-limited"
      ) if startswith(r.name, "rate-limit-")
    ])
    error_message = "A client over its budget must get 429 Too Many Requests with the problem body, not WAF's default 403."
  }
  assert {
    condition = [
      for b in aws_wafv2_web_acl.this.custom_response_body : [b.content_type, jsondecode(b.content).status, jsondecode(b.content).type] if b.key == "rate-limited"
    ] == [["APPLICATION_JSON", 429, "tag:hello-birthday,2026:rate-limited"]]
    error_message = "The 429 body must be the app's problem-details shape (status 429, a tag: type) as JSON."
  }
}

run "waf_managed_rule_groups" {
  command = plan

  assert {
    condition = toset([
      for r in aws_wafv2_web_acl.this.rule : "${one(one(r.statement).managed_rule_group_statement).vendor_name}/${one(one(r.statement).managed_rule_group_statement).name}"
      if length(one(r.statement).managed_rule_group_statement) > 0
    ]) == toset(["AWS/AWSManagedRulesCommonRuleSet", "AWS/AWSManagedRulesKnownBadInputsRuleSet", "AWS/AWSManagedRulesAnonymousIpList"])
    error_message = "The web ACL must use AWS's Common, Known Bad Inputs and Anonymous IP rule groups (checkov CKV2_AWS_76 asks for the last two)."
  }
  assert {
    condition = alltrue([
      for r in aws_wafv2_web_acl.this.rule : length(one(r.override_action).none) == 1 && length(one(r.override_action).count) == 0
      if length(one(r.statement).managed_rule_group_statement) > 0
    ])
    error_message = "The managed rule groups must act (override_action none), not merely count."
  }
  assert {
    condition = [
      for r in aws_wafv2_web_acl.this.rule : length(one(one(r.statement).managed_rule_group_statement).rule_action_override)
      if r.name == "aws-known-bad-inputs"
    ] == [0]
    error_message = "No Known Bad Inputs rule may be overridden (its Log4JRCE rules must block: checkov CKV_AWS_192)."
  }
  assert {
    condition = [
      for r in aws_wafv2_web_acl.this.rule : {
        for o in one(one(r.statement).managed_rule_group_statement).rule_action_override : o.name => [
          length(one(o.action_to_use).count), length(one(o.action_to_use).block), length(one(o.action_to_use).allow)
        ]
      } if r.name == "aws-common"
      ] == [{
        NoUserAgent_HEADER           = [1, 0, 0]
        SizeRestrictions_BODY        = [1, 0, 0]
        RestrictedExtensions_URIPATH = [1, 0, 0]
    }]
    error_message = "Exactly the Common rules that would refuse this API's requests or guard nothing here (no User-Agent, bodies over 8 KB, file extensions) may be overridden, and only to count (waf.tf says why)."
  }
  assert {
    condition = [
      for r in aws_wafv2_web_acl.this.rule : {
        for o in one(one(r.statement).managed_rule_group_statement).rule_action_override : o.name => [
          length(one(o.action_to_use).count), length(one(o.action_to_use).block), length(one(o.action_to_use).allow)
        ]
      } if r.name == "aws-anonymous-ip"
    ] == [{ HostingProviderIPList = [1, 0, 0] }]
    error_message = "Anonymising addresses must be blocked, cloud and hosting addresses only counted: the deploy's smoke test runs on a cloud-hosted runner."
  }
}

run "waf_logs_what_it_blocks" {
  command = plan

  assert {
    condition     = startswith(aws_cloudwatch_log_group.waf.name, "aws-waf-logs-") && aws_cloudwatch_log_group.waf.retention_in_days == var.waf_log_retention_days
    error_message = "WAF logs only to a log group named aws-waf-logs-*, kept var.waf_log_retention_days."
  }
  assert {
    condition     = aws_wafv2_web_acl_logging_configuration.this.resource_arn == aws_wafv2_web_acl.this.arn && aws_wafv2_web_acl_logging_configuration.this.log_destination_configs == toset([aws_cloudwatch_log_group.waf.arn])
    error_message = "This web ACL must log to this module's aws-waf-logs- group (checkov CKV2_AWS_31)."
  }
  assert {
    condition = (
      one(aws_wafv2_web_acl_logging_configuration.this.logging_filter).default_behavior == "DROP" &&
      [for f in one(aws_wafv2_web_acl_logging_configuration.this.logging_filter).filter : [f.behavior, f.requirement]] == [["KEEP", "MEETS_ANY"]] &&
      toset(flatten([
        for f in one(aws_wafv2_web_acl_logging_configuration.this.logging_filter).filter : [
          for c in f.condition : [for a in c.action_condition : a.action]
        ]
      ])) == toset(["BLOCK", "COUNT", "EXCLUDED_AS_COUNT"])
    )
    error_message = "The WAF log must keep the requests blocked or counted (including managed rules overridden to count, EXCLUDED_AS_COUNT) and drop the allowed ones, which the app logs already."
  }
}

run "waf_limits_are_variables" {
  command = plan

  variables {
    waf_put_limit = 100
    waf_get_limit = 1000
  }

  assert {
    condition = {
      for r in aws_wafv2_web_acl.this.rule : r.name => one(one(r.statement).rate_based_statement).limit if startswith(r.name, "rate-limit-")
    } == { rate-limit-put = 100, rate-limit-get = 1000 }
    error_message = "waf_put_limit and waf_get_limit must reach their rules."
  }
}

run "a_put_limit_below_what_waf_accepts_is_refused" {
  command = plan

  variables {
    waf_put_limit = 5
  }

  expect_failures = [var.waf_put_limit]
}

run "a_fractional_get_limit_is_refused" {
  command = plan

  variables {
    waf_get_limit = 1000.5
  }

  expect_failures = [var.waf_get_limit]
}
