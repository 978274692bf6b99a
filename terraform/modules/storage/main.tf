# The EFS file system every task mounts at /data: one JSON file per user, shared by all tasks
# (and, during a deploy, by two versions of the service). See README, "Storage design".

resource "aws_efs_file_system" "this" {
  creation_token = var.name
  encrypted      = true
  # General Purpose: lowest per-operation latency, and the app's requests are a handful of
  # small metadata-heavy operations. Elastic throughput: pay per use, no burst credits to run
  # out of (Terraform's default, bursting, throttles a small file system hard).
  performance_mode = "generalPurpose"
  throughput_mode  = "elastic"

  # Records untouched for 30 days move to Infrequent Access and come back on first read.
  lifecycle_policy {
    transition_to_ia = var.transition_to_ia
  }
  lifecycle_policy {
    transition_to_primary_storage_class = "AFTER_1_ACCESS"
  }

  tags = { Name = var.name }
}

# One mount target per zone, in the tasks' subnets: a task always mounts in its own zone, so
# losing a zone does not cut the others off from their data.
resource "aws_efs_mount_target" "this" {
  for_each = var.subnet_ids_by_az

  file_system_id  = aws_efs_file_system.this.id
  subnet_id       = each.value
  security_groups = [var.security_group_id]
}

# The tasks mount through this access point only. It pins every NFS operation to the
# container's uid/gid (whatever the process claims) and roots the mount at root_directory,
# which EFS creates with creation_info on first use; without creation_info a missing
# directory fails the mount with "No such file or directory".
resource "aws_efs_access_point" "this" {
  file_system_id = aws_efs_file_system.this.id

  posix_user {
    uid = var.posix_uid
    gid = var.posix_gid
  }

  root_directory {
    path = var.root_directory
    creation_info {
      owner_uid   = var.posix_uid
      owner_gid   = var.posix_gid
      permissions = "0750"
    }
  }

  tags = { Name = var.name }
}

# Replaces EFS's default (any client that can reach a mount target may mount and write) with:
# TLS only, and mount/write only for the given roles through the access point. Nobody gets
# ClientRootAccess.
resource "aws_efs_file_system_policy" "this" {
  file_system_id = aws_efs_file_system.this.id
  policy         = data.aws_iam_policy_document.file_system.json
}

data "aws_iam_policy_document" "file_system" {
  statement {
    sid       = "DenyUnencryptedTransport"
    effect    = "Deny"
    actions   = ["*"]
    resources = [aws_efs_file_system.this.arn]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  statement {
    sid    = "MountAndWriteThroughTheAccessPoint"
    effect = "Allow"
    actions = [
      "elasticfilesystem:ClientMount",
      "elasticfilesystem:ClientWrite",
    ]
    resources = [aws_efs_file_system.this.arn]

    principals {
      type        = "AWS"
      identifiers = var.client_role_arns
    }

    condition {
      test     = "StringEquals"
      variable = "elasticfilesystem:AccessPointArn"
      values   = [aws_efs_access_point.this.arn]
    }
  }
}

# File systems created through the API have no backups unless asked: this turns on AWS
# Backup's daily backups with 35-day retention.
resource "aws_efs_backup_policy" "this" {
  file_system_id = aws_efs_file_system.this.id

  backup_policy {
    status = "ENABLED"
  }
}
