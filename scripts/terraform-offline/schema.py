"""Rebuild the hashicorp/aws provider schema from the prebuilt CDK bindings on PyPI.

Terraform's `init`/`validate`/`test` need the AWS provider's schema, and the provider binary
cannot be downloaded here. PyPI's `cdktn-provider-aws` holds bindings that its maintainers
generated from `terraform providers schema -json` of one hashicorp/aws release (6.66.0 for
25.7.0). The wheel bundles the jsii tarball; its compiled JavaScript (`package/lib/*/index.js`)
keeps what validation needs, in a regular, machine-written shape (releases from 25.0.0 on;
earlier ones, up to 24.6.0 at least, were compiled to older JavaScript that drops the comments
of settable attributes, and import the runtime as `cdktf`: this reader does not take them):

* each class (resource, data source, provider, nested block) has one comment per attribute,
  `// <terraform_name> - computed: X, optional: Y, required: Z`, followed by its getter
  (`getStringAttribute(...)`, `new FooList(this, "x", true)`, ...), which gives the type of
  attributes that cannot be set;
* each settable attribute has an entry in `synthesizeHclAttributes()` or in the nested
  struct's `fooToHclTerraform()`, with its Terraform name, `type` (simple/list/set/map/struct)
  and `storageClassType` (string, numberList, stringMap, ... or the struct's class).

Terraform names are taken from those strings only, never from camelCase (dozens differ).

What the generator (cdktn's fork of terraform-cdk's provider-generator, resource-parser.ts)
loses, and how it is read back here:

* `isBlock` is true for every attribute of object type, not only for blocks. A real block is
  never computed; `listMapperHcl(f, true)` marks list/set blocks, `listMapperHcl(f, false)`
  lists/sets of objects that are attributes; a max-1 block is written `f(x)` with no mapper.
  A block's `required` comes from min_items > 0. A `struct` (nesting "single") or `map` that
  is computed is an attribute; one that is not is taken as a block (a settable, non-computed
  SingleNestedAttribute would be misread; hashicorp/aws has none in this stack).
* Attributes of plain object type give their members the parent's flags; nested attributes
  (protocol 6 `nested_type`) give their own. Members whose flags differ from the parent's
  mean `nested_type`; otherwise a cty object type is written.
* Lost entirely: schema versions, sensitive and deprecated flags, descriptions, the max_items
  of blocks other than 1, the inner kind of nested collections (`set(list(string))` comes
  back as `set(list(...))` or `list(list(...))` as the bindings say), provider-side value
  validation. None of these change what `terraform validate` accepts, except deprecations
  (warnings only) and validators (run by the real provider).
* Replaced by one `any` value, so left out here: a few huge block trees. One of them is put
  back, because this stack uses it: the `statement` of WAFv2 web ACL and rule group rules,
  written out by hand from the provider's source in wafv2.py.

Usage:
  python schema.py WHEEL OUT.json       # extract; prints a one-line summary
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
import tarfile
import zipfile
from dataclasses import dataclass, field

import wafv2

PROVIDER_ADDR = "registry.terraform.io/hashicorp/aws"

# ---------------------------------------------------------------------------------------------
# Parsing one binding directory (lib/<name>/index.js plus lib/<name>/index-structs/*.js)

_CLASS_RE = re.compile(r"^class (\w+) extends ([\w.]+) \{\n(.*?)\n^\}$", re.M | re.S)
_FUNC_RE = re.compile(r"^function (\w+)ToHclTerraform\(struct\) \{\n(.*?)\n^\}$", re.M | re.S)
_SYNTH_RE = re.compile(r"synthesizeHclAttributes\(\) \{\n(.*?)\n    \}(?:\n|$)", re.S)
_ENTRY_RE = re.compile(
    r"^\s+(\w+): \{\n\s+value: (.*),\n\s+isBlock: (true|false),\n\s+type: \"(\w+)\",\n"
    r"\s+storageClassType: \"(\w+)\",\n\s+\},",
    re.M,
)
_COMMENT_RE = re.compile(
    r"^\s+// (\w+) - computed: (true|false), optional: (true|false), required: (true|false)\n"
    r"((?:(?!\s+// \w+ - computed: ).*\n){0,8})",
    re.M,
)
_TYPE_RE = re.compile(r"static tfResourceType = \"(\w+)\";")
_STRUCT_FN_RE = re.compile(r"(?<![\w.])(?:\w+_\d+\.)?(\w+)ToHclTerraform")
_NEW_COMPLEX_RE = re.compile(
    r"new (?:\w+_\d+\.)?(\w+?)(List|Map|OutputReference)\(this, [\"'](\w+)[\"'](?:, (true|false))?\)"
)

_PRIMITIVES = {"string": "string", "number": "number", "boolean": "bool", "any": "dynamic"}


@dataclass
class Entry:
    """One settable attribute as `synthesizeHclAttributes()` writes it."""

    name: str
    value: str
    type: str  # simple | list | set | map | struct
    storage: str  # storageClassType


@dataclass
class Comment:
    name: str
    computed: bool
    optional: bool
    required: bool
    code: str  # the getter that follows the comment


@dataclass
class Binding:
    """All classes and struct functions of one binding directory."""

    classes: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (base, body)
    funcs: dict[str, list[Entry]] = field(default_factory=dict)  # StructName -> entries


def _entries(text: str) -> list[Entry]:
    return [Entry(m[1], m[2], m[4], m[5]) for m in _ENTRY_RE.finditer(text)]


def _comments(body: str) -> list[Comment]:
    out = []
    for m in _COMMENT_RE.finditer(body):
        out.append(Comment(m[1], m[2] == "true", m[3] == "true", m[4] == "true", m[5]))
    return out


def _upper_first(s: str) -> str:
    return s[:1].upper() + s[1:]


def parse_binding(sources: list[str]) -> Binding:
    b = Binding()
    for src in sources:
        src = src.split("\n//# sourceMappingURL=")[0]
        for m in _CLASS_RE.finditer(src):
            b.classes[m[1]] = (m[2], m[3])
        for m in _FUNC_RE.finditer(src):
            b.funcs[_upper_first(m[1])] = _entries(m[2])
    return b


# ---------------------------------------------------------------------------------------------
# Types


def _collection_type(kind: str, storage: str):
    """`type` + `storageClassType` of a primitive collection -> cty type JSON.

    storageClassType is the element base type followed by one suffix per level, innermost
    first (stringListMap = map(list(string))); `type` gives the outermost kind exactly."""
    m = re.fullmatch(r"(string|number|boolean|any)((?:List|Map)*)", storage)
    if not m:
        raise ValueError(f"unknown storageClassType {storage!r}")
    ty = _PRIMITIVES[m[1]]
    suffixes = re.findall(r"List|Map", m[2])
    if kind == "simple":
        if suffixes:
            raise ValueError(f"simple with {storage!r}")
        return ty
    if not suffixes:
        raise ValueError(f"{kind} with {storage!r}")
    for s in suffixes[:-1]:
        ty = ["list" if s == "List" else "map", ty]
    return [kind, ty]


def _getter_type(code: str):
    """Type of an attribute from its getter (used for attributes that cannot be set)."""
    checks = [
        ("Token.asNumberList(cdktn.Fn.tolist(this.getNumberListAttribute(", ["set", "number"]),
        ("cdktn.Fn.tolist(this.getListAttribute(", ["set", "string"]),
        ("this.getNumberListAttribute(", ["list", "number"]),
        ("this.getListAttribute(", ["list", "string"]),
        ("this.getStringMapAttribute(", ["map", "string"]),
        ("this.getNumberMapAttribute(", ["map", "number"]),
        ("this.getBooleanMapAttribute(", ["map", "bool"]),
        ("new cdktn.StringMap(", ["map", "string"]),
        ("new cdktn.NumberMap(", ["map", "number"]),
        ("new cdktn.BooleanMap(", ["map", "bool"]),
        ("new cdktn.AnyMap(", ["map", "dynamic"]),
        ("this.getStringAttribute(", "string"),
        ("this.getNumberAttribute(", "number"),
        ("this.getBooleanAttribute(", "bool"),
        ("this.interpolationForAttribute(", "dynamic"),
        ("this.getAnyMapAttribute(", ["map", "dynamic"]),
    ]
    for needle, ty in checks:
        if needle in code:
            return ty
    return None


# ---------------------------------------------------------------------------------------------
# Building schema blocks


class Extractor:
    def __init__(self, binding: Binding):
        self.b = binding
        self.unresolved: list[str] = []  # paths left out or typed dynamic: shape not readable

    # A struct's attributes: the comments of its OutputReference class (names, flags, getters)
    # merged with the entries of its ToHclTerraform function (types of settable attributes).
    def _members(self, class_name: str, entries: list[Entry]):
        body = self.b.classes.get(class_name, ("", ""))[1]
        comments = {c.name: c for c in _comments(body)}
        by_name = {e.name: e for e in entries}
        names = list(comments) + [n for n in by_name if n not in comments]
        for n in names:
            yield n, comments.get(n), by_name.get(n)

    def block(self, class_name: str, entries: list[Entry], path: str, stack=(), in_attribute=False):
        """A block's attributes and nested blocks. Inside an attribute of object type
        (in_attribute) every member is an attribute: blocks only nest in blocks."""
        attrs: dict = {}
        blocks: dict = {}
        for name, c, e in self._members(class_name, entries):
            where = f"{path}.{name}"
            computed, optional, required = (c.computed, c.optional, c.required) if c else (False, True, False)
            if e is not None and e.type == "simple" and e.storage == "any":
                # The generator replaces a few huge block trees (QuickSight `definition`, WAFv2
                # `statement`) with one `any` value; their shape is lost: leave them out.
                self.unresolved.append(where)
                continue
            if e is not None and not _is_complex(e):
                attrs[name] = _flags({"type": _collection_type(e.type, e.storage)}, computed, optional, required)
                continue
            if e is None:
                # Not settable: type from the getter, or a computed object.
                code = c.code if c else ""
                ty = _getter_type(code)
                if ty is not None:
                    attrs[name] = _flags({"type": ty}, computed, optional, required)
                    continue
                m = _NEW_COMPLEX_RE.search(code)
                if not m:
                    self.unresolved.append(where)
                    attrs[name] = _flags({"type": "dynamic"}, computed, optional, required)
                    continue
                struct, suffix, _, wraps_set = m.groups()
                kind = {"List": "set" if wraps_set == "true" else "list", "Map": "map"}.get(suffix, "struct")
                ty = self.object_type(struct, where, stack)
                attrs[name] = _flags({"type": _wrap(kind, ty)}, computed, optional, required)
                continue
            # A settable complex member: block, list/set/map of objects, or an object.
            fm = _STRUCT_FN_RE.search(e.value)
            if not fm:
                self.unresolved.append(where)
                attrs[name] = _flags({"type": "dynamic"}, computed, optional, required)
                continue
            struct = _upper_first(fm[1])
            if struct in stack:  # the generator folded a recursive shape: leave it out
                self.unresolved.append(where)
                continue
            kind = e.type
            mapper_block = "listMapperHcl(" in e.value and re.search(r"ToHclTerraform, true\)", e.value)
            mapper_attr = "listMapperHcl(" in e.value and re.search(r"ToHclTerraform, false\)", e.value)
            single_item = kind in ("list", "set") and "listMapperHcl(" not in e.value
            is_block = not computed and (
                (kind in ("list", "set") and (mapper_block or single_item))
                or (kind == "struct")
                or (kind == "map" and not optional and not required)
            )
            if mapper_attr or in_attribute:
                is_block = False
            sub_entries = self.b.funcs.get(struct, [])
            if is_block:
                inner = self.block(struct + "OutputReference", sub_entries, where, stack + (struct,))
                bt = {"nesting_mode": "single" if kind == "struct" else kind, "block": inner}
                if kind in ("list", "set"):
                    if required:
                        bt["min_items"] = 1
                    if single_item:
                        bt["max_items"] = 1
                blocks[name] = bt
            else:
                attrs[name] = self.object_attribute(
                    struct, sub_entries, kind, computed, optional, required, where, stack
                )
        out = {}
        if attrs:
            out["attributes"] = dict(sorted(attrs.items()))
        if blocks:
            out["block_types"] = dict(sorted(blocks.items()))
        return out

    def object_attribute(self, struct, entries, kind, computed, optional, required, where, stack):
        """An attribute whose value is an object (or a list/set/map of them)."""
        inner = self.block(struct + "OutputReference", entries, where, stack + (struct,), in_attribute=True)
        members = inner.get("attributes", {})
        parent = (optional, required)
        nested = any(
            (bool(a.get("optional")), bool(a.get("required"))) != parent
            or (not computed and a.get("computed"))
            for a in members.values()
        )
        if not nested:
            ty = ["object", {n: a["type"] for n, a in members.items()}]
            return _flags({"type": _wrap(kind, ty)}, computed, optional, required)
        for a in members.values():
            if a.get("required"):
                a.pop("computed", None)
        return _flags(
            {"nested_type": {"attributes": members, "nesting_mode": "single" if kind == "struct" else kind}},
            computed, optional, required,
        )

    def object_type(self, struct, where, stack):
        if struct in stack:
            self.unresolved.append(where)
            return "dynamic"
        inner = self.block(
            struct + "OutputReference", self.b.funcs.get(struct, []), where, stack + (struct,), in_attribute=True
        )
        members = {n: a.get("type", "dynamic") for n, a in inner.get("attributes", {}).items()}
        for n, a in inner.get("attributes", {}).items():
            if "nested_type" in a:
                members[n] = _nested_to_type(a["nested_type"])
        return ["object", members]

    def top(self, class_name: str, path: str):
        body = self.b.classes[class_name][1]
        m = _SYNTH_RE.search(body)
        entries = _entries(m[1]) if m else []
        return self.block(class_name, entries, path)


def _is_complex(e: Entry) -> bool:
    return bool(_STRUCT_FN_RE.search(e.value)) or (e.storage[:1].isupper())


def _wrap(kind: str, ty):
    return ty if kind == "struct" else [kind, ty]


def _nested_to_type(nt):
    obj = ["object", {n: a.get("type") or _nested_to_type(a["nested_type"]) for n, a in nt["attributes"].items()}]
    return _wrap(nt["nesting_mode"] if nt["nesting_mode"] != "single" else "struct", obj)


def _flags(attr: dict, computed: bool, optional: bool, required: bool) -> dict:
    if required:
        attr["required"] = True
    else:
        if optional:
            attr["optional"] = True
        if computed or not optional:
            attr["computed"] = True
    return attr


# ---------------------------------------------------------------------------------------------
# The whole package


def _main_class(binding: Binding):
    for name, (base, body) in binding.classes.items():
        if base in ("cdktn.TerraformResource", "cdktn.TerraformDataSource", "cdktn.TerraformProvider"):
            return name, base, body
    return None


def extract(js_files: dict[str, list[str]]) -> tuple[dict, dict]:
    """js_files: binding directory -> its JavaScript sources. Returns (schema JSON, stats)."""
    provider = None
    resources: dict = {}
    data_sources: dict = {}
    unresolved: list[str] = []
    for directory in sorted(js_files):
        binding = parse_binding(js_files[directory])
        main = _main_class(binding)
        if main is None:
            continue
        name, base, body = main
        ex = Extractor(binding)
        if base == "cdktn.TerraformProvider":
            block = ex.top(name, "provider")
            # The generator adds `alias` to the provider's config; it is a meta-argument.
            block.get("attributes", {}).pop("alias", None)
            provider = {"version": 0, "block": block}
        else:
            m = _TYPE_RE.search(body)
            if not m:
                raise ValueError(f"{directory}: no tfResourceType")
            tf_type = m[1]
            block = ex.top(name, tf_type)
            target = resources if base == "cdktn.TerraformResource" else data_sources
            if tf_type in target:
                raise ValueError(f"{tf_type} defined twice")
            target[tf_type] = {"version": 0, "block": block}
        unresolved += ex.unresolved
    if provider is None:
        raise ValueError("no provider binding found")
    # The WAFv2 rule statement tree is one `any` in the bindings: wafv2.py writes it out.
    wafv2.graft(resources, unresolved)
    schema = {
        "format_version": "1.0",
        "provider_schemas": {
            PROVIDER_ADDR: {
                "provider": provider,
                "resource_schemas": dict(sorted(resources.items())),
                "data_source_schemas": dict(sorted(data_sources.items())),
            }
        },
    }
    stats = {"resources": len(resources), "data_sources": len(data_sources), "unresolved": unresolved}
    return schema, stats


def read_wheel(wheel_path: str) -> tuple[dict[str, list[str]], dict]:
    """The JavaScript of every binding in the wheel's bundled jsii tarball, plus its package.json."""
    with zipfile.ZipFile(wheel_path) as whl:
        tgz = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
        if len(tgz) != 1:
            raise ValueError(f"expected one .jsii.tgz in {wheel_path}, found {tgz}")
        data = whl.read(tgz[0])
    files: dict[str, list[str]] = {}
    package = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar:
            if member.name == "package/package.json":
                package = json.load(tar.extractfile(member))
                continue
            m = re.fullmatch(r"package/lib/([^/]+)/(?:index-structs/)?[\w-]+\.js", member.name)
            if m and member.isfile():
                files.setdefault(m[1], []).append(tar.extractfile(member).read().decode())
    return files, package


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    wheel, out = argv[1], argv[2]
    files, package = read_wheel(wheel)
    schema, stats = extract(files)
    generated_from = (package.get("cdktf") or package.get("cdktn") or {}).get("provider", {})
    schema["generated_from"] = {
        "package": f"{package.get('name')}@{package.get('version')}",
        "provider": generated_from,
    }
    with open(out + ".tmp", "w") as f:
        json.dump(schema, f, separators=(",", ":"))
    os.replace(out + ".tmp", out)
    print(
        f"schema: {stats['resources']} resource types, {stats['data_sources']} data sources, "
        f"{len(stats['unresolved'])} nested attributes/blocks left out (generator skipped or folded them) "
        f"from {schema['generated_from']['package']} -> {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
