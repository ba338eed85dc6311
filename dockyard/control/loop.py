"""The service loop: the one place services are reconciled, and the only part of
``control`` with asyncio.

One asyncio task (started from the app's lifespan) waits for a reason to look again:

- a wake-up (``ControlHub``): a handler changed something a service reacts to (the
  service itself, a task reaching RUNNING or STOPPED or changing health, an instance
  joining, leaving or draining, a lost host); only the woken clusters are passed;
- a plan's ``wake_at`` (a throttle or health-check grace period ending);
- the periodic sweep (``tick``), which passes every live service not resting: it
  catches what no handler announces (an agent's contact lapsing) and any wake-up
  missed.

A pass runs in a worker thread (the store is synchronous) and takes the services one
at a time: read (``snapshot.read_service``), ``services.reconcile``, write
(``execute``). A plan made on a stale read is made again at once; a service that
fails is logged and tried again on the next pass, never stopping the loop.
``run_once(now)`` is that pass, for tests with their own clock.

A sweep leaves a steady service alone for ``STEADY_SWEEP_SECONDS`` after its last pass
unless it was written since or its cluster was woken: an idle service costs a read
every ten seconds, not every second.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection
from contextlib import suppress

from dockyard.api.agent_hub import AgentHub
from dockyard.api.context import RequestContext
from dockyard.api.identity import Identity
from dockyard.control.execute import drain, execute
from dockyard.control.hub import ControlHub
from dockyard.control.services import reconcile
from dockyard.control.snapshot import read_service
from dockyard.registry.service import Registry
from dockyard.store.models import Service
from dockyard.store.store import Store

log = logging.getLogger("dockyard.control.loop")

TICK_SECONDS = 1.0
# A steady service is looked at by a sweep this often at most: whatever it reacts to
# wakes its cluster, so the sweep is only the safety net (and agents' contact lapsing).
STEADY_SWEEP_SECONDS = 10.0
STALE_RETRIES = 3  # plans made again after a concurrent write to the service
# Who the loop acts as (for the request context placement reads); never signs anything.
SCHEDULER = Identity(access_key_id="", secret_access_key="", name="ecs-service-scheduler")


class ServiceLoop:
    def __init__(
        self,
        store: Store,
        *,
        registry: Registry,
        agents: AgentHub,
        control: ControlHub,
        lost_host_grace: float,
        tick: float = TICK_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.registry = registry
        self.agents = agents
        self.control = control
        self.lost_host_grace = lost_host_grace
        self.tick = tick
        self.clock = clock
        self.started = clock()  # silence before this is nobody's to judge (is_lost)
        self._wake_at: dict[str, tuple[str, float]] = {}  # service -> (cluster, when)
        self._passed: dict[str, tuple[int, float]] = {}  # service -> (version, when)

    def run_once(
        self, now: float | None = None, woken: Collection[str] = (), *, sweep: bool = True
    ) -> int:
        """Reconcile at ``now`` every live service of the ``woken`` clusters and, with
        ``sweep``, every other one but those resting (steady, passed less than
        ``STEADY_SWEEP_SECONDS`` ago and not written since). Returns how many it passed."""
        at = self.clock() if now is None else now
        services = [
            s
            for s in self.store.services.live()
            if s.cluster_arn in woken or (sweep and not self._resting(s, at))
        ]
        for service in services:
            try:
                self.run_service(service, at)
            except Exception:
                log.exception("service %s: reconciling failed; will try again", service.arn)
        return len(services)

    def _resting(self, service: Service, now: float) -> bool:
        passed = self._passed.get(service.arn)
        return (
            passed is not None
            and bool(service.state.get("steady"))
            and passed[0] == service.version
            and now - passed[1] < STEADY_SWEEP_SECONDS
        )

    def run_service(self, service: Service, now: float) -> None:
        """One service: read, plan, write; again at once when the read was stale."""
        self._wake_at.pop(service.arn, None)
        self._passed.pop(service.arn, None)
        for _ in range(STALE_RETRIES):
            found = self.store.services.with_deployments(service.arn)
            if found is None or found[0].status == "INACTIVE":
                return
            current, deployments = found
            ctx = self._context(current, now)
            read = read_service(
                self.store,
                current,
                deployments,
                now=now,
                agent_timeout=self.agents.timeout,
                lost_host_grace=self.lost_host_grace,
                watching_since=self.started,
            )
            if current.status == "DRAINING":
                drain(ctx, read)
                return
            plan = reconcile(read.snapshot)
            outcome = execute(ctx, read, plan)
            if outcome.stale:
                continue
            if plan.wake_at is not None:
                self._wake_at[service.arn] = (service.cluster_arn, plan.wake_at)
            after = self.store.services.get(service.arn) if plan.steady else None
            if after is not None:
                self._passed[service.arn] = (after.version, now)
            if outcome.settled_now:  # the next plan differs already: look again soon
                self.control.wake(service.cluster_arn)
            return
        log.info("service %s: changed under every plan; next pass", service.arn)

    def due(self, now: float) -> set[str]:
        """Clusters with a service whose plan asked to be looked at again by ``now``."""
        return {cluster for cluster, at in self._wake_at.values() if at <= now}

    def next_wake(self) -> float | None:
        return min((at for _, at in self._wake_at.values()), default=None)

    async def run_forever(self) -> None:
        changed = self.control.attach()
        next_sweep = 0.0
        while True:
            changed.clear()  # before take(): a wake-up after it sets the event again
            now = self.clock()
            woken = self.control.take() | self.due(now)
            sweep = now >= next_sweep
            if sweep:
                next_sweep = now + self.tick
            if sweep or woken:
                try:
                    await asyncio.to_thread(self.run_once, now, woken, sweep=sweep)
                except Exception:  # run_once guards each service; this is the store itself
                    log.exception("service loop pass failed; will try again")
            until = min(next_sweep, self.next_wake() or next_sweep)
            with suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), max(0.0, until - self.clock()))

    def _context(self, service: Service, now: float) -> RequestContext:
        return RequestContext(
            account_id=service.account_id,
            region=service.region,
            identity=SCHEDULER,
            store=self.store,
            now=now,
            registry=self.registry,
            agents=self.agents,
            control=self.control,
        )
