# terraform/bootstrap with its real terraform.tfvars, planned against a mock AWS provider: the
# image repository, the state bucket and the GitHub OIDC roles. The account id, region and the
# two ARNs the policies name are fixed below; everything else comes from this root.

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
  target          = aws_ecr_repository.app
  override_during = plan
  values = {
    arn            = "arn:aws:ecr:us-east-1:123456789012:repository/hello-birthday"
    repository_url = "123456789012.dkr.ecr.us-east-1.amazonaws.com/hello-birthday"
  }
}

override_resource {
  target          = aws_s3_bucket.state
  override_during = plan
  values = {
    id  = "hello-birthday-tfstate-123456789012"
    arn = "arn:aws:s3:::hello-birthday-tfstate-123456789012"
  }
}

override_resource {
  target          = aws_iam_openid_connect_provider.github
  override_during = plan
  values = {
    arn = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
  }
}

run "image_repository" {
  command = plan

  assert {
    condition     = aws_ecr_repository.app.image_tag_mutability == "IMMUTABLE"
    error_message = "The ECR repository must be IMMUTABLE: a tag (the commit SHA) always means the same image, so production runs exactly what staging tested and a rollback gets exactly what ran before (checkov CKV_AWS_51)."
  }
  assert {
    condition     = one(aws_ecr_repository.app.image_scanning_configuration).scan_on_push == true
    error_message = "Images must be scanned for known vulnerabilities on push (checkov CKV_AWS_163)."
  }
  assert {
    condition     = one(aws_ecr_repository.app.encryption_configuration).encryption_type == "KMS"
    error_message = "Images must be encrypted with KMS."
  }
  assert {
    condition = (
      jsondecode(aws_ecr_lifecycle_policy.app.policy).rules[0].selection.tagStatus == "untagged" &&
      [for r in jsondecode(aws_ecr_lifecycle_policy.app.policy).rules : r.selection.tagPrefixList[0] if r.selection.tagStatus == "tagged"] == [for env in reverse(var.environments) : "${env}-"] &&
      alltrue([for r in jsondecode(aws_ecr_lifecycle_policy.app.policy).rules : r.selection.countNumber >= 2 if r.selection.tagStatus == "tagged"])
    )
    error_message = "The lifecycle policy must keep, per environment and in reverse promotion order, at least the running image and the one before it (tag <env>-<sha>): an expired image cannot be rolled back to."
  }
  assert {
    condition = (
      alltrue([
        for i in range(1, length(jsondecode(aws_ecr_lifecycle_policy.app.policy).rules)) :
        jsondecode(aws_ecr_lifecycle_policy.app.policy).rules[i].rulePriority > jsondecode(aws_ecr_lifecycle_policy.app.policy).rules[i - 1].rulePriority
      ]) &&
      jsondecode(aws_ecr_lifecycle_policy.app.policy).rules[length(jsondecode(aws_ecr_lifecycle_policy.app.policy).rules) - 1].selection.tagStatus == "any"
    )
    error_message = "Lifecycle rules need distinct, rising priorities with the catch-all (tagStatus any) last: ECR applies the first rule that selects an image."
  }
}

run "state_bucket" {
  command = plan

  assert {
    condition     = aws_s3_bucket.state.bucket == "hello-birthday-tfstate-123456789012"
    error_message = "The state bucket's name must hold the account id (bucket names are global); the roots' backend-config and the README use this form."
  }
  assert {
    condition     = one(aws_s3_bucket_versioning.state.versioning_configuration).status == "Enabled"
    error_message = "The state bucket must be versioned, so a bad apply's state can be rolled back."
  }
  assert {
    condition = (
      one(one(aws_s3_bucket_server_side_encryption_configuration.state.rule).apply_server_side_encryption_by_default).sse_algorithm == "aws:kms" &&
      one(aws_s3_bucket_server_side_encryption_configuration.state.rule).bucket_key_enabled == true
    )
    error_message = "State (which holds resource ids and outputs) must be encrypted with KMS, with a bucket key."
  }
  assert {
    condition = (
      aws_s3_bucket_public_access_block.state.block_public_acls &&
      aws_s3_bucket_public_access_block.state.block_public_policy &&
      aws_s3_bucket_public_access_block.state.ignore_public_acls &&
      aws_s3_bucket_public_access_block.state.restrict_public_buckets
    )
    error_message = "All four public access blocks must be on for the state bucket."
  }
  assert {
    condition     = one(aws_s3_bucket_ownership_controls.state.rule).object_ownership == "BucketOwnerEnforced"
    error_message = "ACLs must be disabled on the state bucket (BucketOwnerEnforced)."
  }
  assert {
    condition = anytrue([
      for s in data.aws_iam_policy_document.state_bucket.statement :
      s.effect == "Deny" &&
      toset(s.resources) == toset([aws_s3_bucket.state.arn, "${aws_s3_bucket.state.arn}/*"]) &&
      anytrue([for c in s.condition : c.variable == "aws:SecureTransport" && toset(c.values) == toset(["false"])])
    ])
    error_message = "The state bucket policy must deny every request without TLS, on the bucket and its objects."
  }
  assert {
    condition     = one(one(aws_s3_bucket_lifecycle_configuration.state.rule).noncurrent_version_expiration).noncurrent_days >= 30
    error_message = "Old state versions must be kept for at least 30 days."
  }
}

run "github_oidc_trust" {
  command = plan

  assert {
    condition     = aws_iam_openid_connect_provider.github[0].url == "https://token.actions.githubusercontent.com" && aws_iam_openid_connect_provider.github[0].client_id_list == toset(["sts.amazonaws.com"])
    error_message = "The OIDC provider must be GitHub Actions' token issuer with audience sts.amazonaws.com."
  }
  assert {
    condition = {
      for k, d in data.aws_iam_policy_document.github_trust : k => flatten([
        for s in d.statement : [for c in s.condition : tolist(c.values) if c.variable == "token.actions.githubusercontent.com:sub" && c.test == "StringEquals"]
      ])
      } == {
      image_push                 = ["repo:OWNER/hello-birthday:ref:refs/heads/main"]
      terraform_plan             = ["repo:OWNER/hello-birthday:pull_request"]
      terraform_apply_staging    = ["repo:OWNER/hello-birthday:environment:staging"]
      terraform_apply_production = ["repo:OWNER/hello-birthday:environment:production"]
    }
    error_message = "Each role must trust exactly one GitHub subject, matched exactly (StringEquals, no wildcard): pushes to main push images, pull requests plan, and only jobs of GitHub environment <env> apply to <env>."
  }
  assert {
    condition = alltrue([
      for d in data.aws_iam_policy_document.github_trust : alltrue([
        for s in d.statement :
        toset(s.actions) == toset(["sts:AssumeRoleWithWebIdentity"]) &&
        [for p in s.principals : toset(p.identifiers)] == [toset([aws_iam_openid_connect_provider.github[0].arn])] &&
        anytrue([for c in s.condition : c.test == "StringEquals" && c.variable == "token.actions.githubusercontent.com:aud" && toset(c.values) == toset(["sts.amazonaws.com"])])
      ])
    ])
    error_message = "Every GitHub role must be assumable only through GitHub's OIDC provider, with audience sts.amazonaws.com."
  }
  assert {
    condition = (
      aws_iam_role.image_push.assume_role_policy == data.aws_iam_policy_document.github_trust["image_push"].json &&
      aws_iam_role.terraform_plan.assume_role_policy == data.aws_iam_policy_document.github_trust["terraform_plan"].json &&
      alltrue([for env, r in aws_iam_role.terraform_apply : r.assume_role_policy == data.aws_iam_policy_document.github_trust["terraform_apply_${env}"].json])
    )
    error_message = "Each role must use its own trust policy (a role trusting another role's subject would let pull requests push or apply)."
  }
}

run "github_roles_least_privilege" {
  command = plan

  assert {
    condition = alltrue([
      for s in data.aws_iam_policy_document.image_push.statement :
      toset(s.actions) == toset(["ecr:GetAuthorizationToken"]) ? toset(s.resources) == toset(["*"]) : toset(s.resources) == toset([aws_ecr_repository.app.arn])
    ])
    error_message = "The image-push role may push to the app's repository only (resource \"*\" only for ecr:GetAuthorizationToken, which cannot be scoped)."
  }
  assert {
    condition = alltrue(flatten([
      for s in data.aws_iam_policy_document.terraform_plan.statement : [
        for a in s.actions : can(regex("^[a-z0-9-]+:(Describe|List|Get)[A-Za-z]*\\*?$", a)) || a == "kms:Decrypt"
      ]
    ]))
    error_message = "The plan role (pull requests) may only describe, list and get: no action that changes anything."
  }
  assert {
    condition = (
      [for s in data.aws_iam_policy_document.terraform_plan.statement : toset(s.resources) if contains(tolist(s.actions), "s3:GetObject")] ==
      [toset([for env in var.environments : "${aws_s3_bucket.state.arn}/${env}/terraform.tfstate"])]
    )
    error_message = "The plan role may read the environments' state files only (not bootstrap's state, not any other object)."
  }
  assert {
    condition = alltrue([
      for s in data.aws_iam_policy_document.terraform_plan.statement :
      !contains(tolist(s.actions), "kms:Decrypt") || anytrue([for c in s.condition : c.variable == "kms:ViaService"])
    ])
    error_message = "The plan role may decrypt only through S3 (kms:ViaService), i.e. the state objects it can read."
  }
  assert {
    condition = alltrue([
      for env, d in data.aws_iam_policy_document.terraform_apply_iam : alltrue([
        for s in d.statement : toset(s.resources) == toset(["arn:aws:iam::123456789012:role/hello-birthday-${env}-*"]) if s.sid == "TheEnvironmentsOwnRoles"
      ])
    ])
    error_message = "An environment's apply role may manage only that environment's roles (hello-birthday-<env>-*)."
  }
  assert {
    condition = alltrue([
      for env, d in data.aws_iam_policy_document.terraform_apply_guardrails : anytrue([
        for s in d.statement : s.effect == "Deny" && toset(s.resources) == toset([for other in concat([for e in var.environments : e if e != env], ["bootstrap"]) : "${aws_s3_bucket.state.arn}/${other}/*"])
      ])
    ])
    error_message = "An environment's apply role must be denied every other root's state (the other environments' and bootstrap's)."
  }
  assert {
    condition = alltrue([
      for env, d in data.aws_iam_policy_document.terraform_apply_guardrails : anytrue([
        for s in d.statement : s.effect == "Deny" && anytrue([
          for c in s.condition : c.variable == "aws:ResourceTag/Environment" && toset(c.values) == toset([for e in var.environments : e if e != env])
        ])
      ])
    ])
    error_message = "An environment's apply role must be denied resources tagged with another environment."
  }
}

run "an_existing_oidc_provider_is_reused" {
  command = plan

  variables {
    create_github_oidc_provider = false
  }

  assert {
    condition     = length(aws_iam_openid_connect_provider.github) == 0 && output.github_oidc_provider_arn == "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
    error_message = "With create_github_oidc_provider = false, the roles must trust the account's existing GitHub provider (there can be only one per URL)."
  }
}
