"""The fast layer's world for the service loop tests: a real store, the real ECS
handlers called in-process (clusters, instances, task definitions, StartTask),
services written as the API writes them (``store.services``), an injected clock, and
``Agent``, a simulated agent that moves tasks PENDING -> RUNNING or STOPPED through
``task_lifecycle`` as the real agent's reports would, after random delays.

``World`` is the fixture factory; ``World.run`` alternates loop passes and agent steps.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from dockyard.api import awsjson
from dockyard.api.agent_hub import AgentHub
from dockyard.api.context import RequestContext
from dockyard.api.identity import DEFAULT_IDENTITY, Identities
from dockyard.control.hub import ControlHub
from dockyard.control.loop import ServiceLoop
from dockyard.ecs import ECS
from dockyard.ecs.task_lifecycle import apply_task_change
from dockyard.ecs.task_shapes import ContainerChange, TaskChange
from dockyard.registry.auth import Tokens, load_or_create_key
from dockyard.registry.service import Registry
from dockyard.registry.storage.filesystem import FilesystemStorage
from dockyard.store.models import Service, ServiceDeployment, Task
from dockyard.store.store import Store

ACCOUNT, REGION = "000000000000", "eu-west-1"
ZONES = ("eu-west-1a", "eu-west-1b", "eu-west-1c")
_IDS = itertools.count(1)
HEALTH_CHECK_CAPABILITIES = (
    "com.amazonaws.ecs.capability.docker-remote-api.1.24",
    "ecs.capability.container-health-check",
)


def deployment_id() -> str:
    return f"ecs-svc/{next(_IDS):019d}"


def change(task: Task, status: str, stop_code: str | None = None, **fields: Any) -> TaskChange:
    return TaskChange(
        cluster=None, task=task.arn, status=status, reason=fields.get("reason"),
        stop_code=stop_code, containers=fields.get("containers", ()), pull_started_at=None,
        pull_stopped_at=None, execution_stopped_at=None,
    )  # fmt: skip


@dataclass
class Agent:
    """Every instance's agent at once. A task it first sees is picked up; after a delay
    it reaches RUNNING, or STOPPED (TaskFailedToStart) with ``fail_start``; a RUNNING
    task exits (EssentialContainerExited) with ``crash`` per step; a task told to stop
    is STOPPED after a delay. ``broken``: task definitions whose tasks never start."""

    world: World
    rng: random.Random
    fail_start: float = 0.0
    crash: float = 0.0
    max_delay: float = 3.0
    broken: set[str] = field(default_factory=set)
    health: dict[str, str] = field(default_factory=dict)  # task definition -> reported
    due: dict[str, float] = field(default_factory=dict)

    def step(self) -> None:
        world, now = self.world, self.world.now
        tasks = [t for t in world.tasks() if t.last_status != "STOPPED"]
        world.store.tasks.mark_picked_up((t.arn for t in tasks if t.picked_up_at is None), now)
        for task in tasks:
            when = self.due.setdefault(task.arn, now + self.rng.uniform(0, self.max_delay))
            if task.desired_status == "STOPPED":
                if now >= when:
                    self.report(task, change(task, "STOPPED"))
            elif task.last_status != "RUNNING":
                if now < when:
                    continue
                if task.task_definition_arn in self.broken or self.rng.random() < self.fail_start:
                    self.report(task, change(task, "STOPPED", "TaskFailedToStart"))
                else:
                    self.report(task, self.running(task))
                self.due.pop(task.arn)
            elif self.rng.random() < self.crash:
                self.report(task, change(task, "STOPPED", "EssentialContainerExited"))

    def running(self, task: Task) -> TaskChange:
        """RUNNING, with the health the agent saw when the definition has a check."""
        health = self.health.get(task.task_definition_arn)
        if health is None:
            return change(task, "RUNNING")
        app = ContainerChange("app", "RUNNING", health_status=health)
        return change(task, "RUNNING", containers=(app,))

    def report(self, task: Task, report: TaskChange) -> None:
        """Apply the report and wake the cluster, as SubmitTaskStateChange does."""
        now = self.world.now
        self.world.store.tasks.update([task.arn], lambda t: apply_task_change(t, report, now))
        self.world.control.wake(task.cluster_arn)


class World:
    """A cluster on a real store, the loop over it, and the clock they share."""

    def __init__(self, store: Store, data_dir: Path, cluster: str = "default") -> None:
        self.store = store
        self.now = 1_000_000.0
        self.control = ControlHub()
        self.agents = AgentHub()
        key = load_or_create_key(data_dir)
        self.registry = Registry(
            store=store.registry,
            storage=FilesystemStorage(data_dir / "registry"),
            tokens=Tokens(key, Identities([DEFAULT_IDENTITY])),
            address="127.0.0.1:1",
        )
        self.loop = ServiceLoop(
            store, registry=self.registry, agents=self.agents, control=self.control,
            lost_host_grace=300.0, clock=lambda: self.now,
        )  # fmt: skip
        self.cluster = cluster
        self.cluster_arn = self.api("CreateCluster", clusterName=cluster)["cluster"]["clusterArn"]
        self.agent = Agent(self, random.Random(0))

    def api(self, operation: str, **params: Any) -> Any:
        model, handler = ECS.find(operation)
        ctx = RequestContext(
            account_id=ACCOUNT, region=REGION, identity=DEFAULT_IDENTITY, store=self.store,
            now=self.now, registry=self.registry, agents=self.agents, control=self.control,
        )  # fmt: skip
        return orjson.loads(awsjson.call(model, handler, ctx, orjson.dumps(params)))

    def instance(
        self, zone: str, cpu: int = 4096, memory: int = 8192, *capabilities: str, **extra: Any
    ) -> str:
        found = self.api(
            "RegisterContainerInstance",
            cluster=self.cluster,
            totalResources=[
                {"name": "CPU", "type": "INTEGER", "integerValue": cpu},
                {"name": "MEMORY", "type": "INTEGER", "integerValue": memory},
            ],
            attributes=[
                {"name": "ecs.availability-zone", "value": zone},
                *({"name": name} for name in capabilities),
            ],
            **extra,
        )
        return str(found["containerInstance"]["containerInstanceArn"])

    def task_definition(self, family: str = "web", memory: int = 128, **extra: Any) -> str:
        container = {"name": "app", "image": "busybox", "memory": memory, **extra}
        found = self.api("RegisterTaskDefinition", family=family, containerDefinitions=[container])
        return str(found["taskDefinition"]["taskDefinitionArn"])

    def service(self, name: str, task_definition: str, desired: int = 0, **doc: Any) -> str:
        arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/{self.cluster}/{name}"
        config = doc.pop("deploymentConfiguration", {})
        document = {
            "taskDefinition": task_definition, "desiredCount": desired,
            "schedulingStrategy": doc.pop("schedulingStrategy", "REPLICA"), "launchType": "EC2",
            "deploymentConfiguration": config, "placementConstraints": [],
            "placementStrategy": [], "propagateTags": "NONE", "enableECSManagedTags": False,
            "deploymentController": {"type": "ECS"}, **doc,
        }  # fmt: skip
        service = Service(
            arn, ACCOUNT, REGION, self.cluster_arn, name, "ACTIVE", self.now, self.now, document, {}
        )
        created = self.store.services.create(
            service, [self.deployment(arn, task_definition, desired)]
        )
        assert created
        return arn

    def deployment(self, service_arn: str, task_definition: str, desired: int) -> ServiceDeployment:
        return ServiceDeployment(
            service_arn, deployment_id(), "PRIMARY", task_definition, desired, "IN_PROGRESS", "",
            0, self.now, self.now, {},
        )  # fmt: skip

    def update(self, service_arn: str, task_definition: str | None = None, **doc: Any) -> None:
        """UpdateService as the API does it: a new task definition makes a new PRIMARY."""

        def write(
            service: Service, deployments: tuple[ServiceDeployment, ...]
        ) -> tuple[Service, list[ServiceDeployment]]:
            document = {**service.document, **doc}
            changed: list[ServiceDeployment] = []
            if task_definition is not None:
                document["taskDefinition"] = task_definition
                changed = [
                    replace(d, status="ACTIVE") for d in deployments if d.status == "PRIMARY"
                ]
                changed.append(
                    self.deployment(service_arn, task_definition, document["desiredCount"])
                )
            return replace(service, document=document, updated_at=self.now), changed

        assert self.store.services.update(service_arn, write) is not None

    def tasks(self, service: str | None = None) -> list[Task]:
        """Every task of the cluster, or the service's (its group, started by it)."""
        page = self.store.tasks.list_tasks(self.cluster_arn, desired_status=None, limit=10_000)
        if service is None:
            return list(page.items)
        group = f"service:{service}"
        return [t for t in page.items if t.group == group and t.started_by is not None]

    def live(self, service: str) -> list[Task]:
        return [t for t in self.tasks(service) if t.last_status != "STOPPED"]

    def running(self, service: str) -> list[Task]:
        return [
            t for t in self.tasks(service)
            if t.last_status == "RUNNING" and t.desired_status == "RUNNING"
        ]  # fmt: skip

    def events(self, service_arn: str) -> list[str]:
        return [e.message for e in reversed(self.store.services.events(service_arn))]

    def deployments(self, service_arn: str) -> list[ServiceDeployment]:
        return list(self.store.services.deployments(service_arn))

    def reconcile(self) -> None:
        """One loop pass as the server's: a sweep, and the clusters woken since the last."""
        self.loop.run_once(self.now, self.control.take())

    def run(self, steps: int = 30, tick: float = 1.0) -> None:
        """Loop passes (each a sweep, and the clusters woken) and agent steps, ``tick``
        seconds apart, as the server's loop runs them."""
        for _ in range(steps):
            self.reconcile()
            self.agent.step()
            self.now += tick

    def settle(self, service_arn: str, steps: int = 200, tick: float = 1.0) -> None:
        """Run until the service's state says steady (or fail)."""
        for _ in range(steps):
            self.run(1, tick)
            service = self.store.services.get(service_arn)
            if service is not None and service.state.get("steady"):
                self.run(1, tick)
                return
        raise AssertionError(f"not steady: {self.events(service_arn)[-5:]}")
