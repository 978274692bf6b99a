#!/usr/bin/env bash
# Static checks of the deployment files: Terraform formatting, checkov (Terraform, workflows,
# Dockerfile), hadolint (Dockerfile), zizmor and actionlint (GitHub workflows). Installs the
# checkers on first use into target/infra-venv (pinned in scripts/infra-requirements.txt), so
# it runs on a clean machine with only python3; later runs reuse them.
#
#   bash scripts/check-infra.sh
#
# Apart from PyPI on the first run, nothing here reaches the network (AWS, GitHub, the
# Terraform registry). `terraform init` and `validate` need the AWS provider, so they run in
# .github/workflows/ci.yml only; tests/infra.rs (cargo test) cross-checks the Terraform
# against the app.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

venv=target/infra-venv
requirements=scripts/infra-requirements.txt
stamp="$venv/.requirements"

if [ ! -x "$venv/bin/python" ]; then
  step "creating $venv"
  python3 -m venv "$venv"
fi
if ! cmp -s "$requirements" "$stamp"; then
  step "installing the checkers ($requirements)"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --requirement "$requirements"
  cp "$requirements" "$stamp"
fi
bin="$venv/bin"

step "terraform fmt -check -recursive terraform"
if command -v terraform >/dev/null 2>&1; then
  terraform version | head -n 1
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
"$bin/actionlint" --version | head -n 1
"$bin/actionlint" .github/workflows/*.yml

step "infra checks passed"
