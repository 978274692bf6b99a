"""Tests of provider.py: the protocol 6 answers, and the real terraform binary using them.

The end-to-end tests need `terraform` on PATH (skipped otherwise). They use the full schema
when TF_OFFLINE_SCHEMA names it (run.sh sets it), else a two-resource schema below.

  target/tf-offline-venv/bin/python -m unittest discover -s scripts/terraform-offline -p 'test_*.py'
"""

import json
import os
import shutil
import subprocess
import tempfile
import unittest

import grpc
from tf.gen import tfplugin_pb2 as pb
from tf.gen import tfplugin_pb2_grpc as pb_grpc

import provider as P

SMALL = {
    "provider": {"version": 0, "block": {"attributes": {"region": {"type": "string", "optional": True}}}},
    "resource_schemas": {
        "aws_ecs_service": {
            "version": 0,
            "block": {
                "attributes": {
                    "name": {"type": "string", "required": True},
                    "arn": {"type": "string", "computed": True},
                    "tags": {"type": ["map", "string"], "optional": True},
                },
                "block_types": {
                    "deployment_circuit_breaker": {
                        "nesting_mode": "list",
                        "max_items": 1,
                        "block": {
                            "attributes": {
                                "enable": {"type": "bool", "required": True},
                                "rollback": {"type": "bool", "required": True},
                            }
                        },
                    }
                },
            },
        },
        "aws_efs_file_system": {
            "version": 0,
            "block": {
                "attributes": {
                    "encrypted": {"type": "bool", "optional": True, "computed": True},
                    "settings": {
                        "nested_type": {
                            "nesting_mode": "single",
                            "attributes": {"mode": {"type": "string", "required": True}},
                        },
                        "optional": True,
                    },
                }
            },
        },
    },
    "data_source_schemas": {
        "aws_region": {"version": 0, "block": {"attributes": {"region": {"type": "string", "optional": True, "computed": True}}}}
    },
}


def _schema_under_test():
    path = os.environ.get("TF_OFFLINE_SCHEMA")
    return P.load_schema(path) if path else SMALL


class Server(unittest.TestCase):
    """A real gRPC server on a unix socket, asked the way Terraform asks."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="tfo-test-", dir="/tmp")
        cls.sock = os.path.join(cls.tmp, "p.sock")
        cls.server, cls.servicer = P.serve(SMALL, cls.sock, workers=2)
        cls.channel = grpc.insecure_channel(f"unix:{cls.sock}")
        cls.stub = pb_grpc.ProviderStub(cls.channel)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        cls.server.stop(grace=0)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_schema_carries_blocks_types_and_flags(self):
        r = self.stub.GetProviderSchema(pb.GetProviderSchema.Request())
        self.assertEqual(len(r.diagnostics), 0)
        svc = r.resource_schemas["aws_ecs_service"].block
        attrs = {a.name: a for a in svc.attributes}
        self.assertTrue(attrs["name"].required)
        self.assertEqual(json.loads(attrs["name"].type), "string")
        self.assertTrue(attrs["arn"].computed and not attrs["arn"].optional)
        self.assertEqual(json.loads(attrs["tags"].type), ["map", "string"])
        (cb,) = svc.block_types
        self.assertEqual((cb.type_name, cb.nesting, cb.min_items, cb.max_items),
                         ("deployment_circuit_breaker", pb.Schema.NestedBlock.LIST, 0, 1))
        inner = {a.name: (json.loads(a.type), a.required) for a in cb.block.attributes}
        self.assertEqual(inner, {"enable": ("bool", True), "rollback": ("bool", True)})
        efs = {a.name: a for a in r.resource_schemas["aws_efs_file_system"].block.attributes}
        self.assertEqual(json.loads(efs["encrypted"].type), "bool")
        self.assertTrue(efs["encrypted"].optional and efs["encrypted"].computed)
        self.assertEqual(efs["settings"].nested_type.nesting, pb.Schema.Object.SINGLE)
        self.assertEqual(efs["settings"].type, b"")
        self.assertIn("aws_region", r.data_source_schemas)
        self.assertEqual([a.name for a in r.provider.block.attributes], ["region"])

    def test_metadata_lists_every_type(self):
        r = self.stub.GetMetadata(pb.GetMetadata.Request())
        self.assertEqual([m.type_name for m in r.resources], ["aws_ecs_service", "aws_efs_file_system"])
        self.assertEqual([m.type_name for m in r.data_sources], ["aws_region"])

    def test_validation_calls_find_nothing(self):
        self.assertEqual(len(self.stub.ValidateProviderConfig(pb.ValidateProviderConfig.Request()).diagnostics), 0)
        req = pb.ValidateResourceConfig.Request(type_name="aws_ecs_service")
        self.assertEqual(len(self.stub.ValidateResourceConfig(req).diagnostics), 0)
        req = pb.ValidateDataResourceConfig.Request(type_name="aws_region")
        self.assertEqual(len(self.stub.ValidateDataResourceConfig(req).diagnostics), 0)

    def test_calls_that_need_aws_fail_loudly(self):
        r = self.stub.PlanResourceChange(pb.PlanResourceChange.Request(type_name="aws_ecs_service"))
        self.assertEqual(r.diagnostics[0].severity, pb.Diagnostic.ERROR)
        self.assertIn("needs AWS", r.diagnostics[0].summary)
        r = self.stub.ReadDataSource(pb.ReadDataSource.Request(type_name="aws_region"))
        self.assertEqual(r.diagnostics[0].severity, pb.Diagnostic.ERROR)

    def test_reattach_config(self):
        cfg = json.loads(P.reattach_config("/tmp/x.sock", 42))
        self.assertEqual(
            cfg["registry.terraform.io/hashicorp/aws"],
            {"Protocol": "grpc", "ProtocolVersion": 6, "Pid": 42, "Test": True,
             "Addr": {"Network": "unix", "String": "/tmp/x.sock"}},
        )


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
class RealTerraform(unittest.TestCase):
    """terraform init + validate against the stand-in: a good config passes, bad ones fail."""

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

    def validate(self, body: str):
        d = tempfile.mkdtemp(dir=self.tmp)
        with open(os.path.join(d, "versions.tf"), "w") as f:
            f.write(VERSIONS_TF)
        with open(os.path.join(d, "main.tf"), "w") as f:
            f.write(body)
        for args in (["init", "-backend=false", "-input=false"], ["validate"]):
            p = subprocess.run(["terraform", f"-chdir={d}", *args, "-no-color"], env=self.env,
                               capture_output=True, text=True, timeout=120)
            if p.returncode != 0:
                return p.returncode, p.stdout + p.stderr
        return 0, p.stdout

    def test_valid_configuration_passes(self):
        rc, out = self.validate("""
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
output "arn" { value = aws_ecs_service.s.arn }
""")
        self.assertEqual(rc, 0, out)
        self.assertIn("The configuration is valid", out)
        self.assertGreater(self.servicer.calls.get("GetProviderSchema", 0), 0)

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


if __name__ == "__main__":
    unittest.main()
