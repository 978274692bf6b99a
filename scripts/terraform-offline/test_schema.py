"""Tests of schema.py: how the CDK bindings' JavaScript is read back into a Terraform schema.

The input is the real one: the schema schema.py extracted from the pinned cdktn-provider-aws
wheel, named by TF_OFFLINE_SCHEMA (run.sh sets it; skipped otherwise). Each way the bindings
write an attribute or block is checked on a real resource whose schema the provider's source
states, and the whole schema is loaded by the real terraform in test_provider.py and run.sh.

  target/tf-offline-venv/bin/python -m unittest discover -s scripts/terraform-offline -p 'test_*.py'
"""

import json
import os
import unittest

import schema as S

class CollectionTypes(unittest.TestCase):
    def test_storage_class_types(self):
        self.assertEqual(S._collection_type("simple", "number"), "number")
        self.assertEqual(S._collection_type("set", "stringList"), ["set", "string"])
        self.assertEqual(S._collection_type("map", "stringListMap"), ["map", ["list", "string"]])
        self.assertEqual(S._collection_type("list", "stringMapList"), ["list", ["map", "string"]])
        with self.assertRaises(ValueError):
            S._collection_type("list", "string")


def _check_block(test, block, path):
    """Rules of Terraform's schema validation (configschema InternalValidate) that Terraform does
    not apply to a provider's schema itself; those it does apply (flags that contradict, a block
    named like an attribute, a dynamic type in a set) it checks as it loads this schema, in
    test_provider.py."""
    for name, a in block.get("attributes", {}).items():
        test.assertRegex(name, r"^[a-z0-9_]+$", f"{path}.{name}")
        test.assertEqual(("type" in a) + ("nested_type" in a), 1, f"{path}.{name}")
    for name, bt in block.get("block_types", {}).items():
        test.assertRegex(name, r"^[a-z0-9_]+$", f"{path}.{name}")
        test.assertIn(bt["nesting_mode"], ("single", "list", "set", "map"), f"{path}.{name}")
        _check_block(test, bt["block"], f"{path}.{name}")


@unittest.skipUnless(os.environ.get("TF_OFFLINE_SCHEMA"), "TF_OFFLINE_SCHEMA names no extracted schema")
class FullSchema(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(os.environ["TF_OFFLINE_SCHEMA"]) as f:
            cls.doc = json.load(f)
        ps = cls.doc["provider_schemas"][S.PROVIDER_ADDR]
        cls.resources = ps["resource_schemas"]
        cls.data_sources = ps["data_source_schemas"]
        cls.provider = ps["provider"]["block"]

    def test_release_and_size(self):
        self.assertEqual(self.doc["generated_from"]["provider"]["version"], "6.66.0")
        self.assertGreater(len(self.resources), 1500)
        self.assertGreater(len(self.data_sources), 600)

    def attributes(self, resource):
        return self.resources[resource]["block"]["attributes"]

    def test_primitive_attributes_keep_terraform_names_flags_and_types(self):
        self.assertEqual(self.attributes("aws_ecs_service")["tags"], {"type": ["map", "string"], "optional": True})
        self.assertEqual(self.attributes("aws_efs_file_system")["arn"], {"type": "string", "computed": True})
        self.assertEqual(self.attributes("aws_subnet")["enable_dns64"], {"type": "bool", "optional": True})
        # A computed set comes back through Fn.tolist(getListAttribute(...)).
        self.assertEqual(self.attributes("aws_vpc_endpoint")["network_interface_ids"], {"type": ["set", "string"], "computed": True})

    def test_computed_objects_are_attributes(self):
        # A single object, optional and computed (a framework ObjectAttribute).
        self.assertEqual(
            self.attributes("aws_s3tables_table_bucket")["encryption_configuration"],
            {"type": ["object", {"kms_key_arn": "string", "sse_algorithm": "string"}], "optional": True, "computed": True},
        )
        # Lists and sets of objects that are only computed; the list class's third argument
        # says whether it wraps a set.
        self.assertEqual(
            self.attributes("aws_efs_file_system")["size_in_bytes"],
            {"type": ["list", ["object", {"value": "number", "value_in_ia": "number", "value_in_standard": "number"}]], "computed": True},
        )
        options = self.attributes("aws_acm_certificate")["domain_validation_options"]
        self.assertEqual((options["type"][0], options["type"][1][0], options.get("computed"), options.get("optional")), ("set", "object", True, None))

    def test_required_set_block(self):
        condition = self.resources["aws_lb_listener_rule"]["block"]["block_types"]["condition"]
        self.assertEqual((condition["nesting_mode"], condition.get("min_items"), condition.get("max_items")), ("set", 1, None))

    def test_ecs_service_circuit_breaker(self):
        b = self.resources["aws_ecs_service"]["block"]
        cb = b["block_types"]["deployment_circuit_breaker"]
        self.assertEqual((cb["nesting_mode"], cb.get("max_items")), ("list", 1))
        self.assertEqual(
            cb["block"]["attributes"],
            {"enable": {"type": "bool", "required": True}, "rollback": {"type": "bool", "required": True}},
        )
        self.assertEqual(b["attributes"]["deployment_minimum_healthy_percent"], {"type": "number", "optional": True})
        self.assertEqual(b["attributes"]["name"], {"type": "string", "required": True})
        self.assertNotIn("min_items", cb)
        self.assertEqual(b["block_types"]["load_balancer"]["nesting_mode"], "set")
        self.assertEqual(b["block_types"]["load_balancer"]["block"]["attributes"]["container_port"], {"type": "number", "required": True})
        self.assertEqual(b["block_types"]["timeouts"]["nesting_mode"], "single")
        self.assertEqual(b["block_types"]["timeouts"]["block"]["attributes"]["create"], {"type": "string", "optional": True})

    def test_efs(self):
        fs = self.resources["aws_efs_file_system"]["block"]
        self.assertEqual(fs["attributes"]["encrypted"], {"type": "bool", "optional": True, "computed": True})
        self.assertEqual(fs["attributes"]["throughput_mode"]["type"], "string")
        ap = self.resources["aws_efs_access_point"]["block"]
        root = ap["block_types"]["root_directory"]["block"]
        self.assertEqual(root["block_types"]["creation_info"]["block"]["attributes"]["owner_uid"]["type"], "number")

    def test_attributes_as_blocks_and_min_items(self):
        sg = self.resources["aws_security_group"]["block"]
        self.assertEqual(sg["attributes"]["ingress"]["type"][0], "set")
        self.assertEqual(sg["attributes"]["ingress"]["type"][1][0], "object")
        self.assertNotIn("ingress", sg.get("block_types", {}))  # a set of objects, not a block
        listener = self.resources["aws_lb_listener"]["block"]
        self.assertEqual(listener["block_types"]["default_action"].get("min_items"), 1)

    def test_names_that_camel_case_would_get_wrong(self):
        self.assertIn("enable_dns64", self.resources["aws_subnet"]["block"]["attributes"])
        self.assertIn("ipv6_cidr_block", self.resources["aws_vpc"]["block"]["attributes"])

    def test_data_source_and_provider(self):
        doc = self.data_sources["aws_iam_policy_document"]["block"]
        self.assertEqual(doc["attributes"]["json"], {"type": "string", "computed": True})
        principals = doc["block_types"]["statement"]["block"]["block_types"]["principals"]
        self.assertEqual(principals["block"]["attributes"]["identifiers"], {"type": ["set", "string"], "required": True})
        self.assertEqual(self.provider["attributes"]["region"], {"type": "string", "optional": True})
        self.assertNotIn("alias", self.provider["attributes"])
        self.assertEqual(self.provider["block_types"]["default_tags"]["block"]["attributes"]["tags"]["type"], ["map", "string"])

    def test_every_schema_is_one_terraform_accepts(self):
        _check_block(self, self.provider, "provider")
        for kind in (self.resources, self.data_sources):
            for name, s in kind.items():
                _check_block(self, s["block"], name)


if __name__ == "__main__":
    unittest.main()
