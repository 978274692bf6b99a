"""Tests of schema.py: how the CDK bindings' JavaScript is read back into a Terraform schema.

The fixture below is shaped exactly as the generator writes each binding (trimmed from
lib/ecs-service/index.js and friends of cdktn-provider-aws 25.8.1). With TF_OFFLINE_SCHEMA
naming the extracted schema (run.sh sets it), the full schema is checked too.

  target/tf-offline-venv/bin/python -m unittest discover -s scripts/terraform-offline -p 'test_*.py'
"""

import json
import os
import re
import unittest

import schema as S

FIXTURE = r'''
function demoServiceDeploymentCircuitBreakerToHclTerraform(struct) {
    const attrs = {
        enable: {
            value: cdktn.booleanToHclTerraform(struct.enable),
            isBlock: false,
            type: "simple",
            storageClassType: "boolean",
        },
        rollback: {
            value: cdktn.booleanToHclTerraform(struct.rollback),
            isBlock: false,
            type: "simple",
            storageClassType: "boolean",
        },
    };
    return attrs;
}
class DemoServiceDeploymentCircuitBreakerOutputReference extends cdktn.ComplexObject {
    // enable - computed: false, optional: false, required: true
    _enable;
    get enable() {
        return this.getBooleanAttribute('enable');
    }
    // rollback - computed: false, optional: false, required: true
    _rollback;
    get rollback() {
        return this.getBooleanAttribute('rollback');
    }
}
function demoServiceLoadBalancerToHclTerraform(struct) {
    const attrs = {
        container_port: {
            value: cdktn.numberToHclTerraform(struct.containerPort),
            isBlock: false,
            type: "simple",
            storageClassType: "number",
        },
    };
    return attrs;
}
class DemoServiceLoadBalancerOutputReference extends cdktn.ComplexObject {
    // container_port - computed: false, optional: false, required: true
    _containerPort;
    get containerPort() {
        return this.getNumberAttribute('container_port');
    }
}
function demoServiceIngressToHclTerraform(struct) {
    const attrs = {
        cidr_blocks: {
            value: cdktn.listMapperHcl(cdktn.stringToHclTerraform, false)(struct.cidrBlocks),
            isBlock: false,
            type: "list",
            storageClassType: "stringList",
        },
        from_port: {
            value: cdktn.numberToHclTerraform(struct.fromPort),
            isBlock: false,
            type: "simple",
            storageClassType: "number",
        },
    };
    return attrs;
}
class DemoServiceIngressOutputReference extends cdktn.ComplexObject {
    // cidr_blocks - computed: true, optional: true, required: false
    _cidrBlocks;
    get cidrBlocks() {
        return this.getListAttribute('cidr_blocks');
    }
    // from_port - computed: true, optional: true, required: false
    _fromPort;
    get fromPort() {
        return this.getNumberAttribute('from_port');
    }
}
function demoServiceEncryptionToHclTerraform(struct) {
    const attrs = {
        kms_key_arn: {
            value: cdktn.stringToHclTerraform(struct.kmsKeyArn),
            isBlock: false,
            type: "simple",
            storageClassType: "string",
        },
    };
    return attrs;
}
class DemoServiceEncryptionOutputReference extends cdktn.ComplexObject {
    // kms_key_arn - computed: true, optional: true, required: false
    _kmsKeyArn;
    get kmsKeyArn() {
        return this.getStringAttribute('kms_key_arn');
    }
}
class DemoServiceSizeOutputReference extends cdktn.ComplexObject {
    // value - computed: true, optional: false, required: false
    get value() {
        return this.getNumberAttribute('value');
    }
}
class DemoServiceSizeList extends cdktn.ComplexList {
}
function demoServiceTimeoutsToHclTerraform(struct) {
    const attrs = {
        create: {
            value: cdktn.stringToHclTerraform(struct.create),
            isBlock: false,
            type: "simple",
            storageClassType: "string",
        },
    };
    return attrs;
}
class DemoServiceTimeoutsOutputReference extends cdktn.ComplexObject {
    // create - computed: false, optional: true, required: false
    _create;
    get create() {
        return this.getStringAttribute('create');
    }
}
class DemoService extends cdktn.TerraformResource {
    static tfResourceType = "aws_demo_service";
    // arn - computed: true, optional: false, required: false
    get arn() {
        return this.getStringAttribute('arn');
    }
    // enable_dns64 - computed: false, optional: true, required: false
    _enableDns64;
    get enableDns64() {
        return this.getBooleanAttribute('enable_dns64');
    }
    // name - computed: false, optional: false, required: true
    _name;
    get name() {
        return this.getStringAttribute('name');
    }
    // subnet_ids - computed: true, optional: false, required: false
    get subnetIds() {
        return cdktn.Fn.tolist(this.getListAttribute('subnet_ids'));
    }
    // size - computed: true, optional: false, required: false
    _size = new DemoServiceSizeList(this, "size", false);
    get size() {
        return this._size;
    }
    // size_history - computed: true, optional: false, required: false
    _sizeHistory = new DemoServiceSizeList(this, "size_history", true);
    get sizeHistory() {
        return this._sizeHistory;
    }
    // tags - computed: false, optional: true, required: false
    _tags;
    get tags() {
        return this.getStringMapAttribute('tags');
    }
    // deployment_circuit_breaker - computed: false, optional: true, required: false
    _deploymentCircuitBreaker = new DemoServiceDeploymentCircuitBreakerOutputReference(this, "deployment_circuit_breaker");
    get deploymentCircuitBreaker() {
        return this._deploymentCircuitBreaker;
    }
    // load_balancer - computed: false, optional: false, required: true
    _loadBalancer = new DemoServiceLoadBalancerList(this, "load_balancer", true);
    get loadBalancer() {
        return this._loadBalancer;
    }
    // ingress - computed: true, optional: true, required: false
    _ingress = new DemoServiceIngressList(this, "ingress", true);
    get ingress() {
        return this._ingress;
    }
    // encryption - computed: true, optional: true, required: false
    _encryption = new DemoServiceEncryptionOutputReference(this, "encryption");
    get encryption() {
        return this._encryption;
    }
    // timeouts - computed: false, optional: true, required: false
    _timeouts = new DemoServiceTimeoutsOutputReference(this, "timeouts");
    get timeouts() {
        return this._timeouts;
    }
    synthesizeHclAttributes() {
        const attrs = {
            enable_dns64: {
                value: cdktn.booleanToHclTerraform(this._enableDns64),
                isBlock: false,
                type: "simple",
                storageClassType: "boolean",
            },
            name: {
                value: cdktn.stringToHclTerraform(this._name),
                isBlock: false,
                type: "simple",
                storageClassType: "string",
            },
            tags: {
                value: cdktn.hashMapperHcl(cdktn.stringToHclTerraform)(this._tags),
                isBlock: false,
                type: "map",
                storageClassType: "stringMap",
            },
            deployment_circuit_breaker: {
                value: demoServiceDeploymentCircuitBreakerToHclTerraform(this._deploymentCircuitBreaker.internalValue),
                isBlock: true,
                type: "list",
                storageClassType: "DemoServiceDeploymentCircuitBreakerList",
            },
            load_balancer: {
                value: cdktn.listMapperHcl(demoServiceLoadBalancerToHclTerraform, true)(this._loadBalancer.internalValue),
                isBlock: true,
                type: "set",
                storageClassType: "DemoServiceLoadBalancerList",
            },
            ingress: {
                value: cdktn.listMapperHcl(demoServiceIngressToHclTerraform, false)(this._ingress.internalValue),
                isBlock: true,
                type: "set",
                storageClassType: "DemoServiceIngressList",
            },
            encryption: {
                value: demoServiceEncryptionToHclTerraform(this._encryption.internalValue),
                isBlock: true,
                type: "struct",
                storageClassType: "DemoServiceEncryption",
            },
            timeouts: {
                value: demoServiceTimeoutsToHclTerraform(this._timeouts.internalValue),
                isBlock: true,
                type: "struct",
                storageClassType: "DemoServiceTimeouts",
            },
        };
        return attrs;
    }
}
exports.DemoService = DemoService;
'''

PROVIDER_FIXTURE = r'''
class AwsProvider extends cdktn.TerraformProvider {
    // alias - computed: false, optional: true, required: false
    _alias;
    get alias() {
        return this._alias;
    }
    // region - computed: false, optional: true, required: false
    _region;
    get region() {
        return this._region;
    }
    synthesizeHclAttributes() {
        const attrs = {
            alias: {
                value: cdktn.stringToHclTerraform(this._alias),
                isBlock: false,
                type: "simple",
                storageClassType: "string",
            },
            region: {
                value: cdktn.stringToHclTerraform(this._region),
                isBlock: false,
                type: "simple",
                storageClassType: "string",
            },
        };
        return attrs;
    }
}
'''


class FixtureExtraction(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        doc, cls.stats = S.extract({"demo-service": [FIXTURE], "provider": [PROVIDER_FIXTURE]})
        ps = doc["provider_schemas"][S.PROVIDER_ADDR]
        cls.block = ps["resource_schemas"]["aws_demo_service"]["block"]
        cls.provider = ps["provider"]["block"]

    def test_primitive_attributes_keep_terraform_names_flags_and_types(self):
        a = self.block["attributes"]
        self.assertEqual(a["name"], {"type": "string", "required": True})
        self.assertEqual(a["enable_dns64"], {"type": "bool", "optional": True})  # not enable_dns_64
        self.assertEqual(a["arn"], {"type": "string", "computed": True})
        self.assertEqual(a["tags"], {"type": ["map", "string"], "optional": True})
        # A computed set comes back through Fn.tolist(getListAttribute(...)).
        self.assertEqual(a["subnet_ids"], {"type": ["set", "string"], "computed": True})

    def test_max_one_block(self):
        b = self.block["block_types"]["deployment_circuit_breaker"]
        self.assertEqual(b["nesting_mode"], "list")
        self.assertEqual(b["max_items"], 1)
        self.assertNotIn("min_items", b)
        self.assertEqual(
            b["block"]["attributes"],
            {"enable": {"type": "bool", "required": True}, "rollback": {"type": "bool", "required": True}},
        )

    def test_required_set_block(self):
        b = self.block["block_types"]["load_balancer"]
        self.assertEqual((b["nesting_mode"], b.get("min_items"), b.get("max_items")), ("set", 1, None))
        self.assertEqual(b["block"]["attributes"]["container_port"], {"type": "number", "required": True})

    def test_set_of_objects_attribute_is_not_a_block(self):
        self.assertNotIn("ingress", self.block["block_types"])
        self.assertEqual(
            self.block["attributes"]["ingress"],
            {
                "type": ["set", ["object", {"cidr_blocks": ["list", "string"], "from_port": "number"}]],
                "optional": True,
                "computed": True,
            },
        )

    def test_computed_single_object_is_an_attribute(self):
        self.assertEqual(
            self.block["attributes"]["encryption"],
            {"type": ["object", {"kms_key_arn": "string"}], "optional": True, "computed": True},
        )

    def test_computed_list_of_objects(self):
        self.assertEqual(
            self.block["attributes"]["size"], {"type": ["list", ["object", {"value": "number"}]], "computed": True}
        )
        # The list class's third argument says whether it wraps a set.
        self.assertEqual(
            self.block["attributes"]["size_history"],
            {"type": ["set", ["object", {"value": "number"}]], "computed": True},
        )

    def test_timeouts_is_a_single_block(self):
        b = self.block["block_types"]["timeouts"]
        self.assertEqual(b["nesting_mode"], "single")
        self.assertEqual(b["block"]["attributes"]["create"], {"type": "string", "optional": True})

    def test_provider_drops_the_alias_meta_argument(self):
        self.assertEqual(self.provider["attributes"], {"region": {"type": "string", "optional": True}})

    def test_collection_types(self):
        self.assertEqual(S._collection_type("simple", "number"), "number")
        self.assertEqual(S._collection_type("set", "stringList"), ["set", "string"])
        self.assertEqual(S._collection_type("map", "stringListMap"), ["map", ["list", "string"]])
        self.assertEqual(S._collection_type("list", "stringMapList"), ["list", ["map", "string"]])
        with self.assertRaises(ValueError):
            S._collection_type("list", "string")


def _check_block(test, block, path, in_set=False):
    """Rules Terraform applies when it loads a provider schema (configschema InternalValidate)."""
    for name, a in block.get("attributes", {}).items():
        where = f"{path}.{name}"
        test.assertRegex(name, r"^[a-z0-9_]+$", where)
        flags = (bool(a.get("required")), bool(a.get("optional")), bool(a.get("computed")))
        test.assertIn(flags, [(True, False, False), (False, True, False), (False, True, True), (False, False, True)], where)
        test.assertEqual(("type" in a) + ("nested_type" in a), 1, where)
        if in_set:
            test.assertNotIn("dynamic", json.dumps(a.get("type")), where)
    for name, bt in block.get("block_types", {}).items():
        where = f"{path}.{name}"
        test.assertRegex(name, r"^[a-z0-9_]+$", where)
        test.assertNotIn(name, block.get("attributes", {}), where)
        test.assertIn(bt["nesting_mode"], ("single", "list", "set", "map"), where)
        _check_block(test, bt["block"], where, in_set or bt["nesting_mode"] == "set")


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
        self.assertEqual(b["block_types"]["load_balancer"]["nesting_mode"], "set")
        self.assertEqual(b["block_types"]["timeouts"]["nesting_mode"], "single")

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
