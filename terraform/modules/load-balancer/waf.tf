# AWS WAF in front of the load balancer: a per-client-IP rate limit with separate budgets for
# writes (PUT) and everything else, AWS's list of anonymising addresses and its baseline
# managed rule groups. Blocked and counted
# requests are logged to CloudWatch Logs; allowed ones are not (the app logs every request).
#
# The app validates every input itself and answers bad ones 4xx, so the WAF is not what keeps
# the service correct: it is what keeps one source from taking a large share of it, and what
# drops known exploit traffic before it costs a task anything (docs/deploying.md, "AWS WAF").

locals {
  # WAF counts each client IP's requests over a sliding window of this many seconds (the
  # provider accepts 60, 120, 300 or 600; AWS's default, and what the limits are sized for).
  waf_window_seconds = 300

  # The answer to a client over its budget: the app's problem-details shape (docs/api.md,
  # "Errors"). WAF can only send text/plain, text/html or application/json, not
  # application/problem+json (the same limit as the load balancer's fixed responses).
  waf_rate_limited_body = jsonencode({
    type   = "tag:hello-birthday,2026:rate-limited"
    title  = "Too Many Requests"
    status = 429
    detail = "too many requests from this address; slow down and retry in a few minutes"
  })

  # Rules of AWSManagedRulesCommonRuleSet that would turn away requests this API accepts, or
  # that guard nothing here; each is counted (logged, not blocked) instead:
  #   * NoUserAgent_HEADER: the API does not require a User-Agent, and HTTP clients in scripts
  #     and other services often send none;
  #   * SizeRestrictions_BODY (over 8 KB): the app's own limit is stricter (4096 bytes, 413
  #     payload-too-large); blocking here would only replace that documented answer with a
  #     bare 403;
  #   * RestrictedExtensions_URIPATH (system file extensions such as .log, .ini): the app maps
  #     no path to a file (a username is hashed, every other route is fixed), so the rule
  #     protects nothing, and AWS does not publish its full extension list: it must not be
  #     able to block GET /openapi.yaml.
  # Everything else in the group blocks: a legitimate request here is a path of at most ~800
  # bytes (/hello/ and 1-64 percent-encoded letters), no query string, no cookies, and a body
  # of about 30 bytes, {"dateOfBirth":"YYYY-MM-DD"}.
  waf_common_rules_counted = ["NoUserAgent_HEADER", "SizeRestrictions_BODY", "RestrictedExtensions_URIPATH"]
}

resource "aws_wafv2_web_acl" "this" {
  name        = var.name
  description = "Per-IP rate limits and AWS baseline managed rules for ${var.name}."
  scope       = "REGIONAL"

  default_action {
    allow {}
  }

  custom_response_body {
    key          = "rate-limited"
    content_type = "APPLICATION_JSON"
    content      = local.waf_rate_limited_body
  }

  # Rate limits first: every request counts towards its client's budget, including those the
  # managed rules would block anyway.
  rule {
    name     = "rate-limit-put"
    priority = 10

    action {
      block {
        custom_response {
          response_code            = 429
          custom_response_body_key = "rate-limited"
        }
      }
    }

    statement {
      rate_based_statement {
        limit                 = var.waf_put_limit
        aggregate_key_type    = "IP"
        evaluation_window_sec = local.waf_window_seconds

        scope_down_statement {
          byte_match_statement {
            search_string         = "PUT"
            positional_constraint = "EXACTLY"
            field_to_match {
              method {}
            }
            text_transformation {
              priority = 0
              type     = "NONE"
            }
          }
        }
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-rate-limit-put"
      sampled_requests_enabled   = true
    }
  }

  # Reads: GET, and with it every method that is not PUT (HEAD reads storage as GET does; any
  # other method is a 405), so no method escapes a budget.
  rule {
    name     = "rate-limit-get"
    priority = 20

    action {
      block {
        custom_response {
          response_code            = 429
          custom_response_body_key = "rate-limited"
        }
      }
    }

    statement {
      rate_based_statement {
        limit                 = var.waf_get_limit
        aggregate_key_type    = "IP"
        evaluation_window_sec = local.waf_window_seconds

        scope_down_statement {
          not_statement {
            statement {
              byte_match_statement {
                search_string         = "PUT"
                positional_constraint = "EXACTLY"
                field_to_match {
                  method {}
                }
                text_transformation {
                  priority = 0
                  type     = "NONE"
                }
              }
            }
          }
        }
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-rate-limit-get"
      sampled_requests_enabled   = true
    }
  }

  # Addresses that hide who sends from them (Tor exit nodes, anonymising proxies and VPNs), as
  # AWS's threat intelligence lists them: blocked, because from behind them one client could
  # rotate through many addresses and each would get a fresh rate-limit budget. Hosting and
  # cloud providers' addresses (HostingProviderIPList) are only counted: the deploy's own smoke
  # test runs on a cloud-hosted GitHub runner, and services that call this API run in clouds.
  rule {
    name     = "aws-anonymous-ip"
    priority = 25

    override_action {
      none {}
    }

    statement {
      managed_rule_group_statement {
        name        = "AWSManagedRulesAnonymousIpList"
        vendor_name = "AWS"

        rule_action_override {
          name = "HostingProviderIPList"
          action_to_use {
            count {}
          }
        }
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-aws-anonymous-ip"
      sampled_requests_enabled   = true
    }
  }

  # Request patterns known to be malicious: Log4j and Java deserialisation exploits, Host:
  # localhost, exploitable paths. Nothing in it matches this API's requests.
  rule {
    name     = "aws-known-bad-inputs"
    priority = 30

    override_action {
      none {}
    }

    statement {
      managed_rule_group_statement {
        name        = "AWSManagedRulesKnownBadInputsRuleSet"
        vendor_name = "AWS"
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-aws-known-bad-inputs"
      sampled_requests_enabled   = true
    }
  }

  # OWASP-style baseline (cross-site scripting, file inclusion, SSRF to the metadata service,
  # oversized parts), with the exceptions in local.waf_common_rules_counted.
  rule {
    name     = "aws-common"
    priority = 40

    override_action {
      none {}
    }

    statement {
      managed_rule_group_statement {
        name        = "AWSManagedRulesCommonRuleSet"
        vendor_name = "AWS"

        dynamic "rule_action_override" {
          for_each = local.waf_common_rules_counted
          content {
            name = rule_action_override.value
            action_to_use {
              count {}
            }
          }
        }
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-aws-common"
      sampled_requests_enabled   = true
    }
  }

  visibility_config {
    cloudwatch_metrics_enabled = true
    metric_name                = var.name
    sampled_requests_enabled   = true
  }

  tags = { Name = var.name }
}

resource "aws_wafv2_web_acl_association" "this" {
  resource_arn = aws_lb.this.arn
  web_acl_arn  = aws_wafv2_web_acl.this.arn
}

# WAF delivers its logs to CloudWatch only into a group whose name starts with aws-waf-logs-.
# Its records carry the client's address, the path (with the username) and the headers: kept
# as long as the app's own logs, and like them encrypted with CloudWatch Logs' own key.
resource "aws_cloudwatch_log_group" "waf" {
  name              = "aws-waf-logs-${var.name}"
  retention_in_days = var.waf_log_retention_days
}

resource "aws_wafv2_web_acl_logging_configuration" "this" {
  resource_arn            = aws_wafv2_web_acl.this.arn
  log_destination_configs = [aws_cloudwatch_log_group.waf.arn]

  # Only what the WAF stopped or would have stopped: BLOCK (rate limits, managed rules),
  # COUNT (a rule whose own action is count) and EXCLUDED_AS_COUNT (the managed rules
  # overridden to count above). Allowed requests are in the app's access log already, so
  # logging them twice would only cost ingestion.
  logging_filter {
    default_behavior = "DROP"

    filter {
      behavior    = "KEEP"
      requirement = "MEETS_ANY"

      condition {
        action_condition {
          action = "BLOCK"
        }
      }
      condition {
        action_condition {
          action = "COUNT"
        }
      }
      condition {
        action_condition {
          action = "EXCLUDED_AS_COUNT"
        }
      }
    }
  }
}
