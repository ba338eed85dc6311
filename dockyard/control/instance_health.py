"""Lost hosts: the tasks of an instance whose agent has gone silent are given up.

On ECS a task on a host whose agent vanished stays RUNNING for ever, so its service
never replaces it (aws/containers-roadmap). Here an agent-managed instance whose agent
has not polled or registered for longer than the server's ``--lost-host-grace``
(default 300 s) is *lost*: every task on it that is not STOPPED becomes STOPPED at once
(stopCode InfrastructureHealth, "Host lost: ..."), its resources are given back, and the
service loop is woken to start replacements. The instance itself keeps its status
(ACTIVE stays ACTIVE and listed, with agentConnected false) until it is deregistered.

An instance registered through the plain API has no agent to lose: its tasks are never
touched. If the agent comes back, its first poll's full list no longer holds those
tasks, so it stops their containers and removes them after its cleanup wait; its late
reports cannot bring them back (a task's lastStatus only moves forward).

Silence counts from the server's start at the earliest: agents cannot poll a server
that is down, so a restart after a long outage gives every agent a full grace again.
An agent that returns in the very instant its host is declared lost finds its tasks
gone and stops them; the services replace them as for any lost host.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

from dockyard.api.agent_hub import AgentHub
from dockyard.control.hub import ControlHub
from dockyard.control.model import HOST_LOST_STOP_CODE
from dockyard.ecs.container_instances import agent_managed
from dockyard.ecs.task_lifecycle import apply_task_change, stop
from dockyard.ecs.task_shapes import TaskChange
from dockyard.store.models import ContainerInstance, Task
from dockyard.store.store import Store

log = logging.getLogger("dockyard.control.instance_health")

STOP_CODE = HOST_LOST_STOP_CODE
REASON_PREFIX = "Host lost:"
MAX_INTERVAL = 15.0  # the longest between two checks, whatever the grace
_MAX_REASON = 255  # ECS's limit on stoppedReason


@dataclass(frozen=True)
class LostHost:
    """One instance found lost, and the tasks that were STOPPED because of it."""

    instance_arn: str
    cluster_arn: str
    silent_since: float
    stopped: tuple[str, ...]


def check_interval(grace: float) -> float:
    """How often to look: a quarter of the grace, at most every 15 s."""
    return min(grace / 4, MAX_INTERVAL)


def silent_since(instance: ContainerInstance) -> float:
    """The agent's last contact (registering counts); the registration if none is known."""
    if instance.agent_seen_at is not None:
        return instance.agent_seen_at
    return instance.registered_at


def is_lost(
    instance: ContainerInstance, now: float, grace: float, *, watching_since: float = 0.0
) -> bool:
    """Agent-managed and silent for longer than ``grace`` seconds. A deregistered
    (INACTIVE) instance counts too: tasks still waiting there for the agent to stop them
    are given up once it has been silent as long. ``watching_since``: when this server
    started; silence while no server was up to hear the agent does not count (a server
    down past the grace must not, once back, give up every host at once)."""
    if not agent_managed(instance):
        return False
    return now - max(silent_since(instance), watching_since) > grace


def lost_instances(
    instances: Iterable[ContainerInstance],
    now: float,
    grace: float,
    *,
    watching_since: float = 0.0,
) -> list[ContainerInstance]:
    """The lost ones among ``instances``, in the order given."""
    return [i for i in instances if is_lost(i, now, grace, watching_since=watching_since)]


def host_lost_reason(instance: ContainerInstance, grace: float) -> str:
    instance_id = instance.arn.rpartition("/")[2]
    since = datetime.fromtimestamp(silent_since(instance), UTC).isoformat(timespec="seconds")
    since = since.replace("+00:00", "Z")
    seconds = f"{grace:.0f}" if grace == int(grace) else f"{grace:g}"
    reason = (
        f"{REASON_PREFIX} the agent of container instance {instance_id} has been silent "
        f"since {since} (more than {seconds} s)."
    )
    return reason[:_MAX_REASON]


def give_up(task: Task, reason: str, now: float) -> Task | None:
    """``task`` STOPPED now, as no agent will ever report it; None if it already is.
    A task already told to stop keeps the reason it was given."""
    if task.last_status == "STOPPED":
        return None
    stopped = stop(task, reason, STOP_CODE, now, at_once=True)
    if stopped is not None:
        return stopped
    change = TaskChange(
        cluster=None,
        task=task.arn,
        status="STOPPED",
        reason=reason,
        stop_code=STOP_CODE,
        containers=(),
        pull_started_at=None,
        pull_stopped_at=None,
        execution_stopped_at=now,
    )
    return apply_task_change(task, change, now)


def expire_lost_hosts(
    store: Store,
    control: ControlHub,
    agents: AgentHub,
    now: float,
    grace: float,
    *,
    watching_since: float = 0.0,
) -> list[LostHost]:
    """STOP every unstopped task of every lost instance (resources given back through
    ``store.tasks.update``), and wake the services of their clusters."""
    if now - watching_since <= grace:
        return []  # nobody can be lost yet
    found = []
    candidates = store.tasks.silent_instances(now - grace)
    for instance in lost_instances(candidates, now, grace, watching_since=watching_since):
        reason = host_lost_reason(instance, grace)
        held = [t.arn for t in store.tasks.on_instance(instance.arn)]
        changed = store.tasks.update(held, partial(give_up, reason=reason, now=now))
        stopped = tuple(after.arn for _, after in changed if after.last_status == "STOPPED")
        if not stopped:
            continue
        log.warning("%s %d task(s) STOPPED: %s", instance.arn, len(stopped), reason)
        found.append(LostHost(instance.arn, instance.cluster_arn, silent_since(instance), stopped))
        control.wake(instance.cluster_arn)
    agents.notify(lost.instance_arn for lost in found)
    return found


def summary(lost: list[LostHost]) -> str | None:
    """One log line for a run of the background job; None when nothing was lost."""
    if not lost:
        return None
    tasks = sum(len(host.stopped) for host in lost)
    return f"{len(lost)} lost host(s), {tasks} task(s) STOPPED"
