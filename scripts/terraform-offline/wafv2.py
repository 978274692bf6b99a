"""The `statement` block of WAFv2 rules, which the CDK bindings do not carry.

The bindings' generator replaces the statement tree of `aws_wafv2_web_acl.rule` and
`aws_wafv2_rule_group.rule` (recursive and/or/not statements, three levels deep, with a dozen
kinds of leaf) with one value of type `any`, so schema.py cannot read it back and leaves it
out, and `terraform validate` would refuse every `statement { ... }` block. This module writes
the tree out as Terraform's block schema, transcribed by hand from the hashicorp/aws source
(internal/service/wafv2/schemas.go and consts.go, plugin SDK v2 schemas) and converted the way
the SDK converts them (helper/schema core_schema.go):

* a list or set of resources is a block; a required one gets min_items 1, an optional one
  min_items 0 whatever MinItems says, and MaxItems is kept;
* a list or set of primitives is an attribute of type list(...)/set(...); TypeInt is number;
* Optional with a Default is plain optional; Optional + Computed stays both.

Only names, types, nesting and required/optional are here: the provider's value checks (enums,
lengths, ranges) run only in the real provider, as everywhere in the stand-in.

Levels (consts.go: 3 for both): a rule's statement may nest and/or/not statements; at the last
level only leaves remain. A rate-based or managed-rule-group statement's scope-down statement
is one level lower than the statement it sits in.
"""

from __future__ import annotations

# ---------------------------------------------------------------------------------------------
# Builders


def _attr(ty, *, required=False, computed=False) -> dict:
    a = {"type": ty}
    if required:
        a["required"] = True
    else:
        a["optional"] = True
        if computed:
            a["computed"] = True
    return a


def _req(ty):
    return _attr(ty, required=True)


def _opt(ty):
    return _attr(ty)


def _body(attributes: dict | None = None, blocks: dict | None = None) -> dict:
    out = {}
    if attributes:
        out["attributes"] = dict(sorted(attributes.items()))
    if blocks:
        out["block_types"] = dict(sorted(blocks.items()))
    return out


def _block(body: dict, *, required=False, max_items: int | None = None, nesting="list", min_items=0) -> dict:
    b = {"nesting_mode": nesting, "block": body}
    # helper/schema: Required means at least one; Optional drops any MinItems.
    lo = max(min_items, 1) if required else 0
    if lo:
        b["min_items"] = lo
    if max_items:
        b["max_items"] = max_items
    return b


def _one(body: dict, *, required=False) -> dict:
    return _block(body, required=required, max_items=1)


def _empty() -> dict:
    return _one({})


# ---------------------------------------------------------------------------------------------
# Shared pieces


def _text_transformation() -> dict:
    return _block(_body({"priority": _req("number"), "type": _req("string")}), required=True, nesting="set")


def _forwarded_ip_config() -> dict:
    return _one(_body({"fallback_behavior": _req("string"), "header_name": _req("string")}))


def _fallback_only() -> dict:
    return _one(_body({"fallback_behavior": _req("string")}))


def _field_to_match() -> dict:
    name_only = _one(_body({"name": _req("string")}))
    return _one(
        _body(
            blocks={
                "all_query_arguments": _empty(),
                "body": _one(_body({"oversize_handling": _opt("string")})),
                "cookies": _one(
                    _body(
                        {"match_scope": _req("string"), "oversize_handling": _req("string")},
                        {
                            "match_pattern": _block(
                                _body(
                                    {
                                        "excluded_cookies": _opt(["list", "string"]),
                                        "included_cookies": _opt(["list", "string"]),
                                    },
                                    {"all": _empty()},
                                ),
                                required=True,
                            )
                        },
                    )
                ),
                "header_order": _block(_body({"oversize_handling": _req("string")})),
                "headers": _block(
                    _body(
                        {"match_scope": _req("string"), "oversize_handling": _req("string")},
                        {
                            "match_pattern": _one(
                                _body(
                                    {
                                        "excluded_headers": _opt(["list", "string"]),
                                        "included_headers": _opt(["list", "string"]),
                                    },
                                    {"all": _empty()},
                                ),
                                required=True,
                            )
                        },
                    )
                ),
                "ja3_fingerprint": _fallback_only(),
                "ja4_fingerprint": _fallback_only(),
                "json_body": _one(
                    _body(
                        {
                            "invalid_fallback_behavior": _opt("string"),
                            "match_scope": _req("string"),
                            "oversize_handling": _opt("string"),
                        },
                        {
                            "match_pattern": _one(
                                _body({"included_paths": _opt(["list", "string"])}, {"all": _empty()}),
                                required=True,
                            )
                        },
                    )
                ),
                "method": _empty(),
                "query_string": _empty(),
                "single_header": name_only,
                "single_query_argument": name_only,
                "uri_fragment": _one(_body({"fallback_behavior": _attr("string", computed=True)})),
                "uri_path": _empty(),
            }
        )
    )


def _inspects(extra_attrs: dict | None = None) -> dict:
    """A statement that inspects one part of the request through text transformations."""
    return _one(
        _body(extra_attrs, {"field_to_match": _field_to_match(), "text_transformation": _text_transformation()})
    )


def _custom_request_handling() -> dict:
    header = _block(_body({"name": _req("string"), "value": _req("string")}), required=True, nesting="set")
    return _one(_body(blocks={"insert_header": header}))


def _custom_response() -> dict:
    return _one(
        _body(
            {"custom_response_body_key": _opt("string"), "response_code": _req("number")},
            {"response_header": _block(_body({"name": _req("string"), "value": _req("string")}), nesting="set")},
        )
    )


def _action_to_use() -> dict:
    handling = lambda: _one(_body(blocks={"custom_request_handling": _custom_request_handling()}))  # noqa: E731
    return _one(
        _body(
            blocks={
                "allow": handling(),
                "block": _one(_body(blocks={"custom_response": _custom_response()})),
                "captcha": handling(),
                "challenge": handling(),
                "count": handling(),
            }
        ),
        required=True,
    )


def _rule_action_override() -> dict:
    return _block(_body({"name": _req("string")}, {"action_to_use": _action_to_use()}), max_items=100)


# ---------------------------------------------------------------------------------------------
# Leaf statements (allowed at every level)


def _leaves() -> dict:
    return {
        "asn_match_statement": _one(
            _body({"asn_list": _req(["list", "number"])}, {"forwarded_ip_config": _forwarded_ip_config()})
        ),
        "byte_match_statement": _inspects({"positional_constraint": _req("string"), "search_string": _req("string")}),
        "geo_match_statement": _one(
            _body({"country_codes": _req(["list", "string"])}, {"forwarded_ip_config": _forwarded_ip_config()})
        ),
        "ip_set_reference_statement": _one(
            _body(
                {"arn": _req("string")},
                {
                    "ip_set_forwarded_ip_config": _one(
                        _body(
                            {
                                "fallback_behavior": _req("string"),
                                "header_name": _req("string"),
                                "position": _req("string"),
                            }
                        )
                    )
                },
            )
        ),
        "label_match_statement": _one(_body({"key": _req("string"), "scope": _req("string")})),
        "regex_match_statement": _inspects({"regex_string": _req("string")}),
        "regex_pattern_set_reference_statement": _inspects({"arn": _req("string")}),
        "size_constraint_statement": _inspects({"comparison_operator": _req("string"), "size": _req("number")}),
        "sqli_match_statement": _inspects({"sensitivity_level": _opt("string")}),
        "xss_match_statement": _inspects(),
    }


def _logical(level: int) -> dict:
    """An and/or/not statement at `level`: a list of statements one level further down (at
    level 1 they can only be leaves)."""
    inner = _leaves()
    if level > 1:
        nested = _logical(level - 1)
        inner.update({"and_statement": nested, "not_statement": nested, "or_statement": nested})
    return _one(_body(blocks={"statement": _block(_body(blocks=inner), required=True)}))


def _scope_down(level: int) -> dict:
    blocks = _leaves()
    nested = _logical(level)
    blocks.update({"and_statement": nested, "not_statement": nested, "or_statement": nested})
    return _one(_body(blocks=blocks))


def _rate_based(level: int) -> dict:
    tt = {"text_transformation": _text_transformation()}
    named = _one(_body({"name": _req("string")}, tt))
    custom_key = _block(
        _body(
            blocks={
                "asn": _empty(),
                "cookie": named,
                "forwarded_ip": _empty(),
                "header": named,
                "http_method": _empty(),
                "ip": _empty(),
                "ja3_fingerprint": _fallback_only(),
                "ja4_fingerprint": _fallback_only(),
                "label_namespace": _one(_body({"namespace": _req("string")})),
                "query_argument": named,
                "query_string": _one(_body(blocks=tt)),
                "uri_path": _one(_body(blocks=tt)),
            }
        ),
        max_items=5,
    )
    return _one(
        _body(
            {
                "aggregate_key_type": _opt("string"),
                "evaluation_window_sec": _opt("number"),
                "limit": _req("number"),
            },
            {
                "custom_key": custom_key,
                "forwarded_ip_config": _forwarded_ip_config(),
                "scope_down_statement": _scope_down(level - 1),
            },
        )
    )


def _managed_rule_group_configs() -> dict:
    identifier = lambda required=False: _one(_body({"identifier": _req("string")}), required=required)  # noqa: E731
    identifiers = _one(_body({"identifiers": _req(["list", "string"])}))
    response_inspection = _one(
        _body(
            blocks={
                "body_contains": _one(
                    _body({"failure_strings": _req(["set", "string"]), "success_strings": _req(["set", "string"])})
                ),
                "header": _one(
                    _body(
                        {
                            "failure_values": _req(["set", "string"]),
                            "name": _req("string"),
                            "success_values": _req(["set", "string"]),
                        }
                    )
                ),
                "json": _one(
                    _body(
                        {
                            "failure_values": _req(["set", "string"]),
                            "identifier": _req("string"),
                            "success_values": _req(["set", "string"]),
                        }
                    )
                ),
                "status_code": _one(
                    _body({"failure_codes": _req(["set", "number"]), "success_codes": _req(["set", "number"])})
                ),
            }
        )
    )
    return _block(
        _body(
            {"login_path": _opt("string"), "payload_type": _opt("string")},
            {
                "aws_managed_rules_acfp_rule_set": _one(
                    _body(
                        {
                            "creation_path": _req("string"),
                            "enable_regex_in_path": _attr("bool", computed=True),
                            "registration_page_path": _req("string"),
                        },
                        {
                            "request_inspection": _one(
                                _body(
                                    {"payload_type": _req("string")},
                                    {
                                        "address_fields": identifiers,
                                        "email_field": identifier(),
                                        "password_field": identifier(),
                                        "phone_number_fields": identifiers,
                                        "username_field": identifier(),
                                    },
                                ),
                                required=True,
                            ),
                            "response_inspection": response_inspection,
                        },
                    )
                ),
                "aws_managed_rules_anti_ddos_rule_set": _one(
                    _body(
                        {"sensitivity_to_block": _opt("string")},
                        {
                            "client_side_action_config": _one(
                                _body(
                                    blocks={
                                        "challenge": _one(
                                            _body(
                                                {"sensitivity": _opt("string"), "usage_of_action": _req("string")},
                                                {
                                                    "exempt_uri_regular_expression": _block(
                                                        _body({"regex_string": _opt("string")}), max_items=5
                                                    )
                                                },
                                            ),
                                            required=True,
                                        )
                                    }
                                ),
                                required=True,
                            )
                        },
                    )
                ),
                "aws_managed_rules_atp_rule_set": _one(
                    _body(
                        {"enable_regex_in_path": _attr("bool", computed=True), "login_path": _req("string")},
                        {
                            "request_inspection": _one(
                                _body(
                                    {"payload_type": _req("string")},
                                    {
                                        "password_field": identifier(required=True),
                                        "username_field": identifier(required=True),
                                    },
                                )
                            ),
                            "response_inspection": response_inspection,
                        },
                    )
                ),
                "aws_managed_rules_bot_control_rule_set": _one(
                    _body({"enable_machine_learning": _attr("bool", computed=True), "inspection_level": _req("string")})
                ),
                "password_field": identifier(),
                "username_field": identifier(),
            },
        )
    )


def _managed_rule_group(level: int) -> dict:
    return _one(
        _body(
            {
                "name": _req("string"),
                "vendor_name": _req("string"),
                "version": _attr("string", computed=True),
            },
            {
                "managed_rule_group_configs": _managed_rule_group_configs(),
                "rule_action_override": _rule_action_override(),
                "scope_down_statement": _scope_down(level - 1),
            },
        )
    )


# ---------------------------------------------------------------------------------------------
# The roots

LEVEL = 3  # consts.go: webACLRootStatementSchemaLevel and ruleGroupRootStatementSchemaLevel


def rule_group_statement(level: int = LEVEL) -> dict:
    """`aws_wafv2_rule_group.rule.statement`."""
    blocks = _leaves()
    nested = _logical(level)
    blocks.update(
        {
            "and_statement": nested,
            "not_statement": nested,
            "or_statement": nested,
            "rate_based_statement": _rate_based(level),
        }
    )
    return _one(_body(blocks=blocks), required=True)


def web_acl_statement(level: int = LEVEL) -> dict:
    """`aws_wafv2_web_acl.rule.statement`: a rule group's, plus managed rule groups and
    references to rule groups."""
    st = rule_group_statement(level)
    st["block"]["block_types"].update(
        {
            "managed_rule_group_statement": _managed_rule_group(level),
            "rule_group_reference_statement": _one(
                _body({"arn": _req("string")}, {"rule_action_override": _rule_action_override()})
            ),
        }
    )
    st["block"]["block_types"] = dict(sorted(st["block"]["block_types"].items()))
    return st


# Where the bindings lost the tree: resource type -> the builder of its rule's statement.
GRAFTS = {
    "aws_wafv2_web_acl": web_acl_statement,
    "aws_wafv2_rule_group": rule_group_statement,
}


def graft(resources: dict, unresolved: list[str]) -> list[str]:
    """Put the statement block back into each rule of GRAFTS' resources (in place); returns the
    paths grafted and removes them from `unresolved`."""
    done = []
    for tf_type, build in GRAFTS.items():
        if tf_type not in resources:
            continue
        rule = resources[tf_type]["block"]["block_types"]["rule"]["block"]
        if "statement" in rule.get("block_types", {}):
            raise ValueError(f"{tf_type}.rule.statement is in the bindings now: drop its graft")
        rule.setdefault("block_types", {})["statement"] = build()
        rule["block_types"] = dict(sorted(rule["block_types"].items()))
        path = f"{tf_type}.rule.statement"
        done.append(path)
        unresolved[:] = [u for u in unresolved if u != path]
    return done
