"""RunTask calls waiting for a cluster's lock are placed in one go, alike ones together.

Calls choose and write one at a time per cluster (``cluster_lock``). Whoever gets the
lock takes every call waiting for it, and calls alike in all that placement reads
(task demand and group, constraints, strategies) are placed by ONE engine run for all
their tasks and ONE write. That is exactly what running them one after another would
choose: the engine places one task at a time, each on the best instance at that
moment, so the first task of call B sees call A's tasks as it would after A's write;
only the cluster is ranked once instead of once per call. A random tie-break draws
from the same distribution either way. Each call still gets its own tasks (startedBy,
tags and overrides are its own) and, when the run stopped before reaching them, the
failure with the closest instance, as a run of its own would have reported.

Calls not alike are placed one kind after another, each kind with its own write.

The lock holder reads the cluster for each kind (``current``: a read only when the
cluster changed other than by this process's placements, which the write checks) and
places with the kind's ``PlacementIndex``, kept between batches, so a batch costs what
changed since the last one rather than a pass over every instance.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from dockyard.ecs.placement_journal import journal
from dockyard.ecs.placement_snapshot import (
    ZONE,
    ClusterSnapshot,
    cluster_lock,
    current,
    forget_cluster,
    needs,
)
from dockyard.scheduler.index import PlacementIndex, supports
from dockyard.scheduler.model import (
    Constraint,
    Failure,
    PlacementResult,
    Strategy,
    TaskDemand,
)
from dockyard.scheduler.placement import place
from dockyard.store.models import Task
from dockyard.store.store import Store
from dockyard.store.task_rows import Placed

NewTask = Callable[[str, str | None], Task]  # (instance ARN, its zone) -> the task to write
# Ties are drawn uniformly (scheduler/README.md); one generator, seeded by the OS once,
# as seeding one per call costs more than the draws.
_RNG = random.Random()


@dataclass(eq=False)
class Call:
    demand: TaskDemand
    constraints: tuple[Constraint, ...]
    strategies: tuple[Strategy, ...]
    count: int
    new_task: NewTask
    now: float  # the call's clock: agents in contact at it are connected
    agent_timeout: float
    # Filled in when placed:
    empty: bool = False  # the cluster had no ACTIVE or DRAINING instance
    placed: list[Task] = field(default_factory=list)
    refused: list[tuple[Task, str]] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def kind(self) -> Hashable:
        return (self.demand, self.constraints, self.strategies, self.agent_timeout)


def submit(store: Store, cluster_arn: str, call: Call) -> None:
    """Place ``call`` (with whichever calls wait beside it); raises what placing it did."""
    waiting = _waiting(cluster_arn)
    with waiting.mutex:
        waiting.calls.append(call)
    with cluster_lock(cluster_arn):
        if not call.done.is_set():  # else an earlier holder of the lock placed it
            with waiting.mutex:
                batch, waiting.calls = waiting.calls, []
            _place_all(store, cluster_arn, batch)
    if call.error is not None:
        raise call.error


def _place_all(store: Store, cluster_arn: str, batch: list[Call]) -> None:
    kinds: dict[Hashable, list[Call]] = {}
    for call in batch:
        kinds.setdefault(call.kind, []).append(call)
    for calls in kinds.values():
        try:
            _place_alike(store, cluster_arn, calls)
        except BaseException as error:
            for call in calls:
                call.error = error
        finally:
            for call in calls:
                call.done.set()


def _place_alike(store: Store, cluster_arn: str, calls: list[Call]) -> None:
    first, written = calls[0], journal(cluster_arn)
    # A plan made on a cluster that changed meanwhile is not written: made again on a
    # fresh read (which expects nothing, so this runs at most twice).
    while True:
        # Read after every call here arrived, at the latest clock among them.
        cluster = current(
            store,
            cluster_arn,
            needs(first.demand, first.constraints, first.strategies),
            now=max(call.now for call in calls),
            agent_timeout=first.agent_timeout,
            written=written,
        )
        if not cluster.instances:
            if cluster.expected is not None:  # unchecked: it may have some by now
                forget_cluster(cluster_arn)
                continue
            for call in calls:
                call.empty = True
            return
        index = _index(cluster_arn, first)
        new = _plan(cluster, index, calls)
        distinct = any(c.type == "distinctInstance" for c in first.constraints)
        tasks = [task for _, task in new]
        versions = {
            arn: cluster.versions[cluster.index[arn]]
            for arn in {task.container_instance_arn for task in tasks}
            if arn is not None
        }
        done = store.tasks.place(
            tasks, distinct=distinct, expected=cluster.expected, versions=versions
        )
        if not done.stale:
            break
        forget_cluster(cluster_arn)
    written.record(done)
    if index is not None:
        index.written(cluster, done)
    refused = {task.arn: reason for task, reason in done.refused}
    for call, task in new:
        if task.arn in refused:
            call.refused.append((task, refused[task.arn]))
        else:
            call.placed.append(task)


def _plan(
    cluster: ClusterSnapshot, index: _Index | None, calls: list[Call]
) -> list[tuple[Call, Task]]:
    """The engine's choice for all the calls' tasks, one after another, as tasks to
    write; a call the run stopped short of gets its failures."""
    first, instances = calls[0], cluster.instances
    total = sum(call.count for call in calls)
    if index is None:
        result = place(first.demand, total, instances, first.constraints, first.strategies, _RNG)
    else:
        result = index.place(cluster, total)
    new: list[tuple[Call, Task]] = []
    start = 0
    for call in calls:
        mine = result.placements[start : start + call.count]
        start += call.count
        for arn in mine:
            zone = instances[cluster.index[arn]].attributes.get(ZONE)
            new.append((call, call.new_task(arn, zone)))
        # (A plan made again replaces the failures of the one before.)
        call.failures = list(result.failures) if len(mine) < call.count else []
    return new


class _Index:
    """A kind's ``PlacementIndex`` and the snapshot it was last synced with."""

    def __init__(self, call: Call) -> None:
        self.engine = PlacementIndex(call.demand, call.constraints, call.strategies)
        self.synced = 0  # the serial of the snapshot last synced with; 0: none

    def place(self, cluster: ClusterSnapshot, count: int) -> PlacementResult:
        follows = cluster.since != 0 and cluster.since == self.synced
        self.engine.sync(cluster.instances, cluster.changed if follows else None)
        # It now holds its placements: the snapshot plus them, once they are written.
        self.synced = 0
        return self.engine.place(count, _RNG)

    def written(self, cluster: ClusterSnapshot, done: Placed) -> None:
        """After the write: only when the store took every task is the index the
        snapshot plus what the journal has (a refused one is in it all the same)."""
        if not done.refused:
            self.synced = cluster.serial


def _index(cluster_arn: str, call: Call) -> _Index | None:
    """The kind's index on the cluster, if it places exactly as ``place``."""
    if not supports(call.constraints):
        return None
    key = (cluster_arn, call.kind)
    with _INDEXES_LOCK:
        index = _INDEXES.pop(key, None)  # put back last: the dict's order is of use
        if index is None:
            index = _Index(call)
            if len(_INDEXES) >= _INDEX_LIMIT:
                _INDEXES.pop(next(iter(_INDEXES)))
        _INDEXES[key] = index
    return index  # the cluster's lock is held: no one else uses it


_INDEX_LIMIT = 32  # (cluster, kind of call) indexes kept, the least recently used go
_INDEXES: dict[tuple[str, Hashable], _Index] = {}
_INDEXES_LOCK = threading.Lock()


def forget() -> None:
    """Drop the indexes (the store was wiped)."""
    with _INDEXES_LOCK:
        _INDEXES.clear()


@dataclass
class _Waiting:
    mutex: threading.Lock = field(default_factory=threading.Lock)
    calls: list[Call] = field(default_factory=list)


_WAITING: dict[str, _Waiting] = {}
_WAITING_LOCK = threading.Lock()


def _waiting(cluster_arn: str) -> _Waiting:
    with _WAITING_LOCK:
        return _WAITING.setdefault(cluster_arn, _Waiting())
