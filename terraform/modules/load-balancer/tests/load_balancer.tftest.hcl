# The load balancer and the app's target group, planned against a mock AWS provider: how fast a
# new task takes traffic, how fast a broken or stopping one stops getting it. The inputs are
# what terraform/modules/environment passes; tests/infra.rs checks that its readiness path is a
# readiness route of the app (src/routes/health.rs) and its port the image's EXPOSE.

mock_provider "aws" {}

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
