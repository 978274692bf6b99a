output "vpc_id" {
  description = "The VPC."
  value       = aws_vpc.this.id
}

output "availability_zones" {
  description = "The zones the subnets are in."
  value       = local.azs
}

output "public_subnet_ids" {
  description = "Public subnets, one per zone: the load balancer's."
  value       = [for az in local.azs : aws_subnet.public[az].id]
}

output "private_subnet_ids" {
  description = "Private subnets, one per zone: the tasks'."
  value       = [for az in local.azs : aws_subnet.private[az].id]
}

output "private_subnet_ids_by_az" {
  description = "Private subnets keyed by zone name (keys known at plan time, for for_each)."
  value       = { for az in local.azs : az => aws_subnet.private[az].id }
}

output "alb_security_group_id" {
  description = "Security group of the load balancer."
  value       = aws_security_group.alb.id
}

output "tasks_security_group_id" {
  description = "Security group of the ECS tasks."
  value       = aws_security_group.tasks.id
}

output "efs_security_group_id" {
  description = "Security group of the EFS mount targets."
  value       = aws_security_group.efs.id
}
