#!/usr/bin/env bash
# Installs a pinned Terraform release for the workflows: downloads the linux_amd64 zip, checks
# it against HashiCorp's SHA256SUMS for that release, unpacks it into a directory on PATH.
#
#   .github/scripts/install-terraform.sh [DEST_DIR]       (TERRAFORM_VERSION overrides the pin)
#
# Keep the pin in step with the `required_version` of terraform/*/versions.tf; `terraform fmt`
# output must not differ between the developer's and CI's versions.
set -euo pipefail

version="${TERRAFORM_VERSION:-1.11.4}"
dest="${1:-$HOME/.local/bin}"
base="https://releases.hashicorp.com/terraform/${version}"
zip="terraform_${version}_linux_amd64.zip"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"

curl --fail --silent --show-error --location --proto '=https' --tlsv1.2 -O "${base}/${zip}"
curl --fail --silent --show-error --location --proto '=https' --tlsv1.2 -O "${base}/terraform_${version}_SHA256SUMS"
grep " ${zip}\$" "terraform_${version}_SHA256SUMS" | sha256sum --check --strict -

mkdir -p "$dest"
unzip -o -q "$zip" terraform -d "$dest"
if [ -n "${GITHUB_PATH:-}" ]; then echo "$dest" >> "$GITHUB_PATH"; fi
"$dest/terraform" version
