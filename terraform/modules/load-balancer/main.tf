# The public Application Load Balancer in front of the tasks: spans every public subnet (one per
# zone), health-checks each task on the app's readiness route and forwards to the healthy ones.
#
# HTTPS needs a certificate: either give domain_name and route53_zone_id (an ACM certificate
# is issued and DNS-validated, and an alias record points the name at the ALB) or an existing
# certificate_arn. Then port 80 only redirects to 443. Without a certificate the app is served
# on plain HTTP: for a demo stack only (README, "Deploying to AWS").

locals {
  managed_certificate = var.domain_name != null && var.route53_zone_id != null
  https_enabled       = local.managed_certificate || var.certificate_arn != null
  certificate_arn     = local.managed_certificate ? aws_acm_certificate_validation.this[0].certificate_arn : var.certificate_arn

  # The listener that forwards to the app, whichever of the two that is.
  app_listener_arn = local.https_enabled ? aws_lb_listener.https[0].arn : aws_lb_listener.http_forward[0].arn
}

resource "aws_lb" "this" {
  name               = var.name
  load_balancer_type = "application"
  internal           = false
  subnets            = var.public_subnet_ids
  security_groups    = [var.security_group_id]

  # Requests with header names that are not valid HTTP are dropped at the edge instead of
  # being passed to the app (request smuggling hygiene).
  drop_invalid_header_fields = true
  enable_deletion_protection = var.deletion_protection
  # The app closes a kept-alive connection after it has been idle for its keep-alive timeout
  # (KEEP_ALIVE_TIMEOUT_MS, 75 s by default), longer than this, so the ALB is always the side
  # that closes an idle connection and never reuses one the target just closed (AWS: a 502).
  # terraform/modules/environment refuses a keep-alive timeout that is not longer than this.
  # A literal: tests/infra.rs reads it to check the app's storage timeout against it.
  idle_timeout = 60

  dynamic "access_logs" {
    for_each = var.access_logs_bucket == null ? [] : [var.access_logs_bucket]
    content {
      bucket  = access_logs.value
      prefix  = var.name
      enabled = true
    }
  }

  tags = { Name = var.name }
}

resource "aws_lb_target_group" "app" {
  name        = var.name
  port        = var.container_port
  protocol    = "HTTP"
  vpc_id      = var.vpc_id
  target_type = "ip" # Fargate tasks (awsvpc) register by IP.

  # How long a deregistered task keeps getting its in-flight requests finished before ECS stops
  # it. Requests here take milliseconds; AWS's default of 300 s makes every deploy crawl.
  deregistration_delay = 20

  # The readiness route: 503 when the task cannot write to EFS or is shutting down. With an
  # interval of 10 s and a threshold of 2, a new task takes traffic about 20 s after it starts,
  # and a broken one stops getting any within about 20 s (AWS's defaults: 150 s).
  health_check {
    enabled             = true
    protocol            = "HTTP"
    port                = "traffic-port"
    path                = var.health_check_path
    matcher             = "200"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }

  tags = { Name = var.name }
}

resource "aws_lb_listener" "https" {
  count = local.https_enabled ? 1 : 0

  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "HTTPS"
  # TLS 1.3 and 1.2 only, forward-secret ciphers: AWS's recommended policy.
  ssl_policy      = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn = local.certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.app.arn
  }
}

resource "aws_lb_listener" "http_redirect" {
  count = local.https_enabled ? 1 : 0

  load_balancer_arn = aws_lb.this.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type = "redirect"
    redirect {
      port        = "443"
      protocol    = "HTTPS"
      status_code = "HTTP_301"
    }
  }
}

# Demo only: plain HTTP straight to the app when no certificate is configured.
resource "aws_lb_listener" "http_forward" {
  count = local.https_enabled ? 0 : 1

  load_balancer_arn = aws_lb.this.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.app.arn
  }
}

# /metrics is for the Prometheus inside the VPC, not for the internet: answer it at the edge
# with the app's 404 problem body (as application/json: a fixed response cannot say
# application/problem+json).
resource "aws_lb_listener_rule" "hide_metrics" {
  listener_arn = local.app_listener_arn
  priority     = 10

  condition {
    path_pattern {
      values = ["/metrics", "/metrics/*"]
    }
  }

  action {
    type = "fixed-response"
    fixed_response {
      status_code  = "404"
      content_type = "application/json"
      message_body = jsonencode({
        type   = "tag:hello-birthday,2026:not-found"
        title  = "Not Found"
        status = 404
        detail = "there is no resource at this path; see the API documentation for the routes"
      })
    }
  }
}

# ---------------------------------------------------------------------------------------------
# Optional: a DNS name in a Route 53 zone, with an ACM certificate validated through it.

resource "aws_acm_certificate" "this" {
  count = local.managed_certificate ? 1 : 0

  domain_name       = var.domain_name
  validation_method = "DNS"

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_route53_record" "validation" {
  for_each = local.managed_certificate ? {
    for o in aws_acm_certificate.this[0].domain_validation_options : o.domain_name => o
  } : {}

  zone_id         = var.route53_zone_id
  name            = each.value.resource_record_name
  type            = each.value.resource_record_type
  records         = [each.value.resource_record_value]
  ttl             = 300
  allow_overwrite = true
}

resource "aws_acm_certificate_validation" "this" {
  count = local.managed_certificate ? 1 : 0

  certificate_arn         = aws_acm_certificate.this[0].arn
  validation_record_fqdns = [for r in aws_route53_record.validation : r.fqdn]
}

resource "aws_route53_record" "alias" {
  count = var.domain_name != null && var.route53_zone_id != null ? 1 : 0

  zone_id = var.route53_zone_id
  name    = var.domain_name
  type    = "A"

  alias {
    name                   = aws_lb.this.dns_name
    zone_id                = aws_lb.this.zone_id
    evaluate_target_health = true
  }
}
