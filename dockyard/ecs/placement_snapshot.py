"""The placement engine's snapshot of a cluster, read from the store on every call.

One ``placement_view`` (a query per table, never one per instance) gives every ACTIVE
and DRAINING instance with only what the call reads: the zone (tasks record it), the
attributes its memberOf expressions, spread strategies and ``requiresAttributes``
name, the task counts of its group, and running counts or every instance's groups
only when an expression reads ``runningTasksCount`` or ``task:group``.

Thousands of instances are read on every call and few change between two calls, so
two memos keep what is derived from the rows, and a memo can only ever save work,
never answer differently from a fresh build:

- each instance's parsed document, by ``assignments_version`` (the store raises it
  with every write of the document), so a document is read and parsed once per
  version;
- per cluster and kind of call, the last snapshot: the rows, counts and the engine
  ``Instance`` built from each. The next call compares the new rows and counts with
  them and rebuilds only the instances whose inputs differ (agent connectivity, the
  only input that moves with the clock, is rebuilt when a lapse falls in between).

``snapshot`` runs without the cluster's lock (concurrent calls read in parallel); the
memos are only ever replaced whole, and a version they lack is read again.

``current`` skips even that read when nothing changed but this process's own
placements. Holding the cluster's lock (so every placement of this process is written
and in the journal), it hands out the last snapshot with the journal's placements
since charged, and with it the ``Expected`` fingerprint of the cluster: the last
read's but for the cluster versions those placements raised (each write raises it by
one: anyone else's write leaves a gap, found at once, or makes it larger). The store
writes the placement only if, under the instances' locks, the cluster still shows
that fingerprint (no one else wrote what placement reads, no agent came back into
contact); otherwise it writes nothing and the caller forgets the cluster
(``forget_cluster``) and plans again on a fresh read. That check is one more
statement in the write's first round trip, instead of a round trip of its own; on
PostgreSQL, with the instances' versions the plan saw, the whole write is usually one
statement (``store/placing_at_once.py``).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import orjson

from dockyard.ecs.placement_journal import Journal, charged
from dockyard.scheduler import model
from dockyard.scheduler.model import AVAILABILITY_ZONE, Constraint, Instance, Strategy, TaskDemand
from dockyard.store import resources as stored
from dockyard.store.models import Resources as StoredResources
from dockyard.store.placement import (
    AGENT_SEEN_AT,
    ARN,
    ATTRIBUTES,
    EC2_INSTANCE_ID,
    REGISTERED_AT,
    STATUS,
    VERSION,
    Expected,
    Fingerprint,
    InstanceDocument,
    InstanceRow,
    PlacementView,
)
from dockyard.store.store import Store

ZONE = AVAILABILITY_ZONE.removeprefix("attribute:")
_DOCUMENT_LIMIT = 200_000  # parsed documents kept; past it the memo starts again
_SNAPSHOT_LIMIT = 64  # (cluster, kind of call) pairs kept
_FOREVER = float("inf")


@dataclass(frozen=True)
class Needs:
    """What a call reads of the cluster besides the instances themselves."""

    group: str
    attribute_names: frozenset[str]
    running: bool  # runningTasksCount
    groups: bool  # task:group


def needs(
    demand: TaskDemand, constraints: Sequence[Constraint], strategies: Sequence[Strategy]
) -> Needs:
    subjects: set[str] = set()
    for constraint in constraints:
        if constraint.query is not None:
            subjects |= constraint.query.subjects
    names = {ZONE}
    names |= {s.removeprefix("attribute:") for s in subjects if s.startswith("attribute:")}
    names |= {s.attribute for s in strategies if s.attribute is not None}
    names |= {r.name for r in demand.required_attributes}
    return Needs(
        group=demand.group,
        attribute_names=frozenset(names),
        running="runningTasksCount" in subjects,
        groups="task:group" in subjects,
    )


_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_LOCK = threading.Lock()


def cluster_lock(cluster_arn: str) -> threading.Lock:
    """This process's lock on placing in ``cluster_arn``."""
    with _LOCKS_LOCK:
        return _LOCKS.setdefault(cluster_arn, threading.Lock())


@dataclass(frozen=True)
class ClusterSnapshot:
    """The instances in ARN order, the version each was read at, and where each is.
    ``current`` numbers its answers (``serial``); when one is the one before
    (``since``) with a few instances charged, ``changed`` has their positions, and
    ``expected`` what the store must still show for a plan made on it to be written."""

    instances: list[Instance]
    versions: list[int]
    index: dict[str, int]
    serial: int = 0  # 0: not from ``current``
    since: int = 0
    changed: frozenset[int] = frozenset()
    expected: Expected | None = None  # what the store must still show to write a plan


def snapshot(
    store: Store,
    cluster_arn: str,
    wanted: Needs,
    *,
    now: float,
    agent_timeout: float,
    instance_arns: Collection[str] | None = None,
) -> ClusterSnapshot:
    """The cluster's ACTIVE and DRAINING instances (or those of ``instance_arns``) as
    placement sees them at ``now``."""
    return _read(store, cluster_arn, wanted, now, agent_timeout, instance_arns).result()


def _read(
    store: Store,
    cluster_arn: str,
    wanted: Needs,
    now: float,
    agent_timeout: float,
    instance_arns: Collection[str] | None = None,
) -> _Snapshot:
    view = store.tasks.placement_view(
        cluster_arn,
        group=wanted.group,
        attribute_names=wanted.attribute_names,
        known=_VERSIONS,
        instance_arns=instance_arns,
        running=wanted.running,
        groups=wanted.groups,
    )
    for arn, document in view.documents.items():
        _remember(arn, document)
    build = _Builder(store, cluster_arn, view, wanted.group, now, agent_timeout)
    if instance_arns is not None:  # StartTask's few: nothing to gain from the memo
        return _Snapshot(view, [build(k) for k in range(len(view.instances))], [])
    key = (cluster_arn, wanted, agent_timeout)
    last = _SNAPSHOTS.get(key)
    changed = last.changed(view, now) if last is not None else None
    if last is None or changed is None:
        made = _Snapshot(view, [build(k) for k in range(len(view.instances))], build.lapses)
    else:
        instances = list(last.instances)
        for k in changed:
            instances[k] = build(k)
        # The rows kept keep their lapses (the bounds only get safer).
        lapses = [min(build.lapses[0], last.lapses[0]), max(build.lapses[1], last.lapses[1])]
        made = _Snapshot(view, instances, lapses, last.index)
    if len(_SNAPSHOTS) >= _SNAPSHOT_LIMIT and key not in _SNAPSHOTS:
        _SNAPSHOTS.pop(next(iter(_SNAPSHOTS)))
    _SNAPSHOTS[key] = made
    return made


class _Derived(NamedTuple):
    """What placement takes from a document."""

    registered: model.Resources
    remaining: model.Resources
    agent_version: str
    managed: bool  # registered by dockyard agent, whose contact can lapse


# (instance ARN, version) -> its document at that version; several versions of one
# instance may be in use at once by calls that read at different moments.
_DOCUMENTS: dict[tuple[str, int], _Derived] = {}
_VERSIONS: dict[str, int] = {}  # instance ARN -> the version last parsed, for the store


def _remember(arn: str, document: InstanceDocument) -> None:
    if len(_DOCUMENTS) >= _DOCUMENT_LIMIT:
        _DOCUMENTS.clear()
        _VERSIONS.clear()
    parsed = orjson.loads(document.document)
    info = parsed.get("versionInfo") or {}
    _DOCUMENTS[arn, document.version] = _Derived(
        registered=_engine(stored.registered_resources(parsed)),
        remaining=_engine(stored.remaining_resources(parsed)),
        agent_version=str(info.get("agentVersion") or ""),
        managed=str(info.get("agentHash") or "").startswith("dockyard"),
    )
    _VERSIONS[arn] = document.version


def _engine(resources: StoredResources) -> model.Resources:
    return model.Resources(
        cpu=resources.cpu,
        memory=resources.memory,
        ports_tcp=resources.ports,
        ports_udp=resources.ports_udp,
        gpus=len(resources.gpus),
    )


@dataclass
class _Builder:
    """Builds the engine's ``Instance`` for row ``k`` of a view, noting when agents'
    contact lapses (or lapsed) for the snapshot memo."""

    store: Store
    cluster_arn: str
    view: PlacementView
    group: str
    now: float
    agent_timeout: float
    lapses: list[float] = field(default_factory=lambda: [_FOREVER, -_FOREVER])

    def __call__(self, k: int) -> Instance:
        row = self.view.instances[k]
        derived = self._derived(row)
        # As container_instances.agent_connected: only Dockyard's agent can be lost.
        connected = not derived.managed
        seen = row[AGENT_SEEN_AT]
        if derived.managed and seen is not None:
            lapse = seen + self.agent_timeout
            connected = self.now < lapse
            if connected:
                self.lapses[0] = min(self.lapses[0], lapse)
            else:
                self.lapses[1] = max(self.lapses[1], lapse)
        arn, group = row[ARN], self.group
        of_group = self.view.group_counts.get(arn, 0)
        groups = self.view.groups.get(arn)
        return Instance(
            arn=arn,
            ec2_instance_id=row[EC2_INSTANCE_ID],
            registered=derived.registered,
            remaining=derived.remaining,
            status=row[STATUS],
            agent_connected=connected,
            agent_version=derived.agent_version,
            registered_at=row[REGISTERED_AT],
            attributes=dict(row[ATTRIBUTES]),
            running_tasks_count=self.view.running.get(arn, 0),
            group_counts={group: of_group} if of_group else {},
            # Without task:group in an expression only the call's own group is read.
            task_groups=groups if groups is not None else frozenset({group} if of_group else ()),
        )

    def _derived(self, row: InstanceRow) -> _Derived:
        arn, version = row[ARN], row[VERSION]
        derived = _DOCUMENTS.get((arn, version))
        if derived is None:
            # The memo was emptied meanwhile: read the document again. It may be newer
            # than the rows (the store re-checks resources anyway).
            again = self.store.tasks.placement_view(
                self.cluster_arn,
                group=self.group,
                attribute_names=(),
                known={},
                instance_arns=[arn],
            )
            document = again.documents.get(arn)
            if document is None:  # deregistered meanwhile: the store will refuse it
                return _Derived(_NONE, _NONE, "", False)
            _remember(arn, document._replace(version=version))
            derived = _DOCUMENTS[arn, version]
        return derived


_NONE = model.Resources()


class _Snapshot:
    """A cluster's last snapshot for one kind of call, and when it stops being exact:
    ``lapses`` = [the first moment an agent counted connected goes silent, the last
    moment one counted silent went silent]."""

    def __init__(
        self,
        view: PlacementView,
        instances: list[Instance],
        lapses: list[float],
        index: dict[str, int] | None = None,
    ) -> None:
        self.view = view
        self.instances = instances
        self.lapses = lapses
        self.index = index or {row[ARN]: k for k, row in enumerate(view.instances)}

    def result(self) -> ClusterSnapshot:
        versions = [row[VERSION] for row in self.view.instances]
        return ClusterSnapshot(self.instances, versions, self.index)

    def changed(self, view: PlacementView, now: float) -> set[int] | None:
        """The rows of ``view`` whose instance must be built again; None: all of them
        (instances came or went, or an agent's contact lapsed in between)."""
        old = self.view
        if len(old.instances) != len(view.instances) or not (
            self.lapses[1] <= now < self.lapses[0]
        ):
            return None
        changed = set()
        rows = view.instances
        for k, (before, after) in enumerate(zip(old.instances, rows, strict=True)):
            if before == after:
                # Keep the old tuple, so the new one dies young: thousands of new
                # long-lived tuples per call would make the GC's full passes frequent.
                rows[k] = before
            elif before[ARN] != after[ARN]:
                return None
            else:
                changed.add(k)
        moved = _moved(old.group_counts, view.group_counts) | _moved(old.running, view.running)
        for arn in moved | _moved(old.groups, view.groups):
            at = self.index.get(arn)  # None: tasks left on an instance no longer placeable
            if at is not None:
                changed.add(at)
        return changed


def _moved(before: Mapping[str, object], after: Mapping[str, object]) -> set[str]:
    return {arn for arn, _ in before.items() ^ after.items()}


_SNAPSHOTS: dict[tuple[str, Needs, float], _Snapshot] = {}


@dataclass
class _Current:
    """What ``current`` last answered for a cluster and kind of call, and the state of
    the store it stands for."""

    arn: str  # the cluster's
    cluster: ClusterSnapshot
    mark: int  # the journal's mark: placements up to it are in ``cluster``
    fingerprint: Fingerprint  # taken before the read (so it may only miss changes)
    silent: list[str]  # instances whose agent was out of contact
    lapses: list[float]  # as _Snapshot.lapses


def current(
    store: Store,
    cluster_arn: str,
    wanted: Needs,
    *,
    now: float,
    agent_timeout: float,
    written: Journal,
) -> ClusterSnapshot:
    """``snapshot`` as of now; or, unless something other than this process's
    placements is known to have changed, the last one with them charged and what the
    store must show to write a plan made on it (``expected``; see the module
    docstring). Call holding ``cluster_lock``."""
    key = (cluster_arn, wanted, agent_timeout)
    cutoff = now - agent_timeout
    last = _CURRENT.get(key)
    # runningTasksCount moves with task reports, which raise no version.
    if last is not None and not wanted.running:
        caught = _caught_up(last, written, now, cutoff, wanted.group)
        if caught is not None:
            return caught
    mark = written.mark()
    found = store.tasks.placement_fingerprint(cluster_arn)
    made = _read(store, cluster_arn, wanted, now, agent_timeout)
    read = made.result()
    # Lists of its own: catching up changes them in place (under the cluster's lock).
    cluster = ClusterSnapshot(list(read.instances), read.versions, read.index, next(_SERIALS))
    silent = [i.arn for i in cluster.instances if not i.agent_connected]
    with _CURRENT_LOCK:  # other clusters' calls change the dict too
        if len(_CURRENT) >= _SNAPSHOT_LIMIT and key not in _CURRENT:
            _CURRENT.pop(next(iter(_CURRENT)))
        _CURRENT[key] = _Current(cluster_arn, cluster, mark, found, silent, list(made.lapses))
    return cluster


_SILENT_LIMIT = 1000  # instances out of contact asked about; past it, read


def _caught_up(
    last: _Current, written: Journal, now: float, cutoff: float, group: str
) -> ClusterSnapshot | None:
    """The last answer with this process's placements since charged, expecting the
    store to have changed by them alone; None if it cannot have."""
    entries = written.since(last.mark)
    was = last.fingerprint
    if entries is None or was.cluster_created_at is None or len(last.silent) > _SILENT_LIMIT:
        return None
    if not last.lapses[1] <= now < last.lapses[0]:
        return None  # an agent in contact then is not now
    raised = sorted({e.cluster_version or 0 for e in entries})
    if raised != list(range(was.version + 1, was.version + 1 + len(raised))):
        return None  # another writer raised it in between (or this one wrote no cluster)
    expected = was._replace(version=was.version + len(raised))
    cluster = last.cluster
    instances, versions = cluster.instances, cluster.versions  # current's own lists
    changed = set()
    for entry in entries:
        k = cluster.index.get(entry.instance_arn)
        if k is None:
            return None  # not placeable when read: the store refuses it, this cannot be
        instances[k] = charged(instances[k], entry, group)
        versions[k] = entry.version
        changed.add(k)
    last.cluster = ClusterSnapshot(
        instances,
        versions,
        cluster.index,
        next(_SERIALS),
        cluster.serial,
        frozenset(changed),
        Expected(last.arn, expected, tuple(last.silent), cutoff),
    )
    last.mark = entries[-1].seq if entries else last.mark
    last.fingerprint = expected
    return last.cluster


_CURRENT: dict[tuple[str, Needs, float], _Current] = {}
_CURRENT_LOCK = threading.Lock()
_SERIALS = itertools.count(1)


def forget_cluster(cluster_arn: str) -> None:
    """Plan the cluster's next calls on a fresh read: the store did not show what
    ``current`` expected."""
    with _CURRENT_LOCK:
        for key in [key for key in _CURRENT if key[0] == cluster_arn]:
            del _CURRENT[key]


def forget() -> None:
    """Drop every memo (the store was wiped: what they hold is of another world)."""
    _SNAPSHOTS.clear()
    _CURRENT.clear()
    _DOCUMENTS.clear()
    _VERSIONS.clear()
