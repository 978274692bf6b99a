output "file_system_id" {
  description = "The EFS file system."
  value       = aws_efs_file_system.this.id
}

output "file_system_arn" {
  description = "ARN of the EFS file system (for the task role's policy)."
  value       = aws_efs_file_system.this.arn
}

output "access_point_id" {
  description = "The access point the tasks mount. Known only once the mount targets and the policy exist, so a task definition that uses it cannot start tasks before they can mount."
  value       = aws_efs_access_point.this.id
  depends_on  = [aws_efs_mount_target.this, aws_efs_file_system_policy.this]
}

output "access_point_arn" {
  description = "ARN of the access point (for the task role's policy condition)."
  value       = aws_efs_access_point.this.arn
}

output "mount_target_ids" {
  description = "Mount targets by zone."
  value       = { for az, mt in aws_efs_mount_target.this : az => mt.id }
}
