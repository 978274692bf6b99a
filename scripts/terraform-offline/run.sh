#!/usr/bin/env bash
# The real `terraform init -backend=false`, `terraform validate` and `terraform test`, offline,
# in every Terraform root and module, against the real hashicorp/aws schema.
#
#   bash scripts/terraform-offline/run.sh                      # every directory under terraform/
#   bash scripts/terraform-offline/run.sh terraform/staging    # only these directories
#   bash scripts/terraform-offline/run.sh --validate-only ...  # init + validate, no terraform test
#
# The AWS provider binary cannot be downloaded here, so a schema-only stand-in answers for it
# (provider.py; its docstring says what it answers and why): schema.py rebuilds the schema of
# hashicorp/aws 6.66.0 from PyPI's cdktn-provider-aws (pinned in schema-requirements.txt), the
# stand-in serves it over Terraform's plugin protocol, and Terraform is pointed at it with
# TF_REATTACH_PROVIDERS. Terraform itself then checks every argument name, type, required
# argument, block and reference. `terraform test` runs in each directory that has *.tftest.hcl
# files (in it or in tests/); those use `mock_provider "aws" {}`, which asks the provider for
# nothing but its schema and the validation calls.
#
# First run: a venv in target/tf-offline-venv (requirements.txt) and the schema (one 70 MB wheel,
# extracted once into target/tf-offline/). Later runs reuse both. Terraform runs in a scratch
# copy of terraform/ (target/tf-offline/work.*), so nothing in the tree changes: no .terraform/
# directories, and the committed .terraform.lock.hcl files are never rewritten.
# Each environment root's test also writes its task definition as Terraform plans it to
# target/task-definitions/<env>.json, which the container check runs the image with.
set -euo pipefail
self=$(readlink -f "$0")
cd "$(dirname "$self")/../.."
started=$SECONDS

here=scripts/terraform-offline
state=target/tf-offline
venv=target/tf-offline-venv
requirements=$here/requirements.txt
provider_deadline=1800 # seconds; the stand-in exits by itself after this, whatever happens

step() { printf '\n==> %s\n' "$*"; }
elapsed() { echo "$((SECONDS - started)) s"; }

run_tests=1
dirs=()
for arg in "$@"; do
  case "$arg" in
    --validate-only) run_tests=0 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$self" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "unknown option $arg" >&2; exit 2 ;;
    *)
      d=${arg%/}
      if [ ! -d "$d" ] || [[ "$d" != terraform/* ]] || ! compgen -G "$d/*.tf" >/dev/null; then
        echo "not a Terraform directory under terraform/: $arg" >&2
        exit 2
      fi
      dirs+=("$d")
      ;;
  esac
done
full_run=0
if [ ${#dirs[@]} -eq 0 ]; then
  full_run=1
  # Every directory with .tf files, except test helpers under tests/ and init's own copies.
  mapfile -t dirs < <(find terraform -name '*.tf' -not -path '*/.terraform/*' -not -path '*/tests/*' \
    -printf '%h\n' | sort -u)
fi

command -v terraform >/dev/null || { echo "terraform is not on PATH" >&2; exit 1; }
export CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1 TF_INPUT=0
mkdir -p "$state"
# A CLI configuration of our own: whatever ~/.terraformrc says (mirrors, dev overrides, a
# plugin cache) does not apply, and a TF_CLI_CONFIG_FILE naming a missing file warns no more.
: >"$state/terraformrc"
export TF_CLI_CONFIG_FILE=$PWD/$state/terraformrc
unset TF_PLUGIN_CACHE_DIR TF_DATA_DIR TF_WORKSPACE

# Runs may overlap (teammates share a checkout): one at a time sets up the venv and the schema.
exec 9>"$state/.setup.lock"
flock 9

# --- Python: the venv, reused while requirements.txt is unchanged ------------------------------
. scripts/lib.sh
python_tools "$venv" "$requirements"
py=$venv/bin/python

# --- The schema, cached under a key of its source pin and its extractor ------------------------
key=$(cat "$here/schema-requirements.txt" "$here/schema.py" "$here/wafv2.py" | sha256sum | cut -c1-12)
pin=$(grep -o '^cdktn-provider-aws==[^ ]*' "$here/schema-requirements.txt")
schema=$state/schema-${pin#*==}-$key.json
if [ ! -s "$schema" ]; then
  step "extracting the hashicorp/aws schema from $pin (once)"
  wheels=$state/wheels
  wheel=$(ls "$wheels"/cdktn_provider_aws-"${pin#*==}"-*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$wheel" ]; then
    "$py" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
      --require-hashes --requirement "$here/schema-requirements.txt" --dest "$wheels"
    wheel=$(ls "$wheels"/cdktn_provider_aws-"${pin#*==}"-*.whl)
  fi
  "$py" "$here/schema.py" "$wheel" "$schema"
fi
# A stable name for other scripts (the keyed file changes whenever schema.py does).
ln -sfn "$(basename "$schema")" "$state/schema.json"
schema_version=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["generated_from"]["provider"]["version"])' "$schema")
echo "schema: hashicorp/aws $schema_version ($schema)"
flock -u 9

if [ $full_run -eq 1 ]; then
  # Skipped when only some directories are named, to keep that loop fast.
  step "the stand-in's own tests (test_*.py)"
  TF_OFFLINE_SCHEMA=$schema "$py" -m unittest discover -s "$here" -p 'test_*.py'
fi

# --- The stand-in provider, stopped by pid on every exit ----------------------------------------
# Unix socket paths are limited to ~100 bytes, so the socket lives in a short /tmp directory.
sockdir=$(mktemp -d /tmp/tf-offline.XXXXXX)
work=$(mktemp -d "$PWD/$state/work.XXXXXX")
provider_pid=
cleanup() {
  if [ -n "$provider_pid" ] && kill -0 "$provider_pid" 2>/dev/null; then
    kill "$provider_pid" 2>/dev/null || true
    wait "$provider_pid" 2>/dev/null || true
    grep -h 'calls answered' "$sockdir/provider.log" || true
  fi
  rm -rf "$sockdir" "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step "starting the stand-in provider"
"$py" "$here/provider.py" --schema "$schema" --socket "$sockdir/provider.sock" \
  --ready "$sockdir/reattach.json" --max-seconds "$provider_deadline" 2>"$sockdir/provider.log" &
provider_pid=$!
# Ready once it has written its reattach configuration; poll, and give up if it dies or is slow.
provider_ready() {
  kill -0 "$provider_pid" 2>/dev/null || { echo "the stand-in provider exited; its log:" >&2; cat "$sockdir/provider.log" >&2; exit 1; }
  [ -s "$sockdir/reattach.json" ]
}
poll 60 provider_ready || { echo "the stand-in provider was not ready within 60 s" >&2; exit 1; }
TF_REATTACH_PROVIDERS=$(cat "$sockdir/reattach.json")
export TF_REATTACH_PROVIDERS
cat "$sockdir/provider.log"

# --- Terraform, in a scratch copy of terraform/ -------------------------------------------------
tar -C terraform --exclude=.terraform --exclude='*.tfstate' --exclude='*.tfstate.*' -cf - . |
  (mkdir -p "$work/terraform" && tar -C "$work/terraform" -xf -)
# The environment module reads the Prometheus rules with file() from monitoring/, beside terraform/.
cp -r monitoring "$work/monitoring"

failed=()
validated=0
tested=0
for d in "${dirs[@]}"; do
  wd=$work/$d
  step "$d"
  if [[ "$d" != terraform/modules/* ]]; then
    # With a reattached provider, init neither checks nor writes the lock file, so check here
    # that it pins the release whose schema this run validates against.
    lock=$d/.terraform.lock.hcl
    if [ ! -f "$lock" ]; then
      echo "note: no $lock (roots should commit one)"
    else
      locked=$(awk '/^provider "registry.terraform.io\/hashicorp\/aws"/ {p=1} p && $1 == "version" {gsub(/"/, "", $3); print $3; exit}' "$lock")
      if [ "$locked" != "$schema_version" ]; then
        echo "FAILED: $lock pins hashicorp/aws ${locked:-(nothing)}, the schema is $schema_version" >&2
        failed+=("$d (lock file)")
      fi
    fi
  fi
  # -lockfile=readonly: never rewrite a lock file, even in the scratch copy.
  if ! terraform -chdir="$wd" init -backend=false -input=false -no-color -lockfile=readonly >"$work/init.log" 2>&1; then
    cat "$work/init.log"
    failed+=("$d (init)")
    continue
  fi
  if ! terraform -chdir="$wd" validate -no-color; then
    failed+=("$d (validate)")
    continue
  fi
  validated=$((validated + 1))
  if [ $run_tests -eq 1 ] && { compgen -G "$wd/*.tftest.hcl" || compgen -G "$wd/tests/*.tftest.hcl"; } >/dev/null; then
    # An environment root's test file plans its task definition (run "task_definition"):
    # -json -verbose prints that plan, and taskdef.py writes it out for the container check
    # (target/task-definitions/<env>.json) and prints the test's messages.
    if [[ $d != terraform/modules/* ]] && grep -qs '^run "task_definition"' "$wd"/tests/*.tftest.hcl; then
      tf_test() { terraform -chdir="$wd" test -no-color -json -verbose |
        python3 scripts/container/taskdef.py render "target/task-definitions/${d##*/}.json"; }
    else
      tf_test() { terraform -chdir="$wd" test -no-color; }
    fi
    if tf_test; then
      tested=$((tested + 1))
    else
      failed+=("$d (test)")
    fi
  fi
done

step "summary ($(elapsed))"
echo "validated $validated of ${#dirs[@]} directories against hashicorp/aws $schema_version; terraform test passed in $tested"
if [ ${#failed[@]} -gt 0 ]; then
  printf 'FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "terraform offline checks passed"
