terraform {
  required_version = "~> 1.11"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
  }

  # No backend block: the state bucket does not exist before the first apply. An admin applies
  # this root once with local state, then moves the state into the bucket it created: copy
  # backend.tf.example to backend.tf and run `terraform init -migrate-state` (README).
}
