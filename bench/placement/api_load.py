"""Placement throughput, parts (b) and (c): RunTask through the HTTP API.

(b) Dockyard on SQLite and on PostgreSQL (a private server from tests/postgres.py):
the cluster of part (a) is written straight through the Store (registering 5,000
instances one API call at a time would only time the set-up), then ``--clients``
threads, each with its own boto3 client, call RunTask with count 10 for the same
service, spread(zone) + binpack(memory) and the memberOf constraint, until
``--tasks`` tasks are placed. Tasks per second is wall-clock, the store's writes
included; every call must place all 10. PostgreSQL is ANALYZEd after the set-up, as
autovacuum would be within a minute. The server's own CPU per call is printed too
(PostgreSQL's processes not included).

All three servers run side by side, each with ``--rounds`` identical clusters; each
round loads SQLite, PostgreSQL and moto in turn, on a cluster of its own (so every
round starts from the same state), and each backend's median round counts: on a
shared 2-core machine one round can be 15% off the next, for moto as for Dockyard,
and a slow minute of the machine then falls on all three. Each round's clients run
in a fresh process.

(c) moto server in the same run, same calls, same clients. moto places first-fit,
ignores strategies and constraints and takes no attributes; it gets the same number
of instances, registered through its API (``--moto-instances`` to use fewer), with
its fixed 4096 CPU / 7482 MiB each. Printed as ratios: tasks per second, and server
CPU per call.

Client and servers share this machine's cores: on 2 cores the boto3 threads take
a good part of one.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import orjson
from botocore.config import Config
from sqlalchemy import text

from dockyard.scheduler.model import Instance
from dockyard.store.models import Attribute, Cluster, ContainerInstance
from dockyard.store.store import Store
from tests.live import KEY, REGION, SECRET, LiveServer, free_port
from tests.postgres import fresh_database, running_postgres

GOAL_TASKS_PER_S = 500
GOAL_VS_MOTO = 3.0
PER_CALL = 10
WARM_UP_CALLS = 3


def client(endpoint: str) -> Any:
    """A plain boto3 client, as a user's: no response checks, no retries."""
    return boto3.client(
        "ecs",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        config=Config(retries={"max_attempts": 1}, max_pool_connections=64),
    )


def run_task_params(constraint: str, strategies: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "cluster": "bench-1",
        "taskDefinition": "bench",
        "count": PER_CALL,
        "group": "service:bench",
        "placementStrategy": strategies,
        "placementConstraints": [{"type": "memberOf", "expression": constraint}],
    }


def prepare(ecs: Any, cpu: int, memory: int, clusters: list[str]) -> None:
    for name in clusters:
        ecs.create_cluster(clusterName=name)
    ecs.register_task_definition(
        family="bench",
        containerDefinitions=[{"name": "app", "image": "busybox", "cpu": cpu, "memory": memory}],
    )


def write_instances(store: Store, instances: list[Instance], name: str) -> None:
    """The engine's instances as stored records of cluster ``name``: documents in the
    wire shape, attributes in their table. Hand-registered (no Dockyard agent), so
    always connected."""
    cluster: Cluster | None = store.get_cluster("000000000000", REGION, name)
    assert cluster is not None
    attributes = []
    for n, instance in enumerate(instances):
        arn = f"arn:aws:ecs:{REGION}:000000000000:container-instance/{name}/{n:032x}"
        store.put_container_instance(
            ContainerInstance(
                arn=arn,
                account_id="000000000000",
                region=REGION,
                cluster_arn=cluster.arn,
                ec2_instance_id=instance.ec2_instance_id,
                status="ACTIVE",
                registered_at=time.time(),
                document={
                    "version": 1,
                    "versionInfo": {"agentVersion": instance.agent_version},
                    "registeredResources": _wire(instance, "registered"),
                    "remainingResources": _wire(instance, "remaining"),
                },
            )
        )
        attributes += [
            Attribute(cluster.arn, "container-instance", arn, name, value)
            for name, value in instance.attributes.items()
        ]
    store.put_attributes(attributes)
    if store.engine.dialect.name == "postgresql":
        # Statistics, as autovacuum gathers within a minute of such a change: without
        # them the planner guesses tables of this size are empty.
        with store.engine.begin() as conn:
            conn.execute(text("ANALYZE"))


def _wire(instance: Instance, which: str) -> list[dict[str, Any]]:
    r = getattr(instance, which)
    return [
        {"name": "CPU", "type": "INTEGER", "integerValue": r.cpu},
        {"name": "MEMORY", "type": "INTEGER", "integerValue": r.memory},
        {"name": "PORTS", "type": "STRINGSET", "stringSetValue": [str(p) for p in r.ports_tcp]},
        {"name": "PORTS_UDP", "type": "STRINGSET", "stringSetValue": []},
    ]


@dataclass(frozen=True)
class Measured:
    tasks_per_s: float
    cpu_ms_per_call: float  # the server process's own CPU (not PostgreSQL's)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(endpoint: str, pid: int, params: dict[str, Any], tasks: int, clients: int) -> Measured:
    """Tasks placed per second by ``clients`` threads calling RunTask until ``tasks``,
    in a process of their own: one round's clients leave nothing (garbage, pools) to
    the next round's, or to the next backend's."""
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=spawn) as pool:
        return pool.submit(_load, endpoint, pid, params, tasks, clients).result()


def _load(endpoint: str, pid: int, params: dict[str, Any], tasks: int, clients: int) -> Measured:
    calls = -(-tasks // PER_CALL)
    handed = iter(range(calls))
    lock = threading.Lock()
    errors: list[str] = []
    boto = [client(endpoint) for _ in range(clients)]
    for ecs in boto[:WARM_UP_CALLS]:  # first calls fill caches on both sides
        ecs.run_task(**params)

    def work(ecs: Any) -> None:
        while True:
            with lock:
                if next(handed, None) is None:
                    return
            answer = ecs.run_task(**params)
            if len(answer["tasks"]) != PER_CALL:
                errors.append(str(answer["failures"])[:300])

    threads = [threading.Thread(target=work, args=(ecs,)) for ecs in boto]
    cpu, started = cpu_seconds(pid), time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} calls placed fewer than {PER_CALL}: {errors[0]}")
    return Measured(calls * PER_CALL / seconds, 1000 * (cpu_seconds(pid) - cpu) / calls)


@contextmanager
def dockyard_server(database_url: str | None) -> Iterator[tuple[LiveServer, Store]]:
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-") as workdir:
        server = LiveServer(Path(workdir), database_url).start()
        store = Store.open(database_url, Path(workdir))
        try:
            yield server, store
        finally:
            store.close()
            server.stop()


@contextmanager
def moto_server() -> Iterator[tuple[str, int]]:
    port = free_port()
    moto = Path(sys.executable).with_name("moto_server")
    process = subprocess.Popen(
        [str(moto), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{endpoint}/moto-api/", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    sys.exit("moto_server did not start (pip install 'moto[server]')")
                time.sleep(0.2)
        yield endpoint, process.pid
    finally:
        process.terminate()
        process.wait(10)


def register_in_moto(endpoint: str, ecs: Any, count: int, clusters: list[str]) -> None:
    """moto registers only instances its EC2 knows: launch them there first (the same
    ones serve every cluster)."""
    ec2 = boto3.client(
        "ec2",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
    )
    image = ec2.describe_images()["Images"][0]["ImageId"]
    launched: list[str] = []
    while len(launched) < count:
        batch = min(500, count - len(launched))
        answer = ec2.run_instances(ImageId=image, MinCount=batch, MaxCount=batch)
        launched += [i["InstanceId"] for i in answer["Instances"]]
    for name in clusters:
        for instance_id in launched:
            document = orjson.dumps({"instanceId": instance_id, "region": REGION}).decode()
            ecs.register_container_instance(cluster=name, instanceIdentityDocument=document)


def run_api(
    instances: list[Instance],
    params: dict[str, Any],
    cpu: int,
    memory: int,
    tasks: int,
    clients: int,
    moto_instances: int,
    rounds: int,
) -> None:
    print(
        f"RunTask through the API: {len(instances)} instances, {tasks} tasks in calls of "
        f"{PER_CALL}, {clients} clients (boto3, one thread each), median of {rounds} rounds"
    )
    # A cluster per round, the same on every backend: each round starts from the same
    # state (moto's first-fit grows slower as its cluster fills).
    clusters = [f"bench-{n}" for n in range(1, rounds + 1)]
    targets: dict[str, tuple[str, int]] = {}  # backend -> (endpoint, server pid)
    with ExitStack() as running:
        postgres = running.enter_context(running_postgres())
        for backend, url in (("SQLite", None), ("PostgreSQL", fresh_database(postgres))):
            server, store = running.enter_context(dockyard_server(url))
            prepare(client(server.endpoint), cpu, memory, clusters)
            for name in clusters:
                write_instances(store, instances, name)
            assert server.process is not None
            targets[backend] = (server.endpoint, server.process.pid)
        endpoint, pid = running.enter_context(moto_server())
        ecs = client(endpoint)
        prepare(ecs, cpu, memory, clusters)
        started = time.perf_counter()
        register_in_moto(endpoint, ecs, moto_instances, clusters)
        took = time.perf_counter() - started
        print(
            f"  moto: {moto_instances} instances registered in each of {rounds} clusters "
            f"through its API in {took:.0f} s"
        )
        targets["moto"] = (endpoint, pid)
        # Rounds go round the backends, so a slower minute of the machine falls on all.
        measured: dict[str, list[Measured]] = {backend: [] for backend in targets}
        for name in clusters:
            for backend, (endpoint, pid) in targets.items():
                load_params = {**params, "cluster": name}
                measured[backend].append(load(endpoint, pid, load_params, tasks, clients))
    results = {backend: median_round(backend, found) for backend, found in measured.items()}
    for backend in ("SQLite", "PostgreSQL"):
        report(f"(b) Dockyard on {backend}", results[backend], GOAL_TASKS_PER_S)
    report("(c) moto server", results["moto"], None)
    moto = results["moto"]
    for backend in ("SQLite", "PostgreSQL"):
        ours = results[backend]
        ratio = ours.tasks_per_s / moto.tasks_per_s
        verdict = "meets" if ratio >= GOAL_VS_MOTO else "misses"
        cpu = ours.cpu_ms_per_call / moto.cpu_ms_per_call
        print(
            f"  (c) Dockyard on {backend} / moto: {ratio:.2f}x the tasks/s "
            f"({verdict} {GOAL_VS_MOTO:.0f}x), {cpu:.1f}x the server CPU per call"
        )


def median_round(backend: str, measured: list[Measured]) -> Measured:
    """The median round by tasks per second (each printed, in the order run)."""
    print(f"  {backend} rounds: " + ", ".join(f"{m.tasks_per_s:,.0f}" for m in measured))
    return sorted(measured, key=lambda m: m.tasks_per_s)[len(measured) // 2]


def report(name: str, measured: Measured, goal: float | None) -> None:
    verdict = ""
    if goal is not None:
        verdict = f" ({'meets' if measured.tasks_per_s >= goal else 'misses'} {goal:,.0f})"
    print(
        f"  {name}: {measured.tasks_per_s:,.0f} tasks/s{verdict}, "
        f"server CPU {measured.cpu_ms_per_call:.1f} ms per call"
    )
