"""Tests of taskdef.py: the HCL subset it reads, how it follows var./local. through module
calls, the docker arguments it derives, and that it still reads this repository's Terraform.

Run: python3 -m unittest discover -s scripts/container -p 'test_*.py'
"""

import tempfile
import textwrap
import unittest
from pathlib import Path

import taskdef
from taskdef import Module, Ref, Unknown, parse


class ParseTests(unittest.TestCase):
    def test_attributes_blocks_and_the_three_comment_styles(self):
        body = parse(
            textwrap.dedent(
                """
                # a comment
                a = 1 // another
                /* a block
                   comment */ b = "two"
                resource "aws_x" "y" {
                  c = true
                  nested {
                    d = null
                  }
                }
                """
            )
        )
        self.assertEqual(body.attrs, {"a": 1, "b": "two"})
        (block,) = body.find("resource", "aws_x", "y")
        self.assertEqual(block.body.attrs, {"c": True})
        self.assertEqual(block.body.find("nested")[0].body.attrs, {"d": None})

    def test_objects_take_newlines_or_commas_and_both_key_styles(self):
        body = parse('o = {\n  a = 1\n  "b": [1, 2,\n 3,]\n  c = { d = "e" }, f = -2\n}\n')
        self.assertEqual(body.attrs["o"], {"a": 1, "b": [1, 2, 3], "c": {"d": "e"}, "f": -2})

    def test_templates_and_heredocs_with_interpolation_are_unknown(self):
        body = parse('a = "x-${var.y}"\nb = "$${literal}"\nc = <<-EOT\n  ${z}\n  EOT\nd = <<EOT\nplain\nEOT\n')
        self.assertIsInstance(body.attrs["a"], Unknown)
        self.assertEqual(body.attrs["b"], "${literal}")
        self.assertIsInstance(body.attrs["c"], Unknown)
        self.assertEqual(body.attrs["d"], "plain\n")

    def test_a_compound_expression_is_unknown_and_the_next_attribute_still_parses(self):
        body = parse('a = var.n > 1 ? "x" : "y"\nb = [for s in var.l : upper(s)]\nc = 3\n')
        self.assertIsInstance(body.attrs["a"], Unknown)
        self.assertIsInstance(body.attrs["b"], Unknown)
        self.assertEqual(body.attrs["c"], 3)

    def test_compound_expressions_spanning_lines_inside_brackets(self):
        body = parse("l = [\n  1 +\n  2,\n  3\n]\n")
        self.assertEqual(len(body.attrs["l"]), 2)
        self.assertIsInstance(body.attrs["l"][0], Unknown)
        self.assertEqual(body.attrs["l"][1], 3)

    def test_references_and_calls(self):
        body = parse("a = local.x.y[0]\nb = jsonencode({ k = var.v })\n")
        self.assertEqual(body.attrs["a"], Ref(("local", "x", "y", 0)))
        self.assertEqual(body.attrs["b"].name, "jsonencode")

    def test_errors_name_the_line(self):
        with self.assertRaisesRegex(taskdef.ParseError, "line 2"):
            parse('a = 1\nb = "unterminated\n')


def write(root, files):
    for path, text in files.items():
        p = Path(root) / path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))


class ModuleTests(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        write(
            self.dir.name,
            {
                "env/main.tf": """
                    module "app" {
                      source = "../mod"
                      size   = var.size
                      name   = "fixed"
                    }
                """,
                "env/variables.tf": 'variable "size" {}\nvariable "unused" { default = 1 }\n',
                "env/terraform.tfvars": "size = 512\n",
                "mod/main.tf": """
                    locals {
                      twice = local.base
                      base  = "b"
                      both  = { size = var.size, level = var.level, name = var.name }
                    }
                    resource "r" "x" {
                      v = jsonencode([local.both, local.twice, data.something.id, var.nope])
                    }
                """,
                "mod/variables.tf": """
                    variable "size" {}
                    variable "level" { default = "info" }
                    variable "name" {}
                    variable "nope" {}
                """,
            },
        )

    def tearDown(self):
        self.dir.cleanup()

    def test_values_come_from_tfvars_defaults_call_arguments_and_locals(self):
        mod = Module.root(Path(self.dir.name) / "env").module("app")
        value = mod.eval(mod.resource("r", "x").attrs["v"])
        self.assertEqual(value[0], {"size": 512, "level": "info", "name": "fixed"})
        self.assertEqual(value[1], "b")
        self.assertIsInstance(value[2], Unknown)  # a data source: not evaluated
        self.assertIsInstance(value[3], Unknown)  # declared, no value, no default

    def test_tostring_of_a_known_primitive(self):
        mod = Module.root(Path(self.dir.name) / "env").module("app")
        body = parse('a = tostring(var.size)\nb = tostring(1.5)\nc = tostring(true)\nd = tostring("s")\ne = tostring(var.nope)\n')
        self.assertEqual([mod.eval(body.attrs[k]) for k in "abcd"], ["512", "1.5", "true", "s"])
        self.assertIsInstance(mod.eval(body.attrs["e"]), Unknown)

    def test_a_missing_module_or_resource_is_an_error(self):
        root = Module.root(Path(self.dir.name) / "env")
        with self.assertRaises(taskdef.ParseError):
            root.module("other")
        with self.assertRaises(taskdef.ParseError):
            root.module("app").resource("r", "missing")


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

    def test_a_needed_fact_that_is_missing_or_unknown_fails_by_name(self):
        with self.assertRaisesRegex(taskdef.TaskDefError, "container.stopTimeout"):
            taskdef.run_args(with_container(stopTimeout=None), 20000)
        with self.assertRaisesRegex(taskdef.TaskDefError, "container.stopTimeout.*local.x"):
            taskdef.run_args(with_container(stopTimeout={"unknown": "local.x"}), 20000)

    def test_the_data_mount_is_the_one_writable_mount(self):
        self.assertEqual(taskdef.data_mount(FACTS), "/data")
        two = with_container(mountPoints=FACTS["container"]["mountPoints"] * 2)
        with self.assertRaises(taskdef.TaskDefError):
            taskdef.data_mount(two)


class ThisRepositoryTests(unittest.TestCase):
    """The reader still follows this repository's Terraform: it fails here, not in CI's
    container run, when a change takes a needed fact out of its reach."""

    def test_every_environment_yields_docker_arguments(self):
        for env in ("staging", "production"):
            with self.subTest(env=env):
                facts = taskdef.read_task(environment=env)
                args, _ = taskdef.run_args(facts, nofile_limit=20000)
                self.assertIn("--read-only", args)
                self.assertEqual(taskdef.data_mount(facts), "/data")
                self.assertEqual(taskdef.container_port(facts), 8080)
                command = taskdef.fact(facts, "container.healthCheck.command")
                self.assertEqual(command[0], "CMD")
                self.assertIsInstance(facts["cpu"], int)
                self.assertIsInstance(facts["memory"], int)


if __name__ == "__main__":
    unittest.main()


class AppContainerTests(unittest.TestCase):
    """A sidecar beside the app (the metrics collector) must not be mistaken for it."""

    def test_the_container_named_like_the_app_is_picked_wherever_it_is(self):
        app = {"name": "hello-birthday", "essential": True}
        sidecar = {"name": "metrics-collector", "essential": False}
        self.assertIs(taskdef.app_container([sidecar, app], "hello-birthday"), app)
        self.assertIs(taskdef.app_container([app, sidecar], "hello-birthday"), app)

    def test_no_container_or_two_of_that_name_fail_naming_them(self):
        with self.assertRaisesRegex(taskdef.TaskDefError, "metrics-collector"):
            taskdef.app_container([{"name": "metrics-collector"}], "hello-birthday")
        with self.assertRaises(taskdef.TaskDefError):
            taskdef.app_container([{"name": "a"}, {"name": "a"}], "a")
        with self.assertRaises(taskdef.TaskDefError):
            taskdef.app_container([{"name": "a"}], Unknown("local.container_name"))

    def test_this_repositorys_task_definitions_yield_the_app_container(self):
        for env in ("staging", "production"):
            with self.subTest(env=env):
                facts = taskdef.read_task(environment=env)
                self.assertEqual(facts["container"]["name"], "hello-birthday")
                self.assertTrue(facts["container"]["essential"])
                self.assertEqual(taskdef.container_port(facts), 8080)
