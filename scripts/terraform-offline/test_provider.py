"""Tests of provider.py: the real terraform binary asking it, as run.sh has it asked.

Terraform itself reads the answers: the schema (names, types, flags, nesting), the validation
calls, the reattach configuration, and the calls that need AWS. They need `terraform` on PATH
and the schema schema.py extracted, named by TF_OFFLINE_SCHEMA (run.sh sets it; skipped
otherwise). Terraform checks every resource's schema as it loads them (contradicting flags,
a block named like an attribute, a dynamic type in a set: "invalid schema"), so
test_valid_configuration_passes also shows that the whole extracted schema is one it accepts.

  target/tf-offline-venv/bin/python -m unittest discover -s scripts/terraform-offline -p 'test_*.py'
"""

import os
import shutil
import subprocess
import tempfile
import unittest

import provider as P

# A nested attribute (protocol 6 nested_type), which no resource of this stack has, added to
# whichever schema is served under a name of its own.
NESTED = {"version": 0, "block": {"attributes": {"settings": {"optional": True, "nested_type": {
    "nesting_mode": "single", "attributes": {"mode": {"type": "string", "required": True}}}}}}}


def _schema_under_test():
    ps = P.load_schema(os.environ["TF_OFFLINE_SCHEMA"])
    return dict(ps, resource_schemas=dict(ps["resource_schemas"], aws_standin_nested=NESTED))


VERSIONS_TF = """
terraform {
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
  }
}
"""


@unittest.skipUnless(shutil.which("terraform"), "no terraform binary on PATH")
@unittest.skipUnless(os.environ.get("TF_OFFLINE_SCHEMA"), "TF_OFFLINE_SCHEMA names no extracted schema")
class RealTerraform(unittest.TestCase):
    """terraform init + validate (and plan) against the stand-in: a good config passes, bad
    ones fail, and a plan that would need AWS fails saying so."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="tfo-e2e-", dir="/tmp")
        sock = os.path.join(cls.tmp, "p.sock")
        cls.server, cls.servicer = P.serve(_schema_under_test(), sock, workers=4)
        cls.env = dict(os.environ, CHECKPOINT_DISABLE="1", TF_IN_AUTOMATION="1",
                       TF_REATTACH_PROVIDERS=P.reattach_config(sock, os.getpid()))
        rc = os.path.join(cls.tmp, "terraformrc")
        open(rc, "w").close()
        cls.env["TF_CLI_CONFIG_FILE"] = rc
        cls.env.pop("TF_DATA_DIR", None)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop(grace=0)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def validate(self, body: str, last="validate"):
        d = tempfile.mkdtemp(dir=self.tmp)
        with open(os.path.join(d, "versions.tf"), "w") as f:
            f.write(VERSIONS_TF)
        with open(os.path.join(d, "main.tf"), "w") as f:
            f.write(body)
        for args in (["init", "-backend=false", "-input=false"], [last]):
            p = subprocess.run(["terraform", f"-chdir={d}", *args, "-no-color"], env=self.env,
                               capture_output=True, text=True, timeout=120)
            if p.returncode != 0:
                return p.returncode, p.stdout + p.stderr
        return 0, p.stdout

    def test_valid_configuration_passes(self):
        before = dict(self.servicer.calls)
        rc, out = self.validate("""
provider "aws" {
  region = "us-east-1"
}
data "aws_region" "r" {}
resource "aws_ecs_service" "s" {
  name = "x"
  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }
}
resource "aws_efs_file_system" "f" {
  encrypted = true
}
resource "aws_standin_nested" "n" {
  settings = {
    mode = "x"
  }
}
output "arn" { value = aws_ecs_service.s.arn }
""")
        self.assertEqual(rc, 0, out)
        self.assertIn("The configuration is valid", out)
        for call in ("GetProviderSchema", "ValidateProviderConfig", "ValidateResourceConfig", "ValidateDataResourceConfig"):
            self.assertGreater(self.servicer.calls.get(call, 0), before.get(call, 0), call)

    def test_missing_required_argument_in_a_block_fails(self):
        rc, out = self.validate("""
resource "aws_ecs_service" "s" {
  name = "x"
  deployment_circuit_breaker {
    enable = true
  }
}
""")
        self.assertNotEqual(rc, 0)
        self.assertIn("Missing required argument", out)
        self.assertIn('"rollback" is required', out)

    def test_wrong_type_unknown_argument_and_second_max_one_block_fail(self):
        rc, out = self.validate("""
resource "aws_efs_file_system" "f" {
  encrypted = "yes"
}
resource "aws_ecs_service" "s" {
  name          = "x"
  no_such_thing = 1
  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }
  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }
}
""")
        self.assertNotEqual(rc, 0)
        self.assertIn("Incorrect attribute value type", out)
        self.assertIn("Unsupported argument", out)
        self.assertIn("Too many deployment_circuit_breaker blocks", out)

    def test_reference_to_an_attribute_that_does_not_exist_fails(self):
        rc, out = self.validate("""
resource "aws_efs_file_system" "f" {}
output "o" { value = aws_efs_file_system.f.no_such_attribute }
""")
        self.assertNotEqual(rc, 0)
        self.assertIn("Unsupported attribute", out)

    def test_a_plan_that_needs_aws_fails_saying_so(self):
        rc, out = self.validate('resource "aws_ecs_service" "s" {\n  name = "x"\n}\n', last="plan")
        self.assertNotEqual(rc, 0)
        self.assertIn("PlanResourceChange needs AWS", out)


if __name__ == "__main__":
    unittest.main()
