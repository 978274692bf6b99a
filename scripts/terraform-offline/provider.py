"""A schema-only stand-in for the hashicorp/aws provider, for offline `terraform validate`.

Terraform needs a provider plugin's schema to `init`, `validate` and `test` a configuration,
and the real hashicorp/aws binary cannot be downloaded here. This process speaks Terraform's
plugin protocol 6 over gRPC and answers from a schema file (the JSON shape of
`terraform providers schema -json`; schema.py rebuilds it from PyPI's cdktn-provider-aws).
Terraform is pointed at it with TF_REATTACH_PROVIDERS instead of starting a binary itself.

What it answers, and why that is enough:
* GetProviderSchema: the schema. This is what `validate` checks names, types, required
  arguments and block nesting against, in Terraform's own code. (GetMetadata is left
  unimplemented: Terraform asks it only of providers that declare get_provider_schema_optional.)
* Validate{Provider,Resource,DataResource}Config: no findings. The real provider runs its
  value validators here (enum values, ARN formats, ranges); a stand-in cannot.
* ConfigureProvider, StopProvider, GetFunctions: empty answers.
* `terraform test` with `mock_provider "aws" {}` asks the real provider only for its schema
  and the validation calls above; the mock computes plans and data sources itself. The calls
  that would need AWS (PlanResourceChange, ApplyResourceChange, ReadResource,
  ReadDataSource, ImportResourceState, ...) answer with an error diagnostic that says so, so
  a run that would really need AWS fails loudly instead of passing on made-up data.

Usage:
  python provider.py --schema SCHEMA.json --socket PATH --ready FILE [--max-seconds N]

Once serving it writes the TF_REATTACH_PROVIDERS value to FILE (atomically). It exits on
SIGTERM/SIGINT, after --max-seconds, or when its parent process goes away, so that a runner
killed without running its traps leaves nothing behind.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from concurrent import futures

import grpc
from tf.gen import tfplugin_pb2 as pb
from tf.gen import tfplugin_pb2_grpc as pb_grpc

PROVIDER_ADDR = "registry.terraform.io/hashicorp/aws"

_BLOCK_NESTING = {
    "single": pb.Schema.NestedBlock.SINGLE,
    "list": pb.Schema.NestedBlock.LIST,
    "set": pb.Schema.NestedBlock.SET,
    "map": pb.Schema.NestedBlock.MAP,
    "group": pb.Schema.NestedBlock.GROUP,
}
_OBJECT_NESTING = {
    "single": pb.Schema.Object.SINGLE,
    "list": pb.Schema.Object.LIST,
    "set": pb.Schema.Object.SET,
    "map": pb.Schema.Object.MAP,
}


# ---------------------------------------------------------------------------------------------
# JSON schema (as `terraform providers schema -json` prints it) -> protocol 6 messages


def _attribute(name: str, a: dict) -> pb.Schema.Attribute:
    attr = pb.Schema.Attribute(
        name=name,
        required=bool(a.get("required")),
        optional=bool(a.get("optional")),
        computed=bool(a.get("computed")),
        sensitive=bool(a.get("sensitive")),
        deprecated=bool(a.get("deprecated")),
        description=a.get("description", ""),
    )
    if "nested_type" in a:
        nt = a["nested_type"]
        attr.nested_type.CopyFrom(
            pb.Schema.Object(
                attributes=[_attribute(n, x) for n, x in sorted(nt.get("attributes", {}).items())],
                nesting=_OBJECT_NESTING[nt["nesting_mode"]],
            )
        )
    else:
        # The wire format carries an attribute's cty type as its JSON encoding.
        attr.type = json.dumps(a["type"], separators=(",", ":")).encode()
    return attr


def block_to_proto(b: dict) -> pb.Schema.Block:
    return pb.Schema.Block(
        attributes=[_attribute(n, a) for n, a in sorted(b.get("attributes", {}).items())],
        block_types=[
            pb.Schema.NestedBlock(
                type_name=n,
                block=block_to_proto(bt.get("block", {})),
                nesting=_BLOCK_NESTING[bt["nesting_mode"]],
                min_items=bt.get("min_items", 0),
                max_items=bt.get("max_items", 0),
            )
            for n, bt in sorted(b.get("block_types", {}).items())
        ],
        deprecated=bool(b.get("deprecated")),
        description=b.get("description", ""),
    )


def _schema(s: dict) -> pb.Schema:
    return pb.Schema(version=s.get("version", 0), block=block_to_proto(s.get("block", {})))


def load_schema(path: str) -> dict:
    with open(path) as f:
        doc = json.load(f)
    return doc["provider_schemas"][PROVIDER_ADDR]


def schema_response(ps: dict) -> pb.GetProviderSchema.Response:
    return pb.GetProviderSchema.Response(
        provider=_schema(ps["provider"]),
        resource_schemas={n: _schema(s) for n, s in ps.get("resource_schemas", {}).items()},
        data_source_schemas={n: _schema(s) for n, s in ps.get("data_source_schemas", {}).items()},
        server_capabilities=pb.ServerCapabilities(plan_destroy=True),
    )


# ---------------------------------------------------------------------------------------------
# The gRPC service


def _needs_aws(what: str) -> list[pb.Diagnostic]:
    return [
        pb.Diagnostic(
            severity=pb.Diagnostic.ERROR,
            summary=f"{what} needs AWS: this is the offline schema-only stand-in",
            detail="scripts/terraform-offline/provider.py answers schema and validation calls only. "
            'Use mock_provider "aws" {} in terraform test, or the real provider.',
        )
    ]


class SchemaOnlyProvider(pb_grpc.ProviderServicer):
    def __init__(self, ps: dict):
        self._response = schema_response(ps)
        self.calls: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def GetProviderSchema(self, request, context):
        self._count("GetProviderSchema")
        return self._response


def _answer(name: str, needs_aws: bool):
    response = getattr(pb, name).Response

    def call(self, request, context):
        self._count(name)
        return response(diagnostics=_needs_aws(name)) if needs_aws else response()

    return call


# Calls with nothing to say: no findings, nothing to configure or stop, no functions.
for _name in ("ValidateProviderConfig", "ValidateResourceConfig", "ValidateDataResourceConfig",
              "ConfigureProvider", "GetFunctions", "StopProvider"):
    setattr(SchemaOnlyProvider, _name, _answer(_name, needs_aws=False))
# Calls only the real provider can answer: an error diagnostic that says so.
for _name in ("UpgradeResourceState", "ReadResource", "PlanResourceChange", "ApplyResourceChange",
              "ImportResourceState", "MoveResourceState", "ReadDataSource"):
    setattr(SchemaOnlyProvider, _name, _answer(_name, needs_aws=True))


def serve(ps: dict, socket_path: str, workers: int = 8):
    """Start serving on a unix socket; returns (server, servicer)."""
    servicer = SchemaOnlyProvider(ps)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers),
        options=[("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)],
    )
    pb_grpc.add_ProviderServicer_to_server(servicer, server)
    if os.path.exists(socket_path):
        os.unlink(socket_path)
    server.add_insecure_port(f"unix:{socket_path}")
    server.start()
    return server, servicer


def reattach_config(socket_path: str, pid: int) -> str:
    """The TF_REATTACH_PROVIDERS value that points Terraform at this process."""
    return json.dumps(
        {
            PROVIDER_ADDR: {
                "Protocol": "grpc",
                "ProtocolVersion": 6,
                "Pid": pid,
                # Test: Terraform neither starts nor stops the process; the runner does.
                "Test": True,
                "Addr": {"Network": "unix", "String": socket_path},
            }
        }
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--schema", required=True, help="schema JSON (terraform providers schema -json shape)")
    ap.add_argument("--socket", required=True, help="unix socket path to listen on")
    ap.add_argument("--ready", required=True, help="file to write the TF_REATTACH_PROVIDERS value to")
    ap.add_argument("--max-seconds", type=float, default=1800, help="exit after this long whatever happens")
    args = ap.parse_args(argv)

    started = time.monotonic()
    server, servicer = serve(load_schema(args.schema), os.path.abspath(args.socket))
    tmp = args.ready + ".tmp"
    with open(tmp, "w") as f:
        f.write(reattach_config(os.path.abspath(args.socket), os.getpid()) + "\n")
    os.replace(tmp, args.ready)
    print(f"provider.py: serving {args.socket} (pid {os.getpid()}, ready in {time.monotonic() - started:.1f} s)",
          file=sys.stderr, flush=True)

    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    parent = os.getppid()
    deadline = started + args.max_seconds
    while not done.wait(0.5):
        if time.monotonic() > deadline:
            print("provider.py: --max-seconds reached, exiting", file=sys.stderr)
            break
        if os.getppid() != parent:  # the runner died without stopping us
            break
    server.stop(grace=0)
    print(f"provider.py: calls answered: {json.dumps(dict(sorted(servicer.calls.items())))}", file=sys.stderr)
    for path in (args.socket, args.ready):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
