# One image repository for both environments: the deploy workflow builds an image once per
# commit and rolls the same image through staging, then production.

resource "aws_ecr_repository" "app" {
  name = var.app_name
  # A tag (the commit SHA) always means the same image: what staging tested is what production
  # runs, and a rollback to a tag gets exactly what ran before.
  image_tag_mutability = "IMMUTABLE"

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS" # the account's AWS-managed ECR key
  }
}

# Every image is tagged with its commit SHA when it is built. After a deploy to an environment
# has passed its smoke test, deploy-environment.yml adds a second tag, "<env>-<sha>" (e.g.
# production-3f2a...; a commit SHA has no "-", so never starts with "<env>-"), to the same
# image. Rules, first match wins, and an image that a higher-priority rule selects by tag can
# never be expired by a lower-priority one:
#   1. untagged manifests (failed or superseded pushes) go after a week;
#   2. per environment: of the images deployed there, the newest deployed_images_to_keep stay,
#      so what an environment runs now and the revisions it can roll back to never expire,
#      however many newer images staging has run while production waited for approval. An
#      image deployed to staging and production carries both tags and is governed by the first
#      rule that selects it, so the rules go in reverse promotion order (var.environments is
#      staging, production): production's count decides over anything production ran;
#   3. every other image: expired once images_to_keep newer images exist.
resource "aws_ecr_lifecycle_policy" "app" {
  repository = aws_ecr_repository.app.name
  policy = jsonencode({
    rules = concat(
      [
        {
          rulePriority = 1
          description  = "Untagged manifests (failed or superseded pushes) go after a week"
          selection = {
            tagStatus   = "untagged"
            countType   = "sinceImagePushed"
            countUnit   = "days"
            countNumber = 7
          }
          action = { type = "expire" }
        },
      ],
      [
        for i, env in reverse(var.environments) : {
          rulePriority = 10 + i
          description  = "Images deployed to ${env}: keep the newest ${var.deployed_images_to_keep}"
          selection = {
            tagStatus     = "tagged"
            tagPrefixList = ["${env}-"]
            countType     = "imageCountMoreThan"
            countNumber   = var.deployed_images_to_keep
          }
          action = { type = "expire" }
        }
      ],
      [
        {
          rulePriority = 100
          description  = "Images never deployed: expire behind the newest ${var.images_to_keep}"
          selection = {
            tagStatus   = "any"
            countType   = "imageCountMoreThan"
            countNumber = var.images_to_keep
          }
          action = { type = "expire" }
        },
      ],
    )
  })
}

# The metrics collector sidecar's image (public.ecr.aws/aws-observability/aws-otel-collector)
# through ECR: the tasks have no internet access, only the ECR endpoints. The first pull of
# ecr-public/<upstream path>:<tag> makes ECR fetch the image from ECR Public (which needs no
# credentials) into a repository of that name; later pulls are served from it. One rule per
# account and region, for both environments.
resource "aws_ecr_pull_through_cache_rule" "ecr_public" {
  ecr_repository_prefix = "ecr-public"
  upstream_registry_url = "public.ecr.aws"
}
