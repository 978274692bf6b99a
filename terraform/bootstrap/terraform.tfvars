# Applied once by an admin (README, "Deploying to AWS"). Nothing here is secret.
github_repository = "OWNER/hello-birthday"
# aws_account_id  = "123456789012"
region = "us-east-1"
