"""Service roll-out: UpdateService to steady state against the same roll-out by hand.

    .venv/bin/python bench/services/run.py [--tasks 20] [--agents 3] [--repeat 3]
                                           [--poll-ms 100]

Starts ``dockyard server`` and ``--agents`` ``dockyard agent`` processes on the shared
Docker Engine (DOCKER_HOST, else the one ``bin/test`` leaves at
.dockyard/docker/docker.sock; this never starts a dockerd), each declared as its own
instance in its own availability zone, pushes the FROM scratch busybox image to
Dockyard's registry (so it is cached on the host; the agents run with
ECS_IMAGE_PULL_BEHAVIOR=prefer-cached), creates a REPLICA service of ``--tasks`` tasks
(defaults: minimumHealthyPercent 100, maximumPercent 200) and waits until it is steady.
The by-hand peer starts the same number of plain containers. Then, alternating who
goes first, each repetition rolls both over to a new revision:

- Dockyard: UpdateService to the other revision of the task definition (REVISION=1 or
  2 in the environment), then DescribeServices every ``--poll-ms`` until the PRIMARY
  deployment is that revision and COMPLETED with runningCount N and no other
  deployment left, confirmed by ListTasks + DescribeTasks: exactly N tasks not
  STOPPED, all RUNNING, all of the new revision. Timed from the client; the server's
  "has reached a steady state." event time is printed too.
- by hand, as a shell user does it: ``docker run -d`` N times in a row (same image,
  command, memory limit, bridge network), then one ``docker stop`` of the N old
  containers. Also the same with the ``docker run``s spread over as many parallel
  workers as there are agents (the agents start their tasks concurrently).

Every container runs ``sh -c "trap 'exit 42' TERM; sleep 3600 & wait"``, so a stop is
quick on both sides. Prints medians and Dockyard/by-hand ratios.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import docker

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # run as a script: tests/ and bench/ have the harness

from bench.task_start.run import Samples, build_busybox, client, push, use_shared_engine  # noqa: E402
from tests.live import KEY, REGION, SECRET, LiveServer  # noqa: E402

SHELL = "trap 'exit 42' TERM; sleep 3600 & wait"
MEMORY_MIB = 32
WAIT = 300.0  # seconds a roll-out may take before the run is abandoned
STEADY = "has reached a steady state."


@dataclass
class Rig:
    ecs: Any
    cluster: str
    service: str
    revisions: list[str]  # task definition ARNs, rolled between
    current: int  # index into revisions of the one running now
    tasks: int
    poll: float
    image: str
    label: str  # KEY=VALUE on the by-hand containers
    workers: int
    old: list[str] = field(default_factory=list)  # the by-hand containers running now


# Set-up ---------------------------------------------------------------------------------


@contextmanager
def agent(
    server: LiveServer, workdir: Path, cluster: str, zone: str, memory: int
) -> Iterator[None]:
    """One ``dockyard agent`` declared as its own instance in ``zone``."""
    data = workdir / zone
    data.mkdir()
    config = data / "ecs.config"
    config.write_text(
        f"ECS_CLUSTER={cluster}\nECS_DATADIR={data / 'state'}\n"
        "ECS_IMAGE_PULL_BEHAVIOR=prefer-cached\nECS_CONTAINER_STOP_TIMEOUT=5s\n"
    )
    env = os.environ | {"AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET}
    env["AWS_REGION"] = REGION
    command = [sys.executable, "-m", "dockyard.cli", "agent", "--server", server.endpoint]
    command += ["--config", str(config), "--metadata-port", "0", "--availability-zone", zone]
    command += ["--cpu", "4096", "--memory", str(memory)]
    log_path = data / "agent.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        while not (data / "state" / "instance.json").exists():
            if process.poll() is not None or time.monotonic() > deadline:
                sys.exit(
                    f"the agent in {zone} did not register:\n{log_path.read_text()[-3000:]}\n"
                    f"server log:\n{server.log.read_text()[-3000:]}"
                )
            time.sleep(0.2)
        yield
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def register(rig_ecs: Any, family: str, image: str, revision: int) -> str:
    container = {
        "name": "app",
        "image": image,
        "memory": MEMORY_MIB,
        "entryPoint": ["sh", "-c"],
        "command": [SHELL],
        "environment": [{"name": "REVISION", "value": str(revision)}],
    }
    answer = rig_ecs.register_task_definition(
        family=family, networkMode="bridge", containerDefinitions=[container]
    )
    return str(answer["taskDefinition"]["taskDefinitionArn"])


# Dockyard ---------------------------------------------------------------------------------


def service_tasks(rig: Rig) -> list[dict[str, Any]]:
    arns: list[str] = []
    pages = rig.ecs.get_paginator("list_tasks")
    for desired in ("RUNNING", "STOPPED"):
        for page in pages.paginate(
            cluster=rig.cluster, serviceName=rig.service, desiredStatus=desired
        ):
            arns += page["taskArns"]
    tasks: list[dict[str, Any]] = []
    for start in range(0, len(arns), 100):
        answer = rig.ecs.describe_tasks(cluster=rig.cluster, tasks=arns[start : start + 100])
        tasks += answer["tasks"]
    return tasks


def settled(rig: Rig, target: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """The service and its live tasks when the roll-out to ``target`` is over, else None."""
    [service] = rig.ecs.describe_services(cluster=rig.cluster, services=[rig.service])["services"]
    deployments = service["deployments"]
    if len(deployments) != 1:
        return None
    [primary] = deployments
    if (primary["taskDefinition"], primary["rolloutState"]) != (target, "COMPLETED"):
        return None
    if primary["runningCount"] != rig.tasks:
        return None
    live = [t for t in service_tasks(rig) if t["lastStatus"] != "STOPPED"]
    if len(live) != rig.tasks:
        return None
    if any(t["lastStatus"] != "RUNNING" or t["taskDefinitionArn"] != target for t in live):
        return None
    return service, live


def wait_settled(
    rig: Rig, target: str, started: float
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    while True:
        found = settled(rig, target)
        if found is not None:
            return found
        if time.perf_counter() - started > WAIT:
            sys.exit(f"the roll-out to {target} did not finish in {WAIT:.0f} s")
        time.sleep(rig.poll)


def dockyard_rollout(rig: Rig) -> dict[str, float]:
    target_index = 1 - rig.current
    target = rig.revisions[target_index]
    wall, started = time.time(), time.perf_counter()
    rig.ecs.update_service(cluster=rig.cluster, service=rig.service, taskDefinition=target)
    service, tasks = wait_settled(rig, target, started)
    done = time.perf_counter() - started
    rig.current = target_index
    times = {"Dockyard: UpdateService -> steady (client)": done}
    # One host, one clock: the server's timestamps split the time.
    started_at = sorted(t["startedAt"].timestamp() - wall for t in tasks)
    times["  Dockyard: UpdateService sent -> first new task RUNNING"] = started_at[0]
    times["  Dockyard: UpdateService sent -> last new task RUNNING"] = started_at[-1]
    steady = [e for e in service["events"] if STEADY in e["message"]]
    if steady and steady[0]["createdAt"].timestamp() >= wall:
        times["  Dockyard: UpdateService sent -> steady-state event"] = (
            steady[0]["createdAt"].timestamp() - wall
        )
    return times


# By hand ------------------------------------------------------------------------------------


def docker_cli(*args: str) -> str:
    done = subprocess.run(["docker", *args], check=True, capture_output=True, text=True)
    return done.stdout.strip()


def start_container(rig: Rig) -> str:
    return docker_cli(
        "run", "-d", "--network", "bridge", "--memory", f"{MEMORY_MIB}m", "--label", rig.label,
        "--entrypoint", "sh", rig.image, "-c", SHELL,
    )  # fmt: skip


def hand_rollout(rig: Rig, workers: int) -> dict[str, float]:
    """N ``docker run -d`` (in a row, or over ``workers`` threads), then one
    ``docker stop`` of the N old containers; the stopped ones are removed untimed."""
    kind = "in a row" if workers == 1 else f"{workers} in parallel"
    started = time.perf_counter()
    if workers == 1:
        new = [start_container(rig) for _ in range(rig.tasks)]
    else:
        with ThreadPoolExecutor(workers) as pool:
            new = list(pool.map(lambda _: start_container(rig), range(rig.tasks)))
    ran = time.perf_counter()
    docker_cli("stop", *rig.old)
    done = time.perf_counter()
    docker_cli("rm", *rig.old)
    rig.old = new
    return {
        f"by hand ({kind}): run N + stop N": done - started,
        f"  by hand ({kind}): the N docker run -d": ran - started,
        f"  by hand ({kind}): docker stop of N": done - ran,
    }


# The run ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=20, help="tasks in the service")
    parser.add_argument("--agents", type=int, default=3, help="agents (instances, zones)")
    parser.add_argument("--repeat", type=int, default=3, help="timed roll-outs of each")
    parser.add_argument("--poll-ms", type=float, default=100.0, help="DescribeServices interval")
    args = parser.parse_args()
    use_shared_engine()
    api = docker.APIClient(**docker.utils.kwargs_from_env())
    run_id = uuid.uuid4().hex[:8]
    # Room for old and new tasks at a maximum of 200%, with a margin.
    memory = max(512, 3 * args.tasks * MEMORY_MIB // args.agents)
    with tempfile.TemporaryDirectory(prefix="bench-services-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        build_busybox(api, workdir)
        server = LiveServer(workdir / "dockyard").start()
        stack.callback(server.stop)
        ecs = client(server, "ecs")
        cluster, family = f"bench-{run_id}", f"bench-roll-{run_id}"
        rig = Rig(
            ecs=ecs, cluster=cluster, service=f"roll-{run_id}", revisions=[], current=0,
            tasks=args.tasks, poll=args.poll_ms / 1000, image="",
            label=f"dockyard-bench={run_id}", workers=args.agents,
        )  # fmt: skip
        stack.callback(cleanup, api, rig, family)
        rig.image = push(api, server)
        ecs.create_cluster(clusterName=cluster)
        for index in range(args.agents):
            stack.enter_context(agent(server, workdir, cluster, f"bench-{index + 1}", memory))
        rig.revisions = [register(ecs, family, rig.image, n) for n in (1, 2)]
        print(f"{args.agents} agents, {args.tasks} tasks: starting the service", file=sys.stderr)
        ecs.create_service(
            cluster=cluster, serviceName=rig.service, taskDefinition=rig.revisions[0],
            desiredCount=args.tasks,
        )  # fmt: skip
        wait_settled(rig, rig.revisions[0], time.perf_counter())
        rig.old = [start_container(rig) for _ in range(args.tasks)]
        samples = measure(rig, args.repeat)
    report(samples, args)


def measure(rig: Rig, repeat: int) -> Samples:
    samples = Samples()
    # One untimed round of each: first imports, first container of each kind.
    dockyard_rollout(rig)
    hand_rollout(rig, 1)
    for repetition in range(repeat):
        rounds: list[Callable[[Rig], dict[str, float]]] = [
            dockyard_rollout,
            partial(hand_rollout, workers=1),
        ]
        if rig.workers > 1:
            rounds.append(partial(hand_rollout, workers=rig.workers))
        if repetition % 2:
            rounds.reverse()
        for one in rounds:
            for name, seconds in one(rig).items():
                samples.add(name, seconds)
        ours = samples.values["Dockyard: UpdateService -> steady (client)"][-1]
        theirs = samples.values["by hand (in a row): run N + stop N"][-1]
        print(
            f"  run {repetition + 1}: Dockyard {ours:.2f} s, by hand {theirs:.2f} s",
            file=sys.stderr,
        )
    return samples


def cleanup(api: Any, rig: Rig, family: str) -> None:
    """Remove every container this run made (the agents' too: they are gone)."""
    for selector in (f"com.amazonaws.ecs.task-definition-family={family}", rig.label):
        for summary in api.containers(all=True, filters={"label": selector}):
            api.remove_container(summary["Id"], v=True, force=True)
    if rig.image:
        api.remove_image(rig.image)  # an untag: the local image stays


def report(samples: Samples, args: argparse.Namespace) -> None:
    print(
        f"\n{args.tasks} tasks on {args.agents} agents, median of {args.repeat} roll-outs "
        f"in seconds (min-max in ms), DescribeServices every {args.poll_ms:g} ms"
    )
    for name in samples.values:
        print(f"  {name:58}{samples.median_ms(name) / 1000:7.2f}   ({samples.spread_ms(name)})")
    ours = samples.median_ms("Dockyard: UpdateService -> steady (client)")
    print("\nDockyard / by hand")
    for theirs in (
        "by hand (in a row): run N + stop N",
        f"by hand ({args.agents} in parallel): run N + stop N",
    ):
        if theirs in samples.values:
            print(f"  {ours / samples.median_ms(theirs):5.2f}x  against {theirs}")


if __name__ == "__main__":
    main()
