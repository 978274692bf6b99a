terraform {
  # use_lockfile (S3-native state locking, no DynamoDB table) is GA from Terraform 1.11.
  required_version = "~> 1.11"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
  }

  # Partial configuration: the bucket (its name holds the account id) and the region come from
  # `terraform init -backend-config=bucket=... -backend-config=region=...`; see README.
  backend "s3" {
    key          = "staging/terraform.tfstate"
    encrypt      = true
    use_lockfile = true
  }
}
