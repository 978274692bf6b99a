# The environment module as the roots call it, planned against a mock AWS provider: what it wires
# between its children, which no child module's own tests can see.

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

variables {
  environment        = "test"
  github_repository  = "OWNER/hello-birthday"
  image_tag          = "0123456789abcdef0123456789abcdef01234567"
  vpc_cidr           = "10.30.0.0/16"
  availability_zones = ["us-east-1a", "us-east-1b", "us-east-1c"]
}

run "keep_alive_outlasts_this_load_balancers_idle_timeout" {
  command = plan

  assert {
    condition     = var.keep_alive_timeout_ms > module.load_balancer.idle_timeout * 1000
    error_message = "The app's keep-alive timeout must be longer than the load balancer's idle timeout."
  }
}

run "a_keep_alive_timeout_under_the_idle_timeout_is_refused" {
  command = plan

  variables {
    keep_alive_timeout_ms = 30000
  }

  expect_failures = [var.keep_alive_timeout_ms]
}
