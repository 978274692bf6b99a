#!/usr/bin/env bash
# Adds the tag "<environment>-<commit sha>" to an image that was just deployed there, without
# pulling or pushing it (ECR's retag: BatchGetImage, then PutImage of the same manifest with a
# new tag). terraform/bootstrap/ecr.tf keeps the newest images with such a tag per environment,
# so what an environment runs, and what it can roll back to, never expires.
#
#   .github/scripts/tag-deployed-image.sh ENVIRONMENT REGISTRY/REPOSITORY:SHA
#
# Idempotent: a re-run finds the tag already there (tags are immutable in this repository).
set -euo pipefail

environment=${1:?usage: tag-deployed-image.sh ENVIRONMENT IMAGE}
image=${2:?usage: tag-deployed-image.sh ENVIRONMENT IMAGE}
sha=${image##*:}
repository=${image%:*}
repository=${repository#*/}
tag="$environment-$sha"

if aws ecr describe-images --repository-name "$repository" --image-ids "imageTag=$tag" >/dev/null 2>&1; then
  echo "$repository:$tag already exists"
  exit 0
fi
manifest=$(aws ecr batch-get-image --repository-name "$repository" --image-ids "imageTag=$sha" \
  --query 'images[0].imageManifest' --output text)
media_type=$(aws ecr batch-get-image --repository-name "$repository" --image-ids "imageTag=$sha" \
  --query 'images[0].imageManifestMediaType' --output text)
[ -n "$manifest" ] && [ "$manifest" != None ] || { echo "no image $repository:$sha" >&2; exit 1; }
media_type_args=()
if [ -n "$media_type" ] && [ "$media_type" != None ]; then
  media_type_args=(--image-manifest-media-type "$media_type")
fi
aws ecr put-image --repository-name "$repository" --image-tag "$tag" \
  --image-manifest "$manifest" "${media_type_args[@]}" --query 'image.imageId' --output text
echo "tagged $repository:$sha as $tag"
