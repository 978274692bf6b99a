#!/usr/bin/env bash
# Plans one Terraform root against its S3 state and applies exactly that plan if it changes
# anything. Used by deploy-environment.yml (before every deploy, so the service is rolled out
# on the settings of the same commit; the only place any workflow applies Terraform).
#
#   STATE_BUCKET=... AWS_REGION=... .github/scripts/terraform-apply.sh terraform/<environment>
#
# Takes the state lock (use_lockfile) for plan and apply, waiting up to 5 minutes for it.
set -euo pipefail

root=${1:?usage: terraform-apply.sh ROOT}
: "${STATE_BUCKET:?}" "${AWS_REGION:?}"
export TF_IN_AUTOMATION=true TF_INPUT=false

terraform -chdir="$root" init -no-color \
  -backend-config="bucket=$STATE_BUCKET" -backend-config="region=$AWS_REGION"

# -detailed-exitcode: 0 no changes, 1 error, 2 changes present.
status=0
terraform -chdir="$root" plan -no-color -lock-timeout=5m -detailed-exitcode -out=tfplan || status=$?
case $status in
  0) echo "terraform: $root has no changes" ;;
  2) terraform -chdir="$root" apply -no-color -lock-timeout=5m tfplan ;;
  *) exit "$status" ;;
esac
