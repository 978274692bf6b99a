"""What an instance of the rehearsal is. Both launchers have one interface: describe(),
prepare_data_dir(path), launch(slot, port, drain, data, log_path) (one instance serving on
127.0.0.1:port, drain delay `drain` s), signal_stop(slot) (what ECS does to stop a task:
SIGTERM, and the stop timeout runs), await_exit(slot, secs) -> (exit code, whether it exited by
itself within secs), log(slot), break_data_dir(path) (unusable under a running instance), and
cleanup(). Every process goes through the rehearsal's Processes, which ends them all on exit.
"""

import os
import resource
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "container"))
import taskdef  # noqa: E402  the ECS task definition as Terraform renders it
from rehearsal_kit import Failure  # noqa: E402

# Every container of the container scripts carries it (scripts/container/lib.sh's CI_LABEL).
CI_LABEL = "hello-birthday.ci"
SERVICE_UID = 65532


class Binary:
    """Processes of the release binary on the host, all on one data directory: the developer's
    path (no Docker engine, no root, no image build)."""

    def __init__(self, procs, binary):
        self.procs, self.binary, self.proc_of, self.log_of = procs, binary, {}, {}

    def describe(self):
        return f"instances of the release binary ({self.binary})"

    def prepare_data_dir(self, path):
        os.makedirs(path, exist_ok=True)

    def launch(self, slot, port, drain, data, log_path):
        self.log_of[slot] = log_path
        self.proc_of[slot] = self.procs.start(
            [self.binary, "--listen", f"127.0.0.1:{port}", "--data-dir", data,
             "--log-format", "json", "--drain-delay", str(drain)], log_path)

    def signal_stop(self, slot):
        self.proc_of[slot].terminate()

    def await_exit(self, slot, secs):
        return self.procs.stop(self.proc_of.pop(slot), secs, sig=None)

    def log(self, slot):
        with open(self.log_of[slot], errors="replace") as f:
            return f.read()

    def break_data_dir(self, path):
        # Gone, as if its mount were: every probe fails. Renamed away in one step (removed with
        # the work directory): removing it raced with a probe file the instance was creating
        # ("Directory not empty").
        os.rename(path, path + ".gone")

    def cleanup(self):
        pass


class Container:
    """Containers of the service's image, run as the ECS task definition says (read-only root,
    the task's environment, stopTimeout, health check, ulimits, CPU and memory), each
    publishing the container port on its slot's port on 127.0.0.1, all on one bind mount owned
    by 65532 (as the EFS access point makes it). Stopped as ECS stops a task: `docker stop -t
    <stopTimeout>` (SIGTERM, then SIGKILL when it runs out); the exit code is the container's.
    Needs an engine answering on DOCKER_HOST (run.sh's)."""

    def __init__(self, procs, image, stop_timeout):
        self.procs, self.image, self.stop_timeout = procs, image, stop_timeout
        self.run_label = f"hello-birthday.rehearsal={os.getpid()}"  # this run's, removed at exit
        self.name_of, self.stopper_of, self.launched = {}, {}, 0
        if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode:
            raise Failure(f"no image {image}")
        facts = taskdef.load()
        self.run_args, notes = taskdef.run_args(
            facts, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
        print("\n".join(f"taskdef: {note}" for note in notes), file=sys.stderr)
        self.data_path = taskdef.data_mount(facts)
        self.container_port = taskdef.container_port(facts)

    def describe(self):
        return f"containers of {self.image} (docker run {' '.join(self.run_args)})"

    def prepare_data_dir(self, path):
        os.makedirs(path, exist_ok=True)
        os.chown(path, SERVICE_UID, SERVICE_UID)

    def launch(self, slot, port, drain, data, log_path):
        self.launched += 1
        name = f"hb-roll-{os.getpid()}-{self.launched}-{slot}"
        run = subprocess.run(["docker", "run", "-d", "--name", name, "--label", CI_LABEL,
                              "--label", self.run_label, "-p", f"127.0.0.1:{port}:{self.container_port}",
                              "-v", f"{data}:{self.data_path}", *self.run_args,
                              "--env", f"DRAIN_DELAY_SECS={drain}", self.image],
                             stdout=subprocess.DEVNULL)
        if run.returncode:
            raise Failure(f"docker run for {slot} failed")
        self.name_of[slot] = name
        with open(log_path, "w") as f:  # names the container; its log is `docker logs`
            f.write(name + "\n")

    def signal_stop(self, slot):
        self.stopper_of[slot] = self.procs.start(
            ["docker", "stop", "-t", str(self.stop_timeout), self.name_of[slot]])

    def await_exit(self, slot, secs):
        name = self.name_of[slot]
        # `docker stop` itself SIGKILLs at the stop timeout; a little more for the engine.
        _, in_time = self.procs.stop(self.stopper_of.pop(slot), secs + 10, sig=None)
        if not in_time:
            subprocess.run(["docker", "kill", name], capture_output=True)
            return 137, False
        state = subprocess.run(["docker", "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}",
                                name], capture_output=True, text=True).stdout.split()
        return exit_of(state)

    def log(self, slot):
        return subprocess.run(["docker", "logs", self.name_of[slot]], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, errors="replace").stdout

    def break_data_dir(self, path):
        # The app runs as 65532: with mode 000 it can neither create nor open anything there,
        # as with a broken mount or access point. (Not from the start: the binary proves its
        # data directory writable at startup and exits 1 otherwise.)
        os.chmod(path, 0)

    def cleanup(self):
        ids = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={self.run_label}"],
                             capture_output=True, text=True).stdout.split()
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)


def exit_of(state):
    """`docker inspect`'s [status, exit code] of a stopped container -> (exit code, whether it
    exited by itself). 137 is docker stop's SIGKILL at the stop timeout: ECS would have killed
    the task."""
    if len(state) != 2 or state[0] != "exited":
        return -1, False
    return int(state[1]), state[1] != "137"


def make(kind, procs, binary, image, stop_timeout):
    return Binary(procs, binary) if kind == "binary" else Container(procs, image, stop_timeout)
