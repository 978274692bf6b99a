#!/usr/bin/env python3
"""The ECS task definition as Terraform renders it, turned into `docker run` arguments.

The container check and the rolling-deploy rehearsal run the image as the task definition
says: read-only root, the task's environment, stop timeout, health check, ulimits, CPU and
memory. Terraform itself evaluates it: each environment's test file has a plan-mode run
"task_definition" of the root as committed against a mock provider, and
`terraform test -json -verbose` prints that run's plan, whose aws_ecs_task_definition holds
container_definitions as Terraform computed them. Why that and not `terraform plan` or
`terraform console`: both need a backend and a provider that answers plans; `terraform test`
needs neither, and runs the same way offline (scripts/terraform-offline/, a schema-only
provider) and on GitHub (the real one).

Usage: terraform test -json -verbose | taskdef.py render OUT.json
  writes the rendered task definition (and prints the test's messages); fails if the test did.
check.py and the rolling-deploy launchers import this module: load(env) reads the facts of an
environment from target/task-definitions/<env>.json, which scripts/terraform-offline/run.sh
writes (CI: .github/scripts/render-task-definitions.sh).
"""

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RENDERED = REPO / "target" / "task-definitions"
RUN = "task_definition"


class TaskDefError(Exception):
    pass


def render(lines, out=sys.stdout):
    """From `terraform test -json -verbose` of an environment root: prints its messages, and
    returns the task definition planned by run "task_definition" (family, cpu, memory, the app
    container's name from the root's output container_name, containerDefinitions)."""
    task, status = None, None
    for line in lines:
        msg = json.loads(line)
        kind = msg.get("type")
        if kind == "test_plan":
            if msg.get("@testrun") == RUN:
                task = task_of(msg["test_plan"])
            continue
        if kind == "test_summary":
            status = msg["test_summary"]["status"]
        if kind == "test_run" and msg["test_run"].get("progress") != "complete":
            continue
        text, diag = msg.get("@message", ""), msg.get("diagnostic")
        if diag:
            where = diag.get("range") or {}
            text = f"{diag['severity']}: {diag['summary']}" + (
                f" ({where['filename']}:{where['start']['line']})" if where else ""
            ) + (f"\n  {diag['detail']}" if diag.get("detail") else "")
        print(text, file=out)
    if status != "pass":
        raise TaskDefError(f"terraform test: {status or 'no summary (did it run?)'}")
    if task is None:
        raise TaskDefError(f'no plan of run "{RUN}" (run terraform test with -json -verbose)')
    return task


def task_of(plan):
    tasks = [c for c in plan["resource_changes"] if c["type"] == "aws_ecs_task_definition"]
    if len(tasks) != 1:
        raise TaskDefError(f"expected one aws_ecs_task_definition, found {[c['address'] for c in tasks]}")
    after = tasks[0]["change"]["after"] or {}
    if after.get("container_definitions") is None:
        raise TaskDefError(f"{tasks[0]['address']}: container_definitions is unknown at plan time")
    name = (plan.get("output_changes", {}).get("container_name") or {}).get("after")
    return {
        "source": tasks[0]["address"],
        "family": after["family"],
        "cpu": int(after["cpu"]),
        "memory": int(after["memory"]),
        "appContainer": name,
        "containerDefinitions": json.loads(after["container_definitions"]),
    }


def load(environment="production", directory=RENDERED):
    """The facts of an environment's rendered task definition: the app container, cpu, memory."""
    path = Path(directory) / f"{environment}.json"
    if not path.exists():
        raise TaskDefError(f"no {path}: bash scripts/terraform-offline/run.sh terraform/{environment} renders it")
    newest = max(p.stat().st_mtime for p in (REPO / "terraform").rglob("*") if p.suffix in (".tf", ".tfvars", ".hcl"))
    if directory == RENDERED and path.stat().st_mtime < newest:
        raise TaskDefError(f"{path} is older than terraform/: render it again (scripts/terraform-offline/run.sh)")
    task = json.loads(path.read_text())
    return {
        "environment": environment,
        "source": f"terraform/{environment}: {task['source']} (terraform test, run {RUN})",
        "cpu": task["cpu"],
        "memory": task["memory"],
        "container": app_container(task["containerDefinitions"], task["appContainer"]),
    }


def app_container(containers, name):
    """The app's container among the task's: the one the root's container_name output names.
    Sidecars (the metrics collector) are not what the checks run."""
    named = [c for c in containers if c.get("name") == name]
    if len(named) != 1:
        raise TaskDefError(f"expected one container named {name!r}, found {[c.get('name') for c in containers]}")
    return named[0]


def fact(facts, path):
    """facts at a dotted path (list indexes as numbers); TaskDefError if absent."""
    value = facts
    for key in path.split("."):
        if isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        elif isinstance(value, dict) and key in value:
            value = value[key]
        else:
            raise TaskDefError(f"the task definition has no {path}")
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
    c = facts["container"]
    args, notes = [], []
    if fact(facts, "container.readonlyRootFilesystem") is True:
        args.append("--read-only")
    if c.get("user") is not None:
        args += ["--user", str(c["user"])]
    for i, _ in enumerate(c.get("environment") or []):
        args += ["--env", f"{fact(facts, f'container.environment.{i}.name')}={fact(facts, f'container.environment.{i}.value')}"]
    args += ["--stop-timeout", str(int(fact(facts, "container.stopTimeout")))]
    if "healthCheck" in c:
        # ECS's defaults for what the task leaves out.
        health = {"interval": 30, "timeout": 5, "retries": 3, "startPeriod": 0, **c["healthCheck"]}
        args += [
            "--health-interval", f"{int(health['interval'])}s",
            "--health-timeout", f"{int(health['timeout'])}s",
            "--health-retries", str(int(health["retries"])),
            "--health-start-period", f"{int(health['startPeriod'])}s",
        ]
    else:
        # ECS runs no health check the task does not define, whatever the image says.
        args.append("--no-healthcheck")
    for i, _ in enumerate(c.get("ulimits") or []):
        name = fact(facts, f"container.ulimits.{i}.name")
        soft = int(fact(facts, f"container.ulimits.{i}.softLimit"))
        hard = int(fact(facts, f"container.ulimits.{i}.hardLimit"))
        if name == "nofile" and hard > nofile_limit:
            notes.append(f"ulimit nofile {soft}:{hard} capped at this host's hard limit {nofile_limit}")
            soft, hard = min(soft, nofile_limit), nofile_limit
        args += ["--ulimit", f"{name}={soft}:{hard}"]
    if facts.get("cpu") is not None:
        args += ["--cpus", f"{int(facts['cpu']) / 1024:g}"]
    if facts.get("memory") is not None:
        args += ["--memory", f"{int(facts['memory'])}m"]
    log = c.get("logConfiguration")
    if isinstance(log, dict) and log.get("logDriver") not in (None, "json-file"):
        notes.append(f"log driver {log.get('logDriver')} replaced by json-file (docker logs)")
    notes.append("network awsvpc replaced by a bridge with the port published on 127.0.0.1")
    return args, notes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("render").add_argument("out", type=Path)
    args = parser.parse_args(argv)
    try:
        task = render(sys.stdin)
    except TaskDefError as e:
        print(f"taskdef: {e}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(task, indent=2) + "\n")
    print(f"taskdef: {task['source']} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
