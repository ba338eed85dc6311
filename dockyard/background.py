"""Periodic work the server does on its own: lifecycle policies, registry GC, and
giving up the tasks of lost hosts.

Each job runs in a worker thread (they are synchronous store work) on its own
interval; a failing run is logged and tried again next interval. A run that returns
None did nothing worth a log line.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from dockyard.api.agent_hub import AgentHub
from dockyard.control import instance_health
from dockyard.control.hub import ControlHub
from dockyard.ecr.lifecycle_api import apply_lifecycle_policies
from dockyard.registry.service import Registry
from dockyard.registry.storage.gc import collect
from dockyard.store.store import Store

log = logging.getLogger("dockyard.background")

LIFECYCLE_INTERVAL = 600.0  # ECR promises expiry within 24 hours; ten minutes is ample
GC_INTERVAL = 3600.0


@dataclass(frozen=True)
class Job:
    name: str
    interval: float
    run: Callable[[float], object]


def registry_jobs(registry: Registry) -> list[Job]:
    return [
        Job("lifecycle", LIFECYCLE_INTERVAL, lambda now: apply_lifecycle_policies(registry, now)),
        Job("registry-gc", GC_INTERVAL, lambda now: collect(registry.store, registry.storage, now)),
    ]


def lost_host_job(store: Store, control: ControlHub, agents: AgentHub, grace: float) -> Job:
    """STOP the tasks of hosts silent for longer than ``grace``, checked often enough
    (a quarter of the grace, at most 15 s) that they go at most ~25% late. Silence
    counts from the job's start at the earliest: agents could not poll a server that
    was down."""
    started = time.time()

    def run(now: float) -> str | None:
        lost = instance_health.expire_lost_hosts(
            store, control, agents, now, grace, watching_since=started
        )
        return instance_health.summary(lost)

    return Job("lost-hosts", instance_health.check_interval(grace), run)


async def run_forever(job: Job) -> None:
    while True:
        await asyncio.sleep(job.interval)
        try:
            result = await asyncio.to_thread(job.run, time.time())
            if result is not None:
                log.info("%s: %s", job.name, result)
        except Exception:
            log.exception("%s failed; will try again in %.0f s", job.name, job.interval)
