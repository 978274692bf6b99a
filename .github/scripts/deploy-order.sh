#!/usr/bin/env bash
# Decides whether this commit may be deployed to an environment: never over a newer commit.
#
# Each push to main runs its own Deploy; their deploy jobs run one at a time per environment
# (concurrency group deploy-<env>) but in whatever order their CI finished. This script looks
# at the image the ECS service runs now (tagged with its commit SHA) and refuses to roll the
# service back to an older commit:
#
#   running commit                         outcome
#   none (no service yet, vars not set)    deploy (first deploy: Terraform creates the service)
#   this commit                            deploy (a re-run: settings Terraform changed go live)
#   an ancestor of this commit             deploy
#   a descendant of this commit (newer)    skip, with a notice: the newer commit stays
#   unknown to git, or on another branch   deploy, with a warning (history was rewritten)
#
# Needs a full clone (actions/checkout with fetch-depth: 0) and AWS credentials that can
# describe the service and its task definition. The app's container is the task's one
# essential container (the metrics collector beside it is not: terraform/modules/service's
# tests assert both), so no container name is restated here.
#
#   CLUSTER= SERVICE= COMMIT= .github/scripts/deploy-order.sh
#
# Writes deploy=true|false and running-commit=<sha or empty> to $GITHUB_OUTPUT when set.
set -euo pipefail

: "${COMMIT:?}"
cluster=${CLUSTER:-}
service=${SERVICE:-}
out=${GITHUB_OUTPUT:-/dev/null}

decide() { # decide true|false RUNNING_COMMIT
  echo "deploy=$1" >>"$out"
  echo "running-commit=$2" >>"$out"
  exit 0
}

if [ -z "$cluster" ] || [ -z "$service" ]; then
  echo "::notice::ECS_CLUSTER/ECS_SERVICE are not set for this environment yet: nothing runs to compare with (first deploy)"
  decide true ""
fi

# A missing cluster is an error of describe-services, a missing service a failure in its
# answer; anything else that goes wrong stops the deploy rather than risk an older commit.
err=$(mktemp)
trap 'rm -f "$err"' EXIT
if ! task_definition=$(aws ecs describe-services --cluster "$cluster" --services "$service" \
    --query 'services[?status==`ACTIVE`].taskDefinition | [0]' --output text 2>"$err"); then
  if grep -q ClusterNotFoundException "$err"; then
    echo "::notice::cluster $cluster does not exist yet: nothing runs to compare with"
    decide true ""
  fi
  cat "$err" >&2
  exit 1
fi
if [ -z "$task_definition" ] || [ "$task_definition" = None ]; then
  echo "::notice::service $service does not exist yet: nothing runs to compare with"
  decide true ""
fi

image=$(aws ecs describe-task-definition --task-definition "$task_definition" \
  --query 'taskDefinition.containerDefinitions[?essential].image | [0]' --output text)
running=${image##*:}
echo "Running now: $task_definition, image $image"

if ! [[ $image == *:* && $image != *@* && $running =~ ^[0-9a-f]{40}$ ]]; then
  echo "::warning::the running image $image is not tagged with a commit SHA; cannot compare, deploying"
  decide true ""
fi
if [ "$running" = "$COMMIT" ]; then
  echo "The service already runs $COMMIT: deploying it again (picks up task definition changes)"
  decide true "$running"
fi
if ! git cat-file -e "$running^{commit}" 2>/dev/null; then
  echo "::warning::the running commit $running is not in this repository's history; cannot compare, deploying"
  decide true "$running"
fi
if git merge-base --is-ancestor "$COMMIT" "$running"; then
  echo "::notice::$running, which the service runs, is newer than $COMMIT (its deploy finished first): not deploying the older commit"
  decide false "$running"
fi
if git merge-base --is-ancestor "$running" "$COMMIT"; then
  echo "$COMMIT is newer than the running $running: deploying"
else
  echo "::warning::$COMMIT and the running $running are on diverged histories; deploying $COMMIT"
fi
decide true "$running"
