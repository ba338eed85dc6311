"""A fleet for the service e2e tests: ``dockyard agent`` processes on the one Docker
Engine, each its own container instance with its own availability zone, and the
service calls an ECS user makes through boto3.

Every wait has a deadline and, on timeout, says what it saw last (the service's
deployments and newest events, its tasks by instance), so a failure reads as a story.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tests.e2e.clients import Docker, Registry
from tests.e2e.test_agent import Agent
from tests.live import LiveServer

# Every instance declares the same size, so placement depends on the strategies only.
INSTANCE_CPU, INSTANCE_MEMORY = 1024, 512
TASK_MEMORY = 32  # MiB: 16 tasks fit on an instance
# A shell that exits 42 on SIGTERM (``sleep`` as PID 1 would ignore it): stops are quick.
SLEEPER = "trap 'exit 42' TERM; sleep 3600 & wait"
STEADY = "has reached a steady state."


def push_busybox(
    server: LiveServer, docker: Docker, local_image: str, config_dir: Path, repository: str
) -> str:
    """The test busybox image in Dockyard's registry; the agents pull it themselves."""
    registry = Registry(server)
    registry.create_repository(repository)
    client = docker.with_config(config_dir)
    registry.login(client)
    ref = f"{registry.address}/{repository}:latest"
    client("tag", local_image, ref)
    client("push", ref)
    client("image", "rm", ref)  # the first agent's pull is a real one
    return ref


def sleeper(image: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "app",
        "image": image,
        "memory": TASK_MEMORY,
        "essential": True,
        "entryPoint": ["sh", "-c"],
        "command": [SLEEPER],
        **extra,
    }


def wait_until(
    what: str, check: Callable[[], Any], timeout: float, seen: Callable[[], str] | None = None
) -> Any:
    """``check()`` until it is truthy; on timeout an AssertionError naming ``what`` and
    what ``seen()`` reports."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            detail = f"\n{seen()}" if seen is not None else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{detail}")
        time.sleep(0.3)


def running(task: dict[str, Any]) -> bool:
    """Healthy as the service counts it: RUNNING and not being stopped."""
    return bool(task["lastStatus"] == "RUNNING" and task["desiredStatus"] == "RUNNING")


def unstopped(tasks: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [t for t in tasks if t["lastStatus"] != "STOPPED"]


class Fleet:
    """One cluster and its agents, one instance per availability zone."""

    def __init__(self, server: LiveServer, docker: Docker, root: Path, name: str) -> None:
        self.server, self.docker, self.root, self.name = server, docker, root, name
        self.ecs = server.client("ecs")
        self.agents: dict[str, Agent] = {}  # by zone
        self.zones: dict[str, str] = {}  # instance ARN -> zone
        self.services: list[str] = []
        self.ecs.create_cluster(clusterName=name)

    # Instances -------------------------------------------------------------------------

    def join(self, *zones: str) -> list[str]:
        """Start an agent per zone, each declared as its own instance there (all at
        once, then wait for each to register); their instance ARNs."""
        for zone in zones:
            self.agents[zone] = Agent(
                self.server, self.docker, self.root / f"{self.name}-{zone}", self.name,
                "--cpu", str(INSTANCE_CPU), "--memory", str(INSTANCE_MEMORY),
                "--availability-zone", zone,
            ).start()  # fmt: skip
        arns = [self.agents[zone].instance_arn for zone in zones]
        self.zones.update(zip(arns, zones, strict=True))
        return arns

    def instance(self, zone: str) -> str:
        return next(arn for arn, z in self.zones.items() if z == zone)

    def leave(self, zone: str) -> None:
        """Deregister the zone's instance (force): its agent stops the instance's
        tasks, reports them STOPPED and exits (5) by itself."""
        arn = self.instance(zone)
        self.ecs.deregister_container_instance(cluster=self.name, containerInstance=arn, force=True)
        agent = self.agents.pop(zone)
        del self.zones[arn]
        assert agent.process is not None
        try:
            assert agent.process.wait(30) == 5, agent.output()
        finally:
            agent.stop()

    def describe_instance(self, arn: str) -> dict[str, Any]:
        [found] = self.ecs.describe_container_instances(
            cluster=self.name, containerInstances=[arn]
        )["containerInstances"]
        return dict(found)

    # Task definitions and services -----------------------------------------------------

    def register(self, family: str, image: str, **container: Any) -> str:
        answer = self.ecs.register_task_definition(
            family=family, networkMode="bridge", containerDefinitions=[sleeper(image, **container)]
        )
        return str(answer["taskDefinition"]["taskDefinitionArn"])

    def create_service(self, name: str, **fields: Any) -> dict[str, Any]:
        answer = self.ecs.create_service(cluster=self.name, serviceName=name, **fields)
        self.services.append(name)
        return dict(answer["service"])

    def update_service(self, name: str, **fields: Any) -> dict[str, Any]:
        answer = self.ecs.update_service(cluster=self.name, service=name, **fields)
        return dict(answer["service"])

    def service(self, name: str) -> dict[str, Any]:
        answer = self.ecs.describe_services(cluster=self.name, services=[name])
        assert not answer["failures"], answer["failures"]
        [found] = answer["services"]
        return dict(found)

    def events(self, name: str) -> list[str]:
        """The service's event messages, newest first (as DescribeServices gives them)."""
        return [e["message"] for e in self.service(name).get("events", [])]

    def count_events(self, name: str, text: str) -> int:
        return sum(text in e for e in self.events(name))

    # Tasks -----------------------------------------------------------------------------

    def _listed(self, name: str) -> set[str]:
        arns: set[str] = set()
        pages = self.ecs.get_paginator("list_tasks")
        for desired in ("RUNNING", "STOPPED"):
            for page in pages.paginate(cluster=self.name, serviceName=name, desiredStatus=desired):
                arns.update(page["taskArns"])
        return arns

    def describe_tasks(self, arns: Iterable[str]) -> list[dict[str, Any]]:
        ordered, tasks = sorted(arns), []
        for start in range(0, len(ordered), 100):
            answer = self.ecs.describe_tasks(cluster=self.name, tasks=ordered[start : start + 100])
            assert not answer["failures"], answer["failures"]
            tasks += answer["tasks"]
        return tasks

    def tasks(self, name: str) -> list[dict[str, Any]]:
        """Every task of the service (STOPPED ones too), as one consistent sample.

        ListTasks then DescribeTasks is two reads: a task created between them would be
        missed while the ones it replaced show as stopped. So list again after the
        describe and take the sample only when nothing new appeared."""
        for _ in range(20):
            listed = self._listed(name)
            described = self.describe_tasks(listed) if listed else []
            if self._listed(name) <= listed:
                return described
        raise AssertionError(f"the tasks of service {name} kept changing under 20 samples")

    def running_tasks(self, name: str) -> list[dict[str, Any]]:
        return [t for t in self.tasks(name) if running(t)]

    def engine_running(self, family: str) -> int:
        """Containers of the family that Docker itself says are running."""
        listed = self.docker(
            "ps", "--quiet",
            "--filter", f"label=com.amazonaws.ecs.cluster={self.name}",
            "--filter", f"label=com.amazonaws.ecs.task-definition-family={family}",
        )  # fmt: skip
        return len(listed.stdout.split())

    # Waiting ---------------------------------------------------------------------------

    def story(self, name: str) -> str:
        """What the service looks like now: deployments, tasks per instance, events."""
        try:
            service = self.service(name)
            tasks = self.tasks(name)
        except Exception as error:  # the report must not hide the timeout
            return f"(could not describe service {name}: {error})"
        lines = [
            f"service {name}: status {service['status']}, desired {service['desiredCount']}, "
            f"running {service['runningCount']}, pending {service['pendingCount']}, "
            f"taskDefinition {service['taskDefinition'].rsplit('/', 1)[-1]}"
        ]
        for d in service.get("deployments", []):
            lines.append(
                f"  deployment {d['id']} {d['status']} {d.get('rolloutState')} "
                f"({d.get('rolloutStateReason', '')}) "
                f"{d['taskDefinition'].rsplit('/', 1)[-1]}: desired {d['desiredCount']}, "
                f"running {d['runningCount']}, pending {d['pendingCount']}, "
                f"failed {d.get('failedTasks', 0)}"
            )
        for t in tasks:
            zone = self.zones.get(t.get("containerInstanceArn", ""), "?")
            lines.append(
                f"  task {t['taskArn'].rsplit('/', 1)[-1]} in {zone}: {t['lastStatus']} "
                f"(desired {t['desiredStatus']}) {t['taskDefinitionArn'].rsplit('/', 1)[-1]} "
                f"{t.get('stopCode', '')} {t.get('stoppedReason', '')}".rstrip()
            )
        lines += [f"  event: {e['message']}" for e in service.get("events", [])[:8]]
        return "\n".join(lines)

    def steady(
        self,
        name: str,
        task_definition: str,
        count: int,
        where: Callable[[list[dict[str, Any]]], bool] = lambda tasks: True,
    ) -> list[dict[str, Any]] | None:
        """The RUNNING tasks when the service is steady on ``task_definition`` with
        ``count`` tasks, nothing else unstopped, and ``where(tasks)`` holds; else None."""
        service = self.service(name)
        deployments = service.get("deployments", [])
        if service["taskDefinition"] != task_definition or len(deployments) != 1:
            return None
        [primary] = deployments
        if primary["taskDefinition"] != task_definition or primary["rolloutState"] != "COMPLETED":
            return None
        live = unstopped(self.tasks(name))
        if len(live) != count or not all(running(t) for t in live):
            return None
        if any(t["taskDefinitionArn"] != task_definition for t in live):
            return None
        return live if where(live) else None

    def wait_steady(
        self,
        name: str,
        task_definition: str,
        count: int,
        timeout: float = 90,
        where: Callable[[list[dict[str, Any]]], bool] = lambda tasks: True,
        what: str = "",
    ) -> list[dict[str, Any]]:
        tasks: list[dict[str, Any]] = wait_until(
            what
            or f"service {name} to run {count} tasks of "
            f"{task_definition.rsplit('/', 1)[-1]}, deployment COMPLETED",
            lambda: self.steady(name, task_definition, count, where),
            timeout,
            lambda: self.story(name),
        )
        return tasks

    def wait_event(
        self, name: str, text: str, more_than: int = 0, timeout: float = 30
    ) -> list[str]:
        """The events, once more than ``more_than`` of them contain ``text`` (count them
        before an action to wait for a new one: server and test clocks need not agree)."""

        def found() -> list[str] | None:
            events = self.events(name)
            return events if sum(text in e for e in events) > more_than else None

        events: list[str] = wait_until(
            f"event number {more_than + 1} of service {name} containing {text!r}", found,
            timeout, lambda: self.story(name),
        )  # fmt: skip
        return events

    def spread(self, tasks: Iterable[dict[str, Any]]) -> list[int]:
        """Tasks per registered instance, sorted (instances with none count as 0)."""
        counts = Counter(t["containerInstanceArn"] for t in tasks)
        return sorted(counts.get(arn, 0) for arn in self.zones)

    # Clean-up --------------------------------------------------------------------------

    def delete_services(self, timeout: float = 60) -> None:
        """DeleteService (force) on every service made here; wait until they are
        INACTIVE with every task STOPPED."""
        names, self.services = self.services, []
        for name in names:
            self.ecs.delete_service(cluster=self.name, service=name, force=True)
        for name in names:
            self._wait_deleted(name, timeout)

    def _wait_deleted(self, name: str, timeout: float) -> None:
        wait_until(
            f"deleted service {name} to become INACTIVE with all its tasks STOPPED",
            lambda: self.service(name)["status"] == "INACTIVE" and not unstopped(self.tasks(name)),
            timeout,
            lambda: self.story(name),
        )

    def close(self) -> None:
        """Stop the agents and remove every container of the cluster's tasks."""
        for agent in self.agents.values():  # all at once: each takes a few seconds
            if agent.process is not None and agent.process.poll() is None:
                agent.process.send_signal(signal.SIGTERM)
        for agent in self.agents.values():
            agent.stop()
        listed = self.docker(
            "ps", "-a", "--quiet", "--filter", f"label=com.amazonaws.ecs.cluster={self.name}"
        )
        if listed.stdout.split():
            self.docker("rm", "--force", *listed.stdout.split(), check=False)
