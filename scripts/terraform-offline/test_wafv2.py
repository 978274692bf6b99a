"""Tests of wafv2.py: the WAFv2 rule statement tree that the CDK bindings do not carry.

  target/tf-offline-venv/bin/python -m unittest discover -s scripts/terraform-offline -p 'test_*.py'

With TF_OFFLINE_SCHEMA naming the extracted schema (run.sh sets it), the graft is checked in it
too. Whether Terraform accepts the shape is shown by run.sh itself: `terraform validate` of
terraform/modules/load-balancer, whose web ACL uses a rate-based statement with a scope-down
byte match and managed rule groups with rule action overrides.
"""

import json
import os
import unittest

import wafv2 as W

LEAVES = {
    "asn_match_statement", "byte_match_statement", "geo_match_statement", "ip_set_reference_statement",
    "label_match_statement", "regex_match_statement", "regex_pattern_set_reference_statement",
    "size_constraint_statement", "sqli_match_statement", "xss_match_statement",
}
LOGICAL = {"and_statement", "not_statement", "or_statement"}


def kinds(block_type):
    return set(block_type["block"].get("block_types", {}))


class StatementTree(unittest.TestCase):
    def setUp(self):
        self.acl = W.web_acl_statement()
        self.group = W.rule_group_statement()

    def test_a_rule_has_exactly_one_statement(self):
        self.assertEqual((self.acl["nesting_mode"], self.acl.get("min_items"), self.acl.get("max_items")), ("list", 1, 1))

    def test_root_kinds(self):
        self.assertEqual(kinds(self.group), LEAVES | LOGICAL | {"rate_based_statement"})
        self.assertEqual(
            kinds(self.acl),
            LEAVES | LOGICAL | {"rate_based_statement", "managed_rule_group_statement", "rule_group_reference_statement"},
        )

    def test_logical_statements_nest_three_levels_then_only_leaves(self):
        st = self.acl
        for depth in range(3):
            inner = st["block"]["block_types"]["and_statement"]["block"]["block_types"]["statement"]
            self.assertEqual(inner.get("min_items"), 1, "and/or/not need at least one statement")
            self.assertNotIn("max_items", inner)
            st = inner
        self.assertEqual(kinds(st), LEAVES)

    def test_rate_based_statement(self):
        rb = self.acl["block"]["block_types"]["rate_based_statement"]
        self.assertEqual(rb.get("max_items"), 1)
        attrs = rb["block"]["attributes"]
        self.assertEqual(attrs["limit"], {"type": "number", "required": True})
        self.assertEqual(attrs["aggregate_key_type"], {"type": "string", "optional": True})
        self.assertEqual(attrs["evaluation_window_sec"], {"type": "number", "optional": True})
        sd = rb["block"]["block_types"]["scope_down_statement"]
        self.assertEqual(kinds(sd), LEAVES | LOGICAL)
        self.assertNotIn("min_items", sd)
        # One level lower: two levels of and/or/not under a scope-down statement, then leaves.
        inner = sd["block"]["block_types"]["or_statement"]["block"]["block_types"]["statement"]
        inner = inner["block"]["block_types"]["or_statement"]["block"]["block_types"]["statement"]
        self.assertEqual(kinds(inner), LEAVES)
        self.assertEqual(rb["block"]["block_types"]["custom_key"].get("max_items"), 5)

    def test_byte_match_on_the_method(self):
        bm = self.acl["block"]["block_types"]["byte_match_statement"]["block"]
        self.assertEqual(bm["attributes"]["search_string"], {"type": "string", "required": True})
        self.assertEqual(bm["attributes"]["positional_constraint"], {"type": "string", "required": True})
        ftm = bm["block_types"]["field_to_match"]
        self.assertNotIn("min_items", ftm)
        self.assertEqual(ftm["block"]["block_types"]["method"], {"nesting_mode": "list", "block": {}, "max_items": 1})
        tt = bm["block_types"]["text_transformation"]
        self.assertEqual((tt["nesting_mode"], tt.get("min_items")), ("set", 1))

    def test_managed_rule_group_statement(self):
        mg = self.acl["block"]["block_types"]["managed_rule_group_statement"]["block"]
        self.assertEqual(mg["attributes"]["name"], {"type": "string", "required": True})
        self.assertEqual(mg["attributes"]["version"], {"type": "string", "optional": True, "computed": True})
        rao = mg["block_types"]["rule_action_override"]
        self.assertEqual((rao["nesting_mode"], rao.get("max_items")), ("list", 100))
        atu = rao["block"]["block_types"]["action_to_use"]
        self.assertEqual((atu.get("min_items"), atu.get("max_items")), (1, 1))
        self.assertEqual(kinds(atu), {"allow", "block", "captcha", "challenge", "count"})

    def test_graft_replaces_what_the_bindings_left_out(self):
        resources = {t: {"block": {"block_types": {"rule": {"nesting_mode": "set", "block": {}}}}} for t in W.GRAFTS}
        unresolved = ["aws_wafv2_web_acl.rule.statement", "aws_wafv2_rule_group.rule.statement", "other.x"]
        W.graft(resources, unresolved)
        self.assertEqual(unresolved, ["other.x"])
        self.assertIn("managed_rule_group_statement", kinds(resources["aws_wafv2_web_acl"]["block"]["block_types"]["rule"]["block"]["block_types"]["statement"]))
        with self.assertRaises(ValueError):  # a bindings release that carries it: no silent override
            W.graft(resources, [])


@unittest.skipUnless(os.environ.get("TF_OFFLINE_SCHEMA"), "TF_OFFLINE_SCHEMA not set (run.sh sets it)")
class InTheExtractedSchema(unittest.TestCase):
    def test_web_acl_and_rule_group_rules_have_their_statement(self):
        with open(os.environ["TF_OFFLINE_SCHEMA"]) as f:
            resources = json.load(f)["provider_schemas"]["registry.terraform.io/hashicorp/aws"]["resource_schemas"]
        for tf_type, build in W.GRAFTS.items():
            rule = resources[tf_type]["block"]["block_types"]["rule"]["block"]
            self.assertEqual(rule["block_types"]["statement"], build(), tf_type)


if __name__ == "__main__":
    unittest.main()
