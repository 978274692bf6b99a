"""Tests of taskdef.py: the task definition it takes out of `terraform test -json -verbose`,
the app container it picks, and the docker arguments it derives.

Run: python3 -m unittest discover -s scripts/container -p 'test_*.py'
"""

import io
import json
import os
import tempfile
import unittest

import taskdef

APP = {"name": "hello-birthday", "essential": True, "stopTimeout": 30}
SIDECAR = {"name": "metrics-collector", "essential": False}


def plan(after, outputs=None, address="module.app.module.service.aws_ecs_task_definition.app"):
    change = {"address": address, "type": "aws_ecs_task_definition", "change": {"after": after}}
    return {"resource_changes": [change], "output_changes": outputs or {"container_name": {"after": "hello-birthday"}}}


def stream(*messages, status="pass", run="task_definition", test_plan=None):
    lines = [{"type": "test_run", "@message": f'  "{run}"... pass', "test_run": {"progress": "complete"}},
             {"type": "test_run", "@message": "  ... in progress", "test_run": {"progress": "running"}}]
    if test_plan is not None:
        lines.append({"type": "test_plan", "@testrun": run, "@message": "printing plan", "test_plan": test_plan})
    lines += list(messages) + [{"type": "test_summary", "@message": "Success!", "test_summary": {"status": status}}]
    return [json.dumps(m) for m in lines]


TASK = {"family": "f", "cpu": "512", "memory": "1024", "container_definitions": json.dumps([SIDECAR, APP])}


class RenderTests(unittest.TestCase):
    def render(self, lines):
        out = io.StringIO()
        return taskdef.render(lines, out), out.getvalue()

    def test_the_planned_task_definition_with_the_app_container_named_by_the_root(self):
        task, printed = self.render(stream(test_plan=plan(TASK)))
        self.assertEqual(task["containerDefinitions"], [SIDECAR, APP])
        self.assertEqual((task["cpu"], task["memory"], task["appContainer"]), (512, 1024, "hello-birthday"))
        self.assertIn('"task_definition"... pass', printed)
        self.assertNotIn("in progress", printed)  # progress ticks are left out
        self.assertNotIn("printing plan", printed)

    def test_a_failed_test_fails_and_its_diagnostics_are_printed(self):
        diag = {"type": "diagnostic", "@message": "Error: x", "diagnostic": {
            "severity": "error", "summary": "Test assertion failed", "detail": "why",
            "range": {"filename": "tests/p.tftest.hcl", "start": {"line": 7}}}}
        out = io.StringIO()
        with self.assertRaisesRegex(taskdef.TaskDefError, "fail"):
            taskdef.render(stream(diag, status="fail", test_plan=plan(TASK)), out)
        self.assertIn("error: Test assertion failed (tests/p.tftest.hcl:7)\n  why", out.getvalue())

    def test_no_plan_of_the_run_or_an_unknown_definition_fails(self):
        with self.assertRaisesRegex(taskdef.TaskDefError, "no plan"):
            self.render(stream(run="other", test_plan=plan(TASK)))
        with self.assertRaisesRegex(taskdef.TaskDefError, "unknown"):
            self.render(stream(test_plan=plan({**TASK, "container_definitions": None})))

    def test_load_picks_the_named_container_beside_a_sidecar(self):
        with tempfile.TemporaryDirectory() as d:
            task, _ = self.render(stream(test_plan=plan(TASK)))
            with open(os.path.join(d, "staging.json"), "w") as f:
                json.dump(task, f)
            facts = taskdef.load("staging", d)
        self.assertEqual(facts["container"], APP)
        self.assertEqual((facts["cpu"], facts["memory"]), (512, 1024))
        with self.assertRaisesRegex(taskdef.TaskDefError, "terraform-offline"):
            taskdef.load("staging", d)

    def test_no_container_or_two_of_that_name_fail_naming_them(self):
        with self.assertRaisesRegex(taskdef.TaskDefError, "metrics-collector"):
            taskdef.app_container([SIDECAR], "hello-birthday")
        with self.assertRaises(taskdef.TaskDefError):
            taskdef.app_container([APP, APP], "hello-birthday")


FACTS = {
    "cpu": 512,
    "memory": 1024,
    "container": {
        "environment": [{"name": "RUST_LOG", "value": "info"}],
        "readonlyRootFilesystem": True,
        "mountPoints": [{"sourceVolume": "data", "containerPath": "/data", "readOnly": False}],
        "portMappings": [{"containerPort": 8080}],
        "healthCheck": {"command": ["CMD", "/bin/x", "healthcheck"], "interval": 15, "retries": 3},
        "stopTimeout": 30,
        "ulimits": [{"name": "nofile", "softLimit": 65536, "hardLimit": 65536}],
        "logConfiguration": {"logDriver": "awslogs"},
    },
}


def with_container(**changes):
    facts = {**FACTS, "container": {**FACTS["container"], **changes}}
    for key, value in changes.items():
        if value is None:
            del facts["container"][key]
    return facts


class RunArgsTests(unittest.TestCase):
    def test_the_task_as_docker_run_arguments(self):
        args, notes = taskdef.run_args(FACTS, nofile_limit=20000)
        self.assertEqual(
            args,
            [
                "--read-only",
                "--env", "RUST_LOG=info",
                "--stop-timeout", "30",
                "--health-interval", "15s",
                "--health-timeout", "5s",  # ECS's default: the task leaves it out
                "--health-retries", "3",
                "--health-start-period", "0s",
                "--ulimit", "nofile=20000:20000",
                "--cpus", "0.5",
                "--memory", "1024m",
            ],
        )
        self.assertTrue(any("capped" in n for n in notes))
        self.assertTrue(any("awslogs" in n for n in notes))

    def test_a_limit_the_host_allows_is_kept(self):
        args, notes = taskdef.run_args(FACTS, nofile_limit=1 << 20)
        self.assertIn("nofile=65536:65536", args)
        self.assertFalse(any("capped" in n for n in notes))

    def test_no_health_check_in_the_task_means_none_at_all(self):
        args, _ = taskdef.run_args(with_container(healthCheck=None), nofile_limit=20000)
        self.assertIn("--no-healthcheck", args)
        self.assertNotIn("--health-interval", args)

    def test_a_writable_root_and_a_user_are_passed_on(self):
        args, _ = taskdef.run_args(with_container(readonlyRootFilesystem=False, user="1000:1000"), 20000)
        self.assertNotIn("--read-only", args)
        self.assertEqual(args[:2], ["--user", "1000:1000"])

    def test_a_needed_fact_that_is_missing_fails_by_name(self):
        with self.assertRaisesRegex(taskdef.TaskDefError, "container.stopTimeout"):
            taskdef.run_args(with_container(stopTimeout=None), 20000)

    def test_the_data_mount_is_the_one_writable_mount(self):
        self.assertEqual(taskdef.data_mount(FACTS), "/data")
        two = with_container(mountPoints=FACTS["container"]["mountPoints"] * 2)
        with self.assertRaises(taskdef.TaskDefError):
            taskdef.data_mount(two)


if __name__ == "__main__":
    unittest.main()
