"""Task start latency: RunTask -> RUNNING on Dockyard against ``docker run -d``.

    .venv/bin/python bench/task_start/run.py [--repeat 15] [--pull-behavior prefer-cached]
                                             [--poll-ms 20] [--profile DIR]

Starts ``dockyard server`` and one ``dockyard agent`` on the shared Docker Engine
(DOCKER_HOST, else the one ``bin/test`` leaves at .dockyard/docker/docker.sock; this
never starts a dockerd), pushes a FROM scratch busybox image to Dockyard's registry
(so it is also cached on the host: a pull is a cache hit), registers a task definition
of one container (``sleep 3600``, bridge, memory 64) and then, alternating between the
two so that drift hits both alike, measures:

- Dockyard: RunTask, then DescribeTasks every ``--poll-ms`` until lastStatus is
  RUNNING, timed from the client; and the task's own timestamps (createdAt,
  pullStartedAt, pullStoppedAt, startedAt) with Docker's create and start events of
  its container, which split the time into dispatch, pull, create, start and report;
- docker: ``docker run -d`` with the same image, command and memory limit, timed until
  it returns and until ``docker inspect`` says running, and from its create event to
  its start event.

Fast polling costs CPU (boto3 and the server) that dockerd would otherwise have on a
small host; ``RunTask sent -> startedAt`` (the server's clock, same host) is the figure
polling does not round up.

Each task is stopped (ECS_CONTAINER_STOP_TIMEOUT=1s: ``sleep`` as PID 1 ignores
SIGTERM) and each docker container removed before the next run. Prints medians and
the ratio Dockyard/docker against the goal (<= 1.3x). ``--profile DIR`` records the
agent and the server with py-spy (``pip install py-spy``) during the Dockyard runs.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import docker
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # run as a script: tests/ has the server harness

from tests.live import KEY, REGION, SECRET, LiveServer  # noqa: E402

GOAL = 1.3
SHARED_ENGINE = ROOT / ".dockyard" / "docker" / "docker.sock"
LOCAL_IMAGE = "dockyard-bench/busybox:latest"
COMMAND = ["sleep", "3600"]
MEMORY_MIB = 64
WARMUP = 2  # runs of each kind not counted: first pulls, first imports, cold caches
WAIT = 60.0  # seconds any one state may take


@dataclass
class Samples:
    """Seconds per run, by measurement name."""

    values: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, seconds: float) -> None:
        self.values.setdefault(name, []).append(seconds)

    def median_ms(self, name: str) -> float:
        return statistics.median(self.values[name]) * 1000

    def spread_ms(self, name: str) -> str:
        runs = sorted(self.values[name])
        return f"{runs[0] * 1000:.0f}-{runs[-1] * 1000:.0f}"


# Set-up ---------------------------------------------------------------------------------


class EngineEvents:
    """When Docker created and started each container, from its event stream."""

    def __init__(self) -> None:
        self._api = docker.APIClient(**docker.utils.kwargs_from_env())
        filters = {"type": "container", "event": ["create", "start"]}
        self._stream = self._api.events(decode=True, filters=filters)
        self._times: dict[tuple[str, str], float] = {}
        self._seen = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        with contextlib.suppress(Exception):  # the stream ends when closed
            for event in self._stream:
                with self._seen:
                    self._times[(event["id"], event["Action"])] = event["timeNano"] / 1e9
                    self._seen.notify_all()

    def at(self, container_id: str, action: str) -> float | None:
        """Epoch seconds of the event; waits a little, as events trail the API's answer."""
        with self._seen:
            self._seen.wait_for(lambda: (container_id, action) in self._times, timeout=5)
            return self._times.get((container_id, action))

    def close(self) -> None:
        self._stream.close()
        self._api.close()


@dataclass
class Rig:
    ecs: Any  # boto3 ECS client
    api: Any  # docker.APIClient
    cluster: str
    family: str
    image: str
    label: str  # KEY=VALUE on the docker peer's containers
    poll: float  # seconds between DescribeTasks
    events: EngineEvents


def use_shared_engine() -> None:
    """DOCKER_HOST for this process and its children: as set, else the system socket,
    else the engine bin/test leaves running. Never a dockerd of our own."""
    if "DOCKER_HOST" in os.environ or Path("/var/run/docker.sock").exists():
        return
    if not SHARED_ENGINE.exists():
        sys.exit(f"no Docker engine: set DOCKER_HOST, or run bin/test to start {SHARED_ENGINE}")
    os.environ["DOCKER_HOST"] = f"unix://{SHARED_ENGINE}"


def build_busybox(api: Any, workdir: Path) -> None:
    """FROM scratch + the host's static busybox, unless the image is there already."""
    if api.images(name=LOCAL_IMAGE):
        return
    context = workdir / "image"
    context.mkdir()
    shutil.copy(shutil.which("busybox") or "/bin/busybox", context / "busybox")
    (context / "Dockerfile").write_text(
        'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
    )
    for chunk in api.build(path=str(context), tag=LOCAL_IMAGE, rm=True, decode=True):
        if "error" in chunk:
            sys.exit(f"building {LOCAL_IMAGE}: {chunk['error']}")


def push(api: Any, server: LiveServer) -> str:
    """The image in Dockyard's registry (and, under that name, on the host)."""
    ecr = client(server, "ecr")
    ecr.create_repository(repositoryName="bench/busybox")
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    user, _, password = base64.b64decode(token).decode().partition(":")
    repository = f"127.0.0.1:{server.port}/bench/busybox"
    api.tag(LOCAL_IMAGE, repository, "latest")
    auth = {"username": user, "password": password}
    for chunk in api.push(repository, "latest", stream=True, decode=True, auth_config=auth):
        if "error" in chunk:
            sys.exit(f"pushing {repository}: {chunk['error']}")
    return f"{repository}:latest"


def client(server: LiveServer, service: str) -> Any:
    """A plain boto3 client: no response checking, so the client costs what a user's does."""
    return boto3.client(
        service,
        endpoint_url=server.endpoint,
        region_name=REGION,
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        config=Config(retries={"max_attempts": 1}),
    )


@contextmanager
def agent(server: LiveServer, workdir: Path, cluster: str, behavior: str) -> Iterator[int]:
    """``dockyard agent`` as a user runs it; yields its pid once its instance is connected."""
    config = workdir / "ecs.config"
    config.write_text(
        f"ECS_CLUSTER={cluster}\nECS_DATADIR={workdir / 'agent'}\n"
        f"ECS_IMAGE_PULL_BEHAVIOR={behavior}\nECS_CONTAINER_STOP_TIMEOUT=1s\n"
    )
    env = os.environ | {"AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET}
    env["AWS_REGION"] = REGION
    log_path = workdir / "agent.log"
    command = [sys.executable, "-m", "dockyard.cli", "agent", "--server", server.endpoint]
    command += ["--metadata-port", "0"]  # 51679 may be taken by another agent
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*command, "--config", str(config)], stdout=log, stderr=subprocess.STDOUT, env=env
        )
    try:
        ecs = client(server, "ecs")
        deadline = time.monotonic() + WAIT
        while not connected(ecs, cluster):
            if process.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"the agent did not connect:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield process.pid
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def connected(ecs: Any, cluster: str) -> bool:
    arns = ecs.list_container_instances(cluster=cluster)["containerInstanceArns"]
    if not arns:
        return False
    described = ecs.describe_container_instances(cluster=cluster, containerInstances=arns)
    return any(i["agentConnected"] for i in described["containerInstances"])


@contextmanager
def profiling(out: Path | None, targets: dict[str, int]) -> Iterator[None]:
    """py-spy on each process while the block runs; speedscope files in ``out``."""
    if out is None:
        yield
        return
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        sys.exit("--profile needs py-spy on PATH (pip install py-spy)")
    out.mkdir(parents=True, exist_ok=True)
    spies = [
        subprocess.Popen(
            [
                *(spy, "record", "--pid", str(pid), "--rate", "200", "--nonblocking"),
                *("--format", "speedscope", "--output", str(out / f"{name}.speedscope.json")),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in targets.items()
    ]
    try:
        yield
    finally:
        for process in spies:
            process.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
        for process in spies:
            process.wait(60)
        print(f"profiles in {out} (open them at https://www.speedscope.app)", file=sys.stderr)


# One run of each --------------------------------------------------------------------------


def dockyard_run(rig: Rig) -> dict[str, float]:
    ecs, cluster = rig.ecs, rig.cluster
    wall, started = time.time(), time.perf_counter()
    answer = ecs.run_task(cluster=cluster, taskDefinition=rig.family, count=1)
    returned = time.perf_counter()
    if answer.get("failures") or not answer.get("tasks"):
        sys.exit(f"RunTask failed: {answer.get('failures')}")
    arn = answer["tasks"][0]["taskArn"]
    while True:
        task = ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]
        if task["lastStatus"] == "RUNNING":
            running = time.perf_counter()
            break
        if task["lastStatus"] == "STOPPED" or running_late(started):
            sys.exit(f"task did not start: {task.get('stoppedReason')} ({task['lastStatus']})")
        time.sleep(rig.poll)
    stop(rig, arn)
    times = {"RunTask returns": returned - started, "RUNNING seen by the client": running - started}
    # One host, one clock: createdAt and startedAt are the server's, the pull times the
    # agent's, the create and start events Docker's.
    runtime_id = task["containers"][0].get("runtimeId")
    stamps = [
        task.get("createdAt"),
        task.get("pullStartedAt"),
        task.get("pullStoppedAt"),
        *(rig.events.at(runtime_id, action) for action in ("create", "start")),
        task.get("startedAt"),
    ]
    if None in stamps:
        return times
    created, pull_started, pull_stopped, create, start, started_at = (
        s.timestamp() if isinstance(s, datetime) else float(s) for s in stamps
    )
    return times | {
        "RunTask sent -> startedAt (the server's RUNNING)": started_at - wall,
        "server: createdAt -> startedAt": started_at - created,
        "  createdAt -> pullStartedAt (dispatch)": pull_started - created,
        "  pullStartedAt -> pullStoppedAt (pull)": pull_stopped - pull_started,
        "  pullStoppedAt -> create event (build the spec, create)": create - pull_stopped,
        "  create event -> start event (start)": start - create,
        "  start event -> startedAt (inspect, report)": started_at - start,
        "  startedAt -> client sees RUNNING": wall + (running - started) - started_at,
    }


def stop(rig: Rig, arn: str) -> None:
    """Stop the task and wait until it is STOPPED (not timed)."""
    rig.ecs.stop_task(cluster=rig.cluster, task=arn, reason="bench")
    started = time.perf_counter()
    while (
        rig.ecs.describe_tasks(cluster=rig.cluster, tasks=[arn])["tasks"][0]["lastStatus"]
        != "STOPPED"
    ):
        if running_late(started):
            sys.exit(f"{arn} did not stop")
        time.sleep(0.1)


def docker_run(rig: Rig) -> dict[str, float]:
    run = ["docker", "run", "-d", "--network", "bridge", "--memory", f"{MEMORY_MIB}m"]
    started = time.perf_counter()
    container_id = subprocess.run(
        [*run, "--label", rig.label, rig.image, *COMMAND],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    returned = time.perf_counter()
    inspect = ["docker", "inspect", "--format", "{{.State.Running}}", container_id]
    while subprocess.run(inspect, capture_output=True, text=True).stdout.strip() != "true":
        if running_late(started):
            sys.exit(f"docker container {container_id} did not run")
        time.sleep(0.02)
    running = time.perf_counter()
    subprocess.run(["docker", "rm", "-f", container_id], check=True, capture_output=True)
    times = {
        "docker run -d returns": returned - started,
        "docker inspect says running": running - started,
    }
    create, start = (rig.events.at(container_id, action) for action in ("create", "start"))
    if create is not None and start is not None:
        times["  docker run: create event -> start event"] = start - create
    return times


def running_late(started: float) -> bool:
    return time.perf_counter() - started > WAIT


# The run ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument(
        "--pull-behavior", default="prefer-cached", choices=["default", "prefer-cached", "once"]
    )
    parser.add_argument("--poll-ms", type=float, default=20.0, help="DescribeTasks interval")
    parser.add_argument("--profile", type=Path, help="record py-spy profiles into this directory")
    args = parser.parse_args()
    if shutil.which("docker") is None:
        sys.exit("the docker CLI is needed: apt-get install docker.io")
    use_shared_engine()
    api = docker.APIClient(**docker.utils.kwargs_from_env())
    run_id = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory(prefix="bench-task-start-") as tmp:
        workdir = Path(tmp)
        build_busybox(api, workdir)
        server = LiveServer(workdir / "dockyard").start()
        rig = Rig(
            ecs=client(server, "ecs"),
            api=api,
            cluster=f"bench-{run_id}",
            family=f"bench-sleep-{run_id}",
            image="",
            label=f"dockyard-bench={run_id}",
            poll=args.poll_ms / 1000,
            events=EngineEvents(),
        )
        try:
            rig.image = push(api, server)
            rig.ecs.create_cluster(clusterName=rig.cluster)
            container = {"name": "sleep", "image": rig.image, "command": COMMAND}
            rig.ecs.register_task_definition(
                family=rig.family,
                networkMode="bridge",
                containerDefinitions=[{**container, "memory": MEMORY_MIB}],
            )
            with agent(server, workdir, rig.cluster, args.pull_behavior) as agent_pid:
                assert server.process is not None
                pids = {"agent": agent_pid, "server": server.process.pid}
                samples = measure(rig, args.repeat, args.profile, pids)
        finally:
            server.stop()
            rig.events.close()
            cleanup(rig)
    report(samples, args)


def measure(rig: Rig, repeat: int, profile: Path | None, pids: dict[str, int]) -> Samples:
    samples = Samples()
    for _ in range(WARMUP):
        dockyard_run(rig)
        docker_run(rig)
    with profiling(profile, pids):
        for repetition in range(repeat):
            # Who goes first alternates, so neither always follows the other's stop.
            runs = [dockyard_run, docker_run] if repetition % 2 == 0 else [docker_run, dockyard_run]
            for run in runs:
                for name, seconds in run(rig).items():
                    samples.add(name, seconds)
            ours = samples.values["RUNNING seen by the client"][-1]
            theirs = samples.values["docker run -d returns"][-1]
            print(
                f"  run {repetition + 1}: Dockyard {ours * 1000:.0f} ms, docker run -d "
                f"{theirs * 1000:.0f} ms",
                file=sys.stderr,
            )
    return samples


def cleanup(rig: Rig) -> None:
    """Remove every container this run made (the agent's too: it is gone)."""
    for selector in (f"com.amazonaws.ecs.task-definition-family={rig.family}", rig.label):
        for summary in rig.api.containers(all=True, filters={"label": selector}):
            rig.api.remove_container(summary["Id"], v=True, force=True)
    if rig.image:
        rig.api.remove_image(rig.image)  # an untag: the local image stays


def report(samples: Samples, args: argparse.Namespace) -> None:
    print(
        f"\nmedian of {args.repeat} runs in ms (min-max), ECS_IMAGE_PULL_BEHAVIOR="
        f"{args.pull_behavior}, DescribeTasks every {args.poll_ms:g} ms"
    )
    for name in samples.values:
        print(f"  {name:56}{samples.median_ms(name):8.1f}   ({samples.spread_ms(name)})")
    print(f"\nDockyard/docker (goal <= {GOAL}x)")
    for ours, theirs in (
        ("RUNNING seen by the client", "docker inspect says running"),
        ("RUNNING seen by the client", "docker run -d returns"),
        ("RunTask sent -> startedAt (the server's RUNNING)", "docker run -d returns"),
    ):
        if ours in samples.values:
            ratio = samples.median_ms(ours) / samples.median_ms(theirs)
            verdict = "met" if ratio <= GOAL else "MISSED"
            print(f"  {ratio:5.2f}x  {verdict:6}  {ours} / {theirs}")


if __name__ == "__main__":
    main()
