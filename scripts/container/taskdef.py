#!/usr/bin/env python3
"""The ECS task definition, read from the Terraform, turned into `docker run` arguments.

The container check and the rolling-deploy rehearsal run the image as the task definition
says: read-only root, the task's environment, stop timeout, health check, ulimits, CPU and
memory. Reading those from terraform/ (rather than restating them) keeps the rehearsal honest
when the task definition changes.

Path followed: terraform/<environment> (with its terraform.tfvars) -> module "app" -> module
"service" -> aws_ecs_task_definition.app -> container_definitions (the container named
local.container_name: the app, not a sidecar) and the task's cpu/memory.

Why a reader of our own: `terraform console` needs `terraform init`, which needs the AWS
provider, and that cannot be downloaded here (nor in CI). tests/infra.rs evaluates the same
files with hcl-rs, but inside a test crate. This reads the small HCL subset those paths use:
block bodies, attributes, literals, objects, tuples, jsonencode(), tostring() of a known
string, number or bool (an ECS environment value must be a string), and `var.`/`local.`
references followed through module calls, variable defaults and terraform.tfvars. Anything
else (other functions, operators, resource attributes, templates) evaluates to Unknown; a fact
the docker arguments need must be known, or run_args fails naming it.

Usage:
  taskdef.py [--env NAME] facts          the task facts as JSON
  taskdef.py [--env NAME] get PATH       one fact, e.g. container.stopTimeout
  taskdef.py [--env NAME] run-args       `docker run` arguments, one per line; notes on
                                         what differs from ECS go to stderr
"""

import argparse
import json
import re
import resource
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------------------------
# Values that are not plain JSON.


@dataclass(frozen=True)
class Unknown:
    """A value this reader does not evaluate; `text` says what it was."""

    text: str


@dataclass(frozen=True)
class Ref:
    """A traversal such as var.cpu or local.binary or data.aws_region.current.region."""

    parts: tuple


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple


# ---------------------------------------------------------------------------------------------
# Tokens.


@dataclass(frozen=True)
class Tok:
    kind: str  # nl ident str tmpl num punct op eof
    value: object
    line: int


_PUNCT = "{}[]().,=:?"
_OPS = ["==", "!=", "<=", ">=", "&&", "||", "=>", "...", "+", "-", "*", "/", "%", "<", ">", "!"]


class ParseError(Exception):
    pass


def _scan_string(text, i, line):
    """Scans a quoted string starting after its opening quote. Returns (value, is_template,
    end index after the closing quote, line)."""
    out = []
    depth = 0  # inside ${ } or %{ }
    template = False
    while i < len(text):
        c = text[i]
        if depth == 0:
            if c == '"':
                return "".join(out), template, i + 1, line
            if c == "\\":
                nxt = text[i + 1 : i + 2]
                out.append({"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}.get(nxt, "\\" + nxt))
                i += 2
                continue
            if c in "$%" and text[i + 1 : i + 3] == c + "{":
                out.append(c + "{")  # $${ and %%{ are a literal ${ and %{
                i += 3
                continue
            if c in "$%" and text[i + 1 : i + 2] == "{":
                template = True
                depth = 1
                out.append(c + "{")
                i += 2
                continue
            if c == "\n":
                raise ParseError(f"line {line}: newline in a quoted string")
            out.append(c)
            i += 1
        else:
            out.append(c)
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
            elif c == '"':
                # A string inside the interpolation: skip it whole.
                inner, _, j, line = _scan_string(text, i + 1, line)
                out.append(inner + '"')
                i = j
                continue
            elif c == "\n":
                line += 1
            i += 1
    raise ParseError(f"line {line}: unterminated string")


def tokenize(text):
    toks = []
    i, line = 0, 1
    n = len(text)
    while i < n:
        c = text[i]
        if c in " \t\r":
            i += 1
        elif c == "\n":
            toks.append(Tok("nl", None, line))
            line += 1
            i += 1
        elif c == "#" or text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise ParseError(f"line {line}: unterminated comment")
            line += text.count("\n", i, end)
            i = end + 2
        elif c == '"':
            value, template, i2, line2 = _scan_string(text, i + 1, line)
            toks.append(Tok("tmpl" if template else "str", value, line))
            i, line = i2, line2
        elif text.startswith("<<", i) and re.match(r"<<-?[A-Za-z_]", text[i:]):
            m = re.match(r"<<(-?)([A-Za-z_][A-Za-z0-9_]*)[ \t]*\n", text[i:])
            if not m:
                raise ParseError(f"line {line}: bad heredoc")
            marker = m.group(2)
            body_start = i + m.end()
            lines = []
            j = body_start
            while True:
                nl = text.find("\n", j)
                raw = text[j:] if nl < 0 else text[j:nl]
                if raw.strip() == marker:
                    break
                if nl < 0:
                    raise ParseError(f"line {line}: heredoc {marker} never ends")
                lines.append(raw)
                j = nl + 1
            body = "\n".join(lines) + "\n"
            kind = "tmpl" if ("${" in body or "%{" in body) else "str"
            toks.append(Tok(kind, body, line))
            line += len(lines) + 1
            i = j + len(raw)
        elif c.isdigit():
            m = re.match(r"\d+(\.\d+)?([eE][+-]?\d+)?", text[i:])
            s = m.group(0)
            toks.append(Tok("num", float(s) if ("." in s or "e" in s.lower()) else int(s), line))
            i += len(s)
        elif c.isalpha() or c == "_":
            m = re.match(r"[A-Za-z_][A-Za-z0-9_-]*", text[i:])
            toks.append(Tok("ident", m.group(0), line))
            i += m.end()
        else:
            matched = next((op for op in _OPS if len(op) > 1 and text.startswith(op, i)), None)
            if matched:
                toks.append(Tok("op", matched, line))
                i += len(matched)
            elif c in _PUNCT:
                toks.append(Tok("punct", c, line))
                i += 1
            elif c in "+-*/%<>!":
                toks.append(Tok("op", c, line))
                i += 1
            else:
                raise ParseError(f"line {line}: unexpected character {c!r}")
    toks.append(Tok("eof", None, line))
    return toks


# ---------------------------------------------------------------------------------------------
# Bodies and expressions.


@dataclass
class Block:
    type: str
    labels: list
    body: "Body"


@dataclass
class Body:
    attrs: dict = field(default_factory=dict)
    blocks: list = field(default_factory=list)

    def find(self, type_, *labels):
        return [b for b in self.blocks if b.type == type_ and tuple(b.labels[: len(labels)]) == labels]


_OPENERS = {"(": ")", "[": "]", "{": "}"}


class Parser:
    def __init__(self, text):
        self.toks = tokenize(text)
        self.i = 0

    def peek(self, k=0):
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def next(self):
        t = self.peek()
        self.i += 1
        return t

    def is_punct(self, c, k=0):
        t = self.peek(k)
        return t.kind == "punct" and t.value == c

    def expect_punct(self, c):
        t = self.next()
        if not (t.kind == "punct" and t.value == c):
            raise ParseError(f"line {t.line}: expected {c!r}, found {t.value!r}")

    def skip_nl(self):
        while self.peek().kind == "nl":
            self.i += 1

    def body(self, closer=None):
        out = Body()
        while True:
            self.skip_nl()
            t = self.peek()
            if closer and t.kind == "punct" and t.value == closer:
                self.i += 1
                return out
            if t.kind == "eof":
                if closer:
                    raise ParseError(f"line {t.line}: missing {closer!r}")
                return out
            if t.kind != "ident":
                raise ParseError(f"line {t.line}: expected an attribute or block, found {t.value!r}")
            name = self.next().value
            if self.is_punct("="):
                self.i += 1
                out.attrs[name] = self.expr(nl_ends=True)
                t = self.peek()
                if not (t.kind in ("nl", "eof") or (closer and t.kind == "punct" and t.value == closer)):
                    raise ParseError(f"line {t.line}: junk after attribute {name}: {t.value!r}")
            else:
                labels = []
                while self.peek().kind in ("str", "ident"):
                    labels.append(self.next().value)
                self.expect_punct("{")
                out.blocks.append(Block(name, labels, self.body("}")))

    def expr(self, nl_ends):
        start = self.i
        value = self.primary()
        if not nl_ends:
            self.skip_nl()  # inside brackets a newline is only white space
        t = self.peek()
        ends = t.kind == "eof" or (t.kind == "nl" and nl_ends) or (t.kind == "punct" and t.value in ",)]}")
        if ends:
            return value
        # Operators, conditionals, splats...: not evaluated. Skip to the end of the expression.
        self.i = start
        return Unknown(self.skip_expr(nl_ends))

    def skip_expr(self, nl_ends):
        depth = 0
        parts = []
        while True:
            t = self.peek()
            if t.kind == "eof":
                break
            if depth == 0 and ((t.kind == "nl" and nl_ends) or (t.kind == "punct" and t.value in ",)]}")):
                break
            if t.kind == "punct" and t.value in _OPENERS:
                depth += 1
            elif t.kind == "punct" and t.value in ")]}":
                depth -= 1
            if t.kind != "nl":
                parts.append(json.dumps(t.value) if t.kind in ("str", "tmpl") else str(t.value))
            self.i += 1
        return " ".join(parts)

    def primary(self):
        t = self.next()
        if t.kind == "num":
            return t.value
        if t.kind == "str":
            return t.value
        if t.kind == "tmpl":
            return Unknown(f'"{t.value}"')
        if t.kind == "op" and t.value == "-" and self.peek().kind == "num":
            return -self.next().value
        if t.kind == "punct" and t.value == "(":
            self.skip_nl()
            inner = self.expr(nl_ends=False)
            self.skip_nl()
            self.expect_punct(")")
            return self.postfix(inner)
        if t.kind == "punct" and t.value == "[":
            return self.postfix(self.tuple_())
        if t.kind == "punct" and t.value == "{":
            return self.postfix(self.object_())
        if t.kind == "ident":
            if t.value in ("true", "false"):
                return t.value == "true"
            if t.value == "null":
                return None
            if self.is_punct("("):
                self.i += 1
                args = []
                while True:
                    self.skip_nl()
                    if self.is_punct(")"):
                        self.i += 1
                        break
                    args.append(self.expr(nl_ends=False))
                    self.skip_nl()
                    if self.is_punct(","):
                        self.i += 1
                    elif self.peek().kind == "op" and self.peek().value == "...":
                        self.i += 1
                return self.postfix(Call(t.value, tuple(args)))
            return self.postfix(Ref((t.value,)))
        # Anything else (unary !, for-expressions...) is left to skip_expr by the caller.
        return Unknown(str(t.value))

    def postfix(self, value):
        parts = list(value.parts) if isinstance(value, Ref) else None
        while True:
            if self.is_punct(".") and self.peek(1).kind in ("ident", "num"):
                self.i += 1
                key = self.next().value
            elif self.is_punct("["):
                self.i += 1
                self.skip_nl()
                key = self.expr(nl_ends=False)
                self.skip_nl()
                self.expect_punct("]")
            else:
                break
            if parts is None:
                return Unknown(f"an index into {value!r}")
            parts.append(key)
        return Ref(tuple(parts)) if parts is not None else value

    def tuple_(self):
        self.skip_nl()
        if self.peek().kind == "ident" and self.peek().value == "for":
            self.i -= 1
            return Unknown(self.skip_bracketed())
        items = []
        while True:
            self.skip_nl()
            if self.is_punct("]"):
                self.i += 1
                return items
            items.append(self.expr(nl_ends=False))
            self.skip_nl()
            if self.is_punct(","):
                self.i += 1

    def object_(self):
        self.skip_nl()
        if self.peek().kind == "ident" and self.peek().value == "for":
            self.i -= 1
            return Unknown(self.skip_bracketed())
        items = {}
        while True:
            self.skip_nl()
            if self.is_punct("}"):
                self.i += 1
                return items
            t = self.next()
            if t.kind in ("ident", "str"):
                key = t.value
            elif t.kind == "punct" and t.value == "(":
                key = self.expr(nl_ends=False)
                self.expect_punct(")")
            else:
                raise ParseError(f"line {t.line}: bad object key {t.value!r}")
            sep = self.next()
            if not (sep.kind == "punct" and sep.value in "=:"):
                raise ParseError(f"line {sep.line}: expected '=' or ':' after key {key!r}")
            value = self.expr(nl_ends=True)
            if not isinstance(key, str):
                key = Unknown(f"key {key!r}")
            items[key] = value
            if self.is_punct(","):
                self.i += 1

    def skip_bracketed(self):
        opener = self.next().value
        closer = _OPENERS[opener]
        depth = 1
        parts = [opener]
        while depth:
            t = self.next()
            if t.kind == "eof":
                raise ParseError(f"line {t.line}: missing {closer!r}")
            if t.kind == "punct" and t.value in _OPENERS:
                depth += 1
            elif t.kind == "punct" and t.value in ")]}":
                depth -= 1
            if t.kind != "nl":
                parts.append(str(t.value))
        return " ".join(parts)


def parse(text):
    return Parser(text).body()


# ---------------------------------------------------------------------------------------------
# Modules: var. and local. references, module calls.


class Module:
    """One module instance: its directory, and where each input variable's value comes from."""

    def __init__(self, path, inputs=None, tfvars=None, name="root"):
        self.path = Path(path)
        self.name = name
        # variable name -> (expression, module whose scope evaluates it)
        self.inputs = inputs or {}
        self.tfvars = tfvars or {}
        self.body = Body()
        for tf in sorted(self.path.glob("*.tf")):
            try:
                part = parse(tf.read_text())
            except ParseError as e:
                raise ParseError(f"{tf}: {e}") from None
            self.body.attrs.update(part.attrs)
            self.body.blocks.extend(part.blocks)
        self.locals = {}
        for block in self.body.find("locals"):
            self.locals.update(block.body.attrs)
        self._evaluating = set()

    @classmethod
    def root(cls, path):
        path = Path(path)
        tfvars_file = path / "terraform.tfvars"
        tfvars = parse(tfvars_file.read_text()).attrs if tfvars_file.exists() else {}
        return cls(path, tfvars=tfvars, name=path.name)

    def module(self, name):
        calls = self.body.find("module", name)
        if len(calls) != 1:
            raise ParseError(f"{self.path}: expected one module {name!r}, found {len(calls)}")
        attrs = calls[0].body.attrs
        source = self.eval(attrs.get("source"))
        if not isinstance(source, str) or not source.startswith("."):
            raise ParseError(f"{self.path}: module {name!r} has no local source")
        skip = {"source", "version", "providers", "count", "for_each", "depends_on"}
        inputs = {k: (v, self) for k, v in attrs.items() if k not in skip}
        return Module((self.path / source).resolve(), inputs=inputs, name=f"{self.name}.module.{name}")

    def resource(self, type_, name):
        found = self.body.find("resource", type_, name)
        if len(found) != 1:
            raise ParseError(f"{self.path}: expected one resource {type_}.{name}, found {len(found)}")
        return found[0].body

    def var(self, name):
        if name in self.inputs:
            expr, scope = self.inputs[name]
            return scope.eval(expr)
        if name in self.tfvars:
            return self.eval(self.tfvars[name])
        declared = self.body.find("variable", name)
        if not declared:
            return Unknown(f"var.{name} (not declared in {self.path})")
        if "default" in declared[0].body.attrs:
            return self.eval(declared[0].body.attrs["default"])
        return Unknown(f"var.{name} (no value, no default)")

    def local(self, name):
        if name not in self.locals:
            return Unknown(f"local.{name} (not defined in {self.path})")
        if name in self._evaluating:
            raise ParseError(f"{self.path}: local.{name} refers to itself")
        self._evaluating.add(name)
        try:
            return self.eval(self.locals[name])
        finally:
            self._evaluating.discard(name)

    def eval(self, value):
        if isinstance(value, dict):
            return {k: self.eval(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.eval(v) for v in value]
        if isinstance(value, Ref):
            head, rest = value.parts[0], list(value.parts[1:])
            if head in ("var", "local") and rest and isinstance(rest[0], str):
                base = self.var(rest[0]) if head == "var" else self.local(rest[0])
                return _index(base, [self.eval(k) for k in rest[1:]], value)
            return Unknown(".".join(str(p) for p in value.parts))
        if isinstance(value, Call):
            if value.name == "jsonencode" and len(value.args) == 1:
                # The structure, not its JSON text: what ECS receives once decoded.
                return self.eval(value.args[0])
            if value.name == "tostring" and len(value.args) == 1:
                return _tostring(self.eval(value.args[0]))
            return Unknown(f"{value.name}(...)")
        return value


def _tostring(value):
    """Terraform's tostring() of a primitive: 75000 -> "75000", 1.5 -> "1.5", true -> "true"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value
    return Unknown("tostring(...)")


def _index(base, keys, ref):
    for key in keys:
        if isinstance(base, Unknown):
            return base
        try:
            base = base[key]
        except (KeyError, IndexError, TypeError):
            return Unknown(f"{'.'.join(map(str, ref.parts))} (no {key!r})")
    return base


# ---------------------------------------------------------------------------------------------
# The task definition.


class TaskDefError(Exception):
    pass


def read_task(repo=REPO, environment="production"):
    """The task facts of an environment, as plain JSON values (Unknown as {"unknown": text})."""
    root = Module.root(Path(repo) / "terraform" / environment)
    service = root.module("app").module("service")
    task = service.resource("aws_ecs_task_definition", "app")
    containers = service.eval(task.attrs.get("container_definitions"))
    app = app_container(containers, service.local("container_name"))
    return _plain(
        {
            "environment": environment,
            "source": f"terraform/{environment} -> module.app -> module.service -> aws_ecs_task_definition.app",
            "cpu": service.eval(task.attrs.get("cpu")),
            "memory": service.eval(task.attrs.get("memory")),
            "container": app,
        }
    )


def app_container(containers, name):
    """The app's container among the task's: the one named like the app (the service module's
    local.container_name). Sidecars (the metrics collector) are not what the checks run."""
    if not isinstance(containers, list) or not containers:
        raise TaskDefError(f"container_definitions is not a list of containers: {containers!r}")
    if not isinstance(name, str):
        raise TaskDefError(f"the app's container name is not a value this reader evaluates: {name!r}")
    named = [c for c in containers if isinstance(c, dict) and c.get("name") == name]
    if len(named) != 1:
        found = [c.get("name") if isinstance(c, dict) else c for c in containers]
        raise TaskDefError(f"expected one container named {name!r}, found {found!r}")
    return named[0]


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Unknown):
        return {"unknown": value.text}
    return value


def _is_unknown(value):
    return isinstance(value, dict) and set(value) == {"unknown"}


def fact(facts, path):
    """facts at a dotted path (list indexes as numbers); TaskDefError if absent or unknown."""
    value = facts
    for key in path.split("."):
        if isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        elif isinstance(value, dict) and key in value and not _is_unknown(value):
            value = value[key]
        else:
            raise TaskDefError(f"the task definition has no {path}")
    if _is_unknown(value):
        raise TaskDefError(f"{path} is not a value this reader evaluates: {value['unknown']}")
    return value


def data_mount(facts):
    """The container path of the task's one writable mount (EFS)."""
    mounts = fact(facts, "container.mountPoints")
    writable = [m for m in mounts if m.get("readOnly") is False]
    if len(writable) != 1:
        raise TaskDefError(f"expected exactly one writable mount point, found {mounts!r}")
    return fact({"m": writable[0]}, "m.containerPath")


def container_port(facts):
    return int(fact(facts, "container.portMappings.0.containerPort"))


def run_args(facts, nofile_limit):
    """`docker run` arguments for what the task definition sets, and notes on what differs.

    Not included: the image, the name, the published port and the data volume (the caller's),
    and the health check's command: `docker run --health-cmd` only takes the shell form and
    the image has no shell, so the image's own HEALTHCHECK command runs, with the task's
    timings; callers check that it is the task's command (check.py does).
    """
    c = "container"
    args, notes = [], []
    if fact(facts, f"{c}.readonlyRootFilesystem") is True:
        args.append("--read-only")
    user = facts["container"].get("user")
    if user is not None:
        args += ["--user", str(fact(facts, f"{c}.user"))]
    for i, _ in enumerate(facts["container"].get("environment") or []):
        args += ["--env", f"{fact(facts, f'{c}.environment.{i}.name')}={fact(facts, f'{c}.environment.{i}.value')}"]
    args += ["--stop-timeout", str(int(fact(facts, f"{c}.stopTimeout")))]
    if "healthCheck" in facts["container"]:
        # ECS's defaults for what the task leaves out.
        health = {"interval": 30, "timeout": 5, "retries": 3, "startPeriod": 0}
        for key in health:
            if key in facts["container"]["healthCheck"]:
                health[key] = int(fact(facts, f"{c}.healthCheck.{key}"))
        args += [
            "--health-interval", f"{health['interval']}s",
            "--health-timeout", f"{health['timeout']}s",
            "--health-retries", str(health["retries"]),
            "--health-start-period", f"{health['startPeriod']}s",
        ]
    else:
        # ECS runs no health check the task does not define, whatever the image says.
        args.append("--no-healthcheck")
    for i, limit in enumerate(facts["container"].get("ulimits") or []):
        name = fact(facts, f"{c}.ulimits.{i}.name")
        soft = int(fact(facts, f"{c}.ulimits.{i}.softLimit"))
        hard = int(fact(facts, f"{c}.ulimits.{i}.hardLimit"))
        if name == "nofile" and hard > nofile_limit:
            notes.append(f"ulimit nofile {soft}:{hard} capped at this host's hard limit {nofile_limit}")
            soft, hard = min(soft, nofile_limit), nofile_limit
        args += ["--ulimit", f"{name}={soft}:{hard}"]
    cpu = facts.get("cpu")
    if cpu is not None:
        units = int(fact(facts, "cpu"))
        args += ["--cpus", f"{units / 1024:g}"]
    memory = facts.get("memory")
    if memory is not None:
        args += ["--memory", f"{int(fact(facts, 'memory'))}m"]
    log = facts["container"].get("logConfiguration")
    if isinstance(log, dict) and log.get("logDriver") not in (None, "json-file"):
        notes.append(f"log driver {log.get('logDriver')} replaced by json-file (docker logs)")
    notes.append("network awsvpc replaced by a bridge with the port published on 127.0.0.1")
    return args, notes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="production", help="terraform/<env> (default production)")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("facts")
    get = sub.add_parser("get")
    get.add_argument("path")
    ra = sub.add_parser("run-args")
    ra.add_argument("--nofile-limit", type=int, default=resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    args = parser.parse_args(argv)
    try:
        facts = read_task(environment=args.env)
        if args.cmd == "facts":
            print(json.dumps(facts, indent=2))
        elif args.cmd == "get":
            value = {"dataMount": data_mount, "containerPort": container_port}.get(args.path)
            value = value(facts) if value else fact(facts, args.path)
            print(value if isinstance(value, (str, int, float)) else json.dumps(value))
        else:
            run, notes = run_args(facts, args.nofile_limit)
            for note in notes:
                print(f"taskdef: {note}", file=sys.stderr)
            print("\n".join(run))
    except (ParseError, TaskDefError) as e:
        print(f"taskdef: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
