#!/usr/bin/env bash
# Static checks of the deployment files: Terraform formatting, checkov (Terraform, workflows,
# Dockerfile), hadolint (Dockerfile), zizmor and actionlint (GitHub workflows). Installs the
# checkers on first use into target/infra-venv (pinned in scripts/infra-requirements.txt), so
# it runs on a clean machine with only python3; later runs reuse them.
#
#   bash scripts/check-infra.sh
#
# Apart from PyPI on the first run, nothing here reaches the network (AWS, GitHub, the
# Terraform registry). `terraform init`, `validate` and `test` need the AWS provider: they run
# offline against its real schema in scripts/terraform-offline/run.sh, and with the real
# provider in .github/workflows/ci.yml; tests/infra.rs (cargo test) cross-checks the Terraform
# against the app.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

venv=target/infra-venv
requirements=scripts/infra-requirements.txt
. scripts/lib.sh
python_tools "$venv" "$requirements"
bin="$venv/bin"

# Version lines are cut in the shell, not with `| head`: head exits after one line, and a
# writer that still has more to say dies of SIGPIPE, which pipefail turns into exit 141.
first_line() { printf '%s\n' "${1%%$'\n'*}"; }

step "terraform fmt -check -recursive terraform"
if command -v terraform >/dev/null 2>&1; then
  export CHECKPOINT_DISABLE=1  # no "is there a newer terraform?" call to checkpoint-api.hashicorp.com
  # A TF_CLI_CONFIG_FILE that names a missing file only adds a warning to every command.
  if [ -n "${TF_CLI_CONFIG_FILE:-}" ] && [ ! -e "$TF_CLI_CONFIG_FILE" ]; then unset TF_CLI_CONFIG_FILE; fi
  first_line "$(terraform version)"
  terraform fmt -check -recursive -diff terraform
else
  echo "SKIPPED: no terraform binary on PATH (CI installs one: .github/scripts/install-terraform.sh)"
fi

step "checkov (.checkov.yaml: Terraform, GitHub workflows, Dockerfile)"
echo "checkov $("$bin/checkov" --version)"
"$bin/checkov" --config-file .checkov.yaml --skip-download

step "hadolint Dockerfile"
"$bin/hadolint" --version
"$bin/hadolint" Dockerfile

step "zizmor --offline .github"
"$bin/zizmor" --version
"$bin/zizmor" --offline .github

step "actionlint .github/workflows"
first_line "$("$bin/actionlint" --version)"
"$bin/actionlint" .github/workflows/*.yml

step "infra checks passed"
