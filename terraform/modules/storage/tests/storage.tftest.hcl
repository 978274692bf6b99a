# The EFS file system the tasks share, planned against a mock AWS provider: encrypted, backed
# up, a mount target in every zone, reachable only over TLS by the task role through an access
# point that forces the container's user. The uid/gid are what terraform/modules/environment
# passes (65532, distroless nonroot); tests/infra.rs checks them against the Dockerfile's USER.

mock_provider "aws" {}

# Known ARNs during plan, so the file system policy's statements can be compared with them.
override_resource {
  target          = aws_efs_file_system.this
  override_during = plan
  values = {
    id  = "fs-0123456789abcdef0"
    arn = "arn:aws:elasticfilesystem:us-east-1:123456789012:file-system/fs-0123456789abcdef0"
  }
}

override_resource {
  target          = aws_efs_access_point.this
  override_during = plan
  values = {
    id  = "fsap-0123456789abcdef0"
    arn = "arn:aws:elasticfilesystem:us-east-1:123456789012:access-point/fsap-0123456789abcdef0"
  }
}

variables {
  name = "hello-birthday-test"
  subnet_ids_by_az = {
    "us-east-1a" = "subnet-aaaa"
    "us-east-1b" = "subnet-bbbb"
    "us-east-1c" = "subnet-cccc"
  }
  security_group_id = "sg-efs"
  posix_uid         = 65532
  posix_gid         = 65532
  client_role_arns  = ["arn:aws:iam::123456789012:role/hello-birthday-test-task"]
}

run "file_system" {
  command = plan

  assert {
    condition     = aws_efs_file_system.this.encrypted == true
    error_message = "EFS must be encrypted at rest: the files hold users' names and birthdays (checkov CKV_AWS_42)."
  }
  assert {
    condition     = aws_efs_file_system.this.throughput_mode == "elastic" && aws_efs_file_system.this.performance_mode == "generalPurpose"
    error_message = "EFS must be General Purpose (lowest latency per operation) with elastic throughput (Terraform's default, bursting, throttles a small file system once its credits run out)."
  }
  assert {
    condition = (
      contains([for p in aws_efs_file_system.this.lifecycle_policy : p.transition_to_ia], "AFTER_30_DAYS") &&
      contains([for p in aws_efs_file_system.this.lifecycle_policy : p.transition_to_primary_storage_class], "AFTER_1_ACCESS")
    )
    error_message = "Files must move to Infrequent Access after 30 days and back on first access, or a returning user pays IA latency on every request."
  }
  assert {
    condition     = one(aws_efs_backup_policy.this.backup_policy).status == "ENABLED"
    error_message = "EFS backups must be ENABLED: file systems created through the API get none otherwise."
  }
}

run "a_mount_target_in_every_zone" {
  command = plan

  assert {
    condition     = toset(keys(aws_efs_mount_target.this)) == toset(keys(var.subnet_ids_by_az)) && length(aws_efs_mount_target.this) >= 3
    error_message = "There must be one mount target per zone of the tasks, so a task always mounts in its own zone and losing a zone does not cut the others off."
  }
  assert {
    condition     = alltrue([for az, mt in aws_efs_mount_target.this : mt.subnet_id == var.subnet_ids_by_az[az] && mt.security_groups == toset([var.security_group_id])])
    error_message = "Each mount target must sit in that zone's task subnet, behind the EFS security group (NFS from the tasks only)."
  }
}

run "access_point_forces_the_container_user" {
  command = plan

  assert {
    condition     = one(aws_efs_access_point.this.posix_user).uid == var.posix_uid && one(aws_efs_access_point.this.posix_user).gid == var.posix_gid && var.posix_uid == 65532 && var.posix_gid == 65532
    error_message = "The access point must run every NFS operation as the container's user, 65532:65532 (checkov CKV_AWS_329): files created by any task stay readable and writable by every other."
  }
  assert {
    condition     = one(aws_efs_access_point.this.root_directory).path == var.root_directory && var.root_directory != "/"
    error_message = "The access point must root the mount at the app's own directory, not at the file system root (checkov CKV_AWS_330)."
  }
  assert {
    condition = (
      one(one(aws_efs_access_point.this.root_directory).creation_info).owner_uid == var.posix_uid &&
      one(one(aws_efs_access_point.this.root_directory).creation_info).owner_gid == var.posix_gid &&
      one(one(aws_efs_access_point.this.root_directory).creation_info).permissions == "0750"
    )
    error_message = "The root directory must be created owned by the container's user, mode 0750: without creation_info the first mount fails with \"No such file or directory\"."
  }
}

run "file_system_policy" {
  command = plan

  assert {
    condition     = aws_efs_file_system_policy.this.file_system_id == aws_efs_file_system.this.id
    error_message = "The file system must carry its own policy; EFS's default lets any client that reaches a mount target mount and write."
  }
  assert {
    condition = anytrue([
      for s in data.aws_iam_policy_document.file_system.statement :
      s.effect == "Deny" && contains(s.actions, "*") && anytrue([
        for c in s.condition : c.variable == "aws:SecureTransport" && toset(c.values) == toset(["false"])
      ])
    ])
    error_message = "The file system policy must deny every request without TLS (aws:SecureTransport = false)."
  }
  assert {
    condition = alltrue([
      for s in data.aws_iam_policy_document.file_system.statement :
      s.effect == "Deny" || (
        toset(s.actions) == toset(["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]) &&
        [for p in s.principals : toset(p.identifiers)] == [toset(var.client_role_arns)] &&
        anytrue([for c in s.condition : c.variable == "elasticfilesystem:AccessPointArn" && toset(c.values) == toset([aws_efs_access_point.this.arn])])
      )
    ])
    error_message = "The policy may allow only ClientMount and ClientWrite, only to the task role, only through the access point: nobody gets ClientRootAccess or a path around the access point's uid."
  }
}

run "root_as_the_file_owner_is_refused" {
  command = plan

  variables {
    posix_uid = 0
  }

  expect_failures = [var.posix_uid]
}

run "fewer_than_three_zones_is_refused" {
  command = plan

  variables {
    subnet_ids_by_az = {
      "us-east-1a" = "subnet-aaaa"
      "us-east-1b" = "subnet-bbbb"
    }
  }

  expect_failures = [var.subnet_ids_by_az]
}
