provider "aws" {
  region = var.region
  # A plan run with the wrong account's credentials stops here instead of creating a copy.
  allowed_account_ids = var.aws_account_id == null ? null : [var.aws_account_id]

  default_tags {
    tags = {
      Application = "hello-birthday"
      Environment = "staging"
      ManagedBy   = "terraform"
      Repository  = var.github_repository
    }
  }
}
