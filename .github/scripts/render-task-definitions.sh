#!/usr/bin/env bash
# Each environment's task definition as Terraform plans it, with the real provider from the
# registry (the roots' lock files read-only): terraform test's run "task_definition" of
# terraform/<env>, printed by -json -verbose and written by scripts/container/taskdef.py to
# target/task-definitions/<env>.json, which the container check and the rolling-deploy
# rehearsal run the image with. Offline, scripts/terraform-offline/run.sh writes the same files.
#
#   .github/scripts/render-task-definitions.sh [ENV...]    (default: staging production)
set -euo pipefail
[ $# -gt 0 ] || set -- staging production
for env in "$@"; do
  echo "==> terraform/$env"
  terraform -chdir="terraform/$env" init -backend=false -input=false -no-color -lockfile=readonly
  terraform -chdir="terraform/$env" test -no-color -json -verbose |
    python3 scripts/container/taskdef.py render "target/task-definitions/$env.json"
done
