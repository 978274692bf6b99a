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

Notation: `block(**members)` and `one(**members)` (a block of at most one) take attributes and
nested blocks alike as keyword arguments, told apart by their shape (a block has a nesting_mode).
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


STRINGS, NUMBERS = ["list", "string"], ["list", "number"]
STRING_SET, NUMBER_SET = ["set", "string"], ["set", "number"]


def _block(*, nesting="list", required=False, max_items: int | None = None, **members) -> dict:
    body = {}
    attributes = {n: m for n, m in sorted(members.items()) if "nesting_mode" not in m}
    blocks = {n: m for n, m in sorted(members.items()) if "nesting_mode" in m}
    if attributes:
        body["attributes"] = attributes
    if blocks:
        body["block_types"] = blocks
    b = {"nesting_mode": nesting, "block": body}
    # helper/schema: Required means at least one; Optional drops any MinItems.
    if required:
        b["min_items"] = 1
    if max_items:
        b["max_items"] = max_items
    return b


def _one(*, required=False, **members) -> dict:
    return _block(required=required, max_items=1, **members)


def _set(*, required=False, **members) -> dict:
    return _block(nesting="set", required=required, **members)


# ---------------------------------------------------------------------------------------------
# Shared pieces


def _text_transformation() -> dict:
    return _set(required=True, priority=_req("number"), type=_req("string"))


def _forwarded_ip_config() -> dict:
    return _one(fallback_behavior=_req("string"), header_name=_req("string"))


def _fallback_only() -> dict:
    return _one(fallback_behavior=_req("string"))


def _field_to_match() -> dict:
    name_only = _one(name=_req("string"))
    return _one(
        all_query_arguments=_one(),
        body=_one(oversize_handling=_opt("string")),
        cookies=_one(
            match_scope=_req("string"),
            oversize_handling=_req("string"),
            match_pattern=_block(
                required=True, all=_one(), excluded_cookies=_opt(STRINGS), included_cookies=_opt(STRINGS)
            ),
        ),
        header_order=_block(oversize_handling=_req("string")),
        headers=_block(
            match_scope=_req("string"),
            oversize_handling=_req("string"),
            match_pattern=_one(
                required=True, all=_one(), excluded_headers=_opt(STRINGS), included_headers=_opt(STRINGS)
            ),
        ),
        ja3_fingerprint=_fallback_only(),
        ja4_fingerprint=_fallback_only(),
        json_body=_one(
            invalid_fallback_behavior=_opt("string"),
            match_scope=_req("string"),
            oversize_handling=_opt("string"),
            match_pattern=_one(required=True, all=_one(), included_paths=_opt(STRINGS)),
        ),
        method=_one(),
        query_string=_one(),
        single_header=name_only,
        single_query_argument=name_only,
        uri_fragment=_one(fallback_behavior=_attr("string", computed=True)),
        uri_path=_one(),
    )


def _inspects(**attributes) -> dict:
    """A statement that inspects one part of the request through text transformations."""
    return _one(field_to_match=_field_to_match(), text_transformation=_text_transformation(), **attributes)


def _action_to_use() -> dict:
    def handling():
        header = _set(required=True, name=_req("string"), value=_req("string"))
        return _one(custom_request_handling=_one(insert_header=header))

    response_header = _set(name=_req("string"), value=_req("string"))
    custom_response = _one(
        custom_response_body_key=_opt("string"), response_code=_req("number"), response_header=response_header
    )
    return _one(
        required=True,
        allow=handling(),
        block=_one(custom_response=custom_response),
        captcha=handling(),
        challenge=handling(),
        count=handling(),
    )


def _rule_action_override() -> dict:
    return _block(max_items=100, name=_req("string"), action_to_use=_action_to_use())


# ---------------------------------------------------------------------------------------------
# Leaf statements (allowed at every level)


def _leaves() -> dict:
    return {
        "asn_match_statement": _one(asn_list=_req(NUMBERS), forwarded_ip_config=_forwarded_ip_config()),
        "byte_match_statement": _inspects(positional_constraint=_req("string"), search_string=_req("string")),
        "geo_match_statement": _one(country_codes=_req(STRINGS), forwarded_ip_config=_forwarded_ip_config()),
        "ip_set_reference_statement": _one(
            arn=_req("string"),
            ip_set_forwarded_ip_config=_one(
                fallback_behavior=_req("string"), header_name=_req("string"), position=_req("string")
            ),
        ),
        "label_match_statement": _one(key=_req("string"), scope=_req("string")),
        "regex_match_statement": _inspects(regex_string=_req("string")),
        "regex_pattern_set_reference_statement": _inspects(arn=_req("string")),
        "size_constraint_statement": _inspects(comparison_operator=_req("string"), size=_req("number")),
        "sqli_match_statement": _inspects(sensitivity_level=_opt("string")),
        "xss_match_statement": _inspects(),
    }


def _and_or_not(level: int) -> dict:
    """and_statement, not_statement and or_statement at `level`: each a list of statements one
    level further down (at level 1 they can only be leaves)."""
    inner = _leaves()
    if level > 1:
        inner.update(_and_or_not(level - 1))
    logical = _one(statement=_block(required=True, **inner))
    return {"and_statement": logical, "not_statement": logical, "or_statement": logical}


def _scope_down(level: int) -> dict:
    return _one(**_leaves(), **_and_or_not(level))


def _rate_based(level: int) -> dict:
    named = _one(name=_req("string"), text_transformation=_text_transformation())
    transformed = _one(text_transformation=_text_transformation())
    custom_key = _block(
        max_items=5,
        asn=_one(),
        cookie=named,
        forwarded_ip=_one(),
        header=named,
        http_method=_one(),
        ip=_one(),
        ja3_fingerprint=_fallback_only(),
        ja4_fingerprint=_fallback_only(),
        label_namespace=_one(namespace=_req("string")),
        query_argument=named,
        query_string=transformed,
        uri_path=transformed,
    )
    return _one(
        aggregate_key_type=_opt("string"),
        evaluation_window_sec=_opt("number"),
        limit=_req("number"),
        custom_key=custom_key,
        forwarded_ip_config=_forwarded_ip_config(),
        scope_down_statement=_scope_down(level - 1),
    )


def _managed_rule_group_configs() -> dict:
    def identifier(required=False):
        return _one(required=required, identifier=_req("string"))

    identifiers = _one(identifiers=_req(STRINGS))
    response_inspection = _one(
        body_contains=_one(failure_strings=_req(STRING_SET), success_strings=_req(STRING_SET)),
        header=_one(failure_values=_req(STRING_SET), name=_req("string"), success_values=_req(STRING_SET)),
        json=_one(failure_values=_req(STRING_SET), identifier=_req("string"), success_values=_req(STRING_SET)),
        status_code=_one(failure_codes=_req(NUMBER_SET), success_codes=_req(NUMBER_SET)),
    )
    acfp = _one(
        creation_path=_req("string"),
        enable_regex_in_path=_attr("bool", computed=True),
        registration_page_path=_req("string"),
        request_inspection=_one(
            required=True,
            payload_type=_req("string"),
            address_fields=identifiers,
            email_field=identifier(),
            password_field=identifier(),
            phone_number_fields=identifiers,
            username_field=identifier(),
        ),
        response_inspection=response_inspection,
    )
    challenge = _one(
        required=True,
        sensitivity=_opt("string"),
        usage_of_action=_req("string"),
        exempt_uri_regular_expression=_block(max_items=5, regex_string=_opt("string")),
    )
    anti_ddos = _one(
        sensitivity_to_block=_opt("string"),
        client_side_action_config=_one(required=True, challenge=challenge),
    )
    atp = _one(
        enable_regex_in_path=_attr("bool", computed=True),
        login_path=_req("string"),
        request_inspection=_one(
            payload_type=_req("string"),
            password_field=identifier(required=True),
            username_field=identifier(required=True),
        ),
        response_inspection=response_inspection,
    )
    bot_control = _one(enable_machine_learning=_attr("bool", computed=True), inspection_level=_req("string"))
    return _block(
        login_path=_opt("string"),
        payload_type=_opt("string"),
        aws_managed_rules_acfp_rule_set=acfp,
        aws_managed_rules_anti_ddos_rule_set=anti_ddos,
        aws_managed_rules_atp_rule_set=atp,
        aws_managed_rules_bot_control_rule_set=bot_control,
        password_field=identifier(),
        username_field=identifier(),
    )


def _managed_rule_group(level: int) -> dict:
    return _one(
        name=_req("string"),
        vendor_name=_req("string"),
        version=_attr("string", computed=True),
        managed_rule_group_configs=_managed_rule_group_configs(),
        rule_action_override=_rule_action_override(),
        scope_down_statement=_scope_down(level - 1),
    )


# ---------------------------------------------------------------------------------------------
# The roots

LEVEL = 3  # consts.go: webACLRootStatementSchemaLevel and ruleGroupRootStatementSchemaLevel


def _rule_group_kinds(level: int) -> dict:
    return {**_leaves(), **_and_or_not(level), "rate_based_statement": _rate_based(level)}


def rule_group_statement(level: int = LEVEL) -> dict:
    """`aws_wafv2_rule_group.rule.statement`."""
    return _one(required=True, **_rule_group_kinds(level))


def web_acl_statement(level: int = LEVEL) -> dict:
    """`aws_wafv2_web_acl.rule.statement`: a rule group's, plus managed rule groups and
    references to rule groups."""
    return _one(
        required=True,
        **_rule_group_kinds(level),
        managed_rule_group_statement=_managed_rule_group(level),
        rule_group_reference_statement=_one(arn=_req("string"), rule_action_override=_rule_action_override()),
    )


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
