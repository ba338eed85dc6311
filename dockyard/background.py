"""Periodic work the server does on its own: lifecycle policies and registry GC.

Each job runs in a worker thread (they are synchronous store work) on its own
interval; a failing run is logged and tried again next interval.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from dockyard.ecr.lifecycle_api import apply_lifecycle_policies
from dockyard.registry.service import Registry
from dockyard.registry.storage.gc import collect

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


async def run_forever(job: Job) -> None:
    while True:
        await asyncio.sleep(job.interval)
        try:
            result = await asyncio.to_thread(job.run, time.time())
            log.info("%s: %s", job.name, result)
        except Exception:
            log.exception("%s failed; will try again in %.0f s", job.name, job.interval)
