"""What placement reads of a cluster, in one read transaction and a query per table.

RunTask reads every ACTIVE and DRAINING instance of the cluster on every call, so the
read is split by how often things change:

- an ``InstanceRow`` per instance (every call), a plain tuple so that thousands cost
  little to make and compare: the instance's columns but its document, and the
  attributes the call names (aggregated into one string by the database, decoded
  once per distinct string);
- ``InstanceDocument`` (the stored JSON: resources, versionInfo), only for the
  instances whose version the caller does not hold already. Every write of an
  instance's document raises its ``assignments_version`` (placing, releasing,
  ``recompute_remaining`` after a re-registration; see tasks.py), so a document read
  at a version stays right for as long as the version does;
- task counts grouped per instance: of the call's task group, and (only when an
  expression reads them) RUNNING tasks and every instance's groups.

All from one snapshot of the database (PostgreSQL: REPEATABLE READ; SQLite's read
transactions are snapshots), so the versions tell which placements it includes.

``fingerprint`` is the cheap question asked before that read: has anything placement
reads changed since? The cluster's ``placement_version`` rises (``raise_versions``) in
every transaction that writes what placement reads of its instances but agent contact:
registration, status, attributes, documents, the tasks they hold. With it come the
cluster's creation time (a cluster wiped and made again) and, for the instances whose
agent was out of contact at the last read, how many are back. RunTask asks it inside
its placing write (``Expected``: the write goes ahead only if the answer is the one
its plan assumed), so the question costs no round trip of its own.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from sqlalchemy import Connection, Engine, Select, bindparam, case, func, literal, select, update

from dockyard.store import db
from dockyard.store.schema import attributes, clusters, container_instances, tasks

INSTANCE_TARGET = "container-instance"  # the attributes' target type for instances
PLACEABLE = ("ACTIVE", "DRAINING")  # statuses placement considers (and explains)
# Attributes travel as one string per instance: entries split by RS, name and value by US.
_ENTRY, _VALUE = "\x1e", "\x1f"
_MEMO_LIMIT = 100_000

Attributes = tuple[tuple[str, str | None], ...]  # (name, value) pairs, sorted by name


# (ARN, EC2 instance ID, status, registeredAt, agent_seen_at, assignments_version, the
# attributes asked for)
InstanceRow = tuple[str, str, str, float, float | None, int, Attributes]
ARN: Final = 0
EC2_INSTANCE_ID: Final = 1
STATUS: Final = 2
REGISTERED_AT: Final = 3
AGENT_SEEN_AT: Final = 4
VERSION: Final = 5
ATTRIBUTES: Final = 6


class InstanceDocument(NamedTuple):
    version: int
    document: str  # JSON text: the caller parses it once per version


@dataclass(frozen=True)
class PlacementView:
    """Rows ordered by ARN. Task counts are of tasks not STOPPED, but ``running``
    (lastStatus RUNNING, as runningTasksCount); ``running`` and ``groups`` are empty
    unless asked for."""

    instances: list[InstanceRow]
    documents: dict[str, InstanceDocument]  # for the instances ``known`` lacked
    group_counts: dict[str, int]  # instance ARN -> tasks of the group
    running: dict[str, int]  # instance ARN -> RUNNING tasks
    groups: dict[str, frozenset[str]]  # instance ARN -> the groups of its tasks


def read(
    engine: Engine,
    cluster_arn: str,
    *,
    group: str,
    attribute_names: Collection[str],
    known: Mapping[str, int],
    instance_arns: Collection[str] | None = None,
    running: bool = False,
    groups: bool = False,
) -> PlacementView:
    """See the module docstring; ``known``: instance ARN -> the version of its
    document the caller holds."""
    c, a, t = container_instances.c, attributes.c, tasks.c
    entry = case((a.value.is_(None), a.name), else_=a.name + literal(_VALUE) + a.value)
    joined = container_instances.outerjoin(
        attributes,
        (a.cluster_arn == c.cluster_arn)
        & (a.target_id == c.arn)
        & (a.target_type == INSTANCE_TARGET)
        & a.name.in_(sorted(attribute_names) or [""]),
    )
    rows = (
        select(
            c.arn,
            c.ec2_instance_id,
            c.status,
            c.registered_at,
            c.agent_seen_at,
            c.assignments_version,
            func.aggregate_strings(entry, _ENTRY),
        )
        .select_from(joined)
        .where(c.cluster_arn == cluster_arn, c.status.in_(PLACEABLE))
        .group_by(c.arn)  # the key: PostgreSQL takes the other columns as dependent
        .order_by(c.arn)
    )
    unstopped = (t.cluster_arn == cluster_arn, t.last_status != "STOPPED")
    of_group = (
        select(t.container_instance_arn, func.count())
        .where(*unstopped, t.group_name == group)
        .group_by(t.container_instance_arn)
    )
    if instance_arns is not None:
        rows = rows.where(c.arn.in_(sorted(instance_arns)))
    with _snapshot(engine) as conn:
        # Decoded (and sorted: the aggregate's order is the plan's) so that equal rows
        # compare equal from one call to the next.
        instances: list[InstanceRow] = [
            (*columns, decode_attributes(text)) for *columns, text in conn.execute(rows)
        ]
        lacking = [r[ARN] for r in instances if known.get(r[ARN]) != r[VERSION]]
        documents = {}
        if lacking:
            query = select(c.arn, c.assignments_version, c.document)
            query = query.where(c.cluster_arn == cluster_arn)
            if instance_arns is not None or len(lacking) < len(instances):
                query = query.where(c.arn.in_(lacking))
            else:  # all of them (a first call): no list of thousands of ARNs
                query = query.where(c.status.in_(PLACEABLE))
            documents = {arn: InstanceDocument(*rest) for arn, *rest in conn.execute(query)}
        counts = {arn: n for arn, n in conn.execute(of_group) if arn}
        running_counts: dict[str, int] = {}
        if running:
            of_running = (
                select(t.container_instance_arn, func.count())
                .where(t.cluster_arn == cluster_arn, t.last_status == "RUNNING")
                .group_by(t.container_instance_arn)
            )
            running_counts = {arn: n for arn, n in conn.execute(of_running) if arn}
        held: dict[str, set[str]] = {}
        if groups:
            pairs = select(t.container_instance_arn, t.group_name).where(*unstopped).distinct()
            for arn, name in conn.execute(pairs):
                if arn:
                    held.setdefault(arn, set()).add(name)
    return PlacementView(
        instances=instances,
        documents=documents,
        group_counts=counts,
        running=running_counts,
        groups={arn: frozenset(names) for arn, names in held.items()},
    )


class Fingerprint(NamedTuple):
    cluster_created_at: float | None  # None: no such cluster
    version: int  # its placement_version
    back: int  # of the instances asked about, those in contact after the cutoff


# Built once: RunTask runs these on every call, and building a statement costs more
# than running it on SQLite.
_k, _c = clusters.c, container_instances.c
_FINGERPRINT = select(_k.created_at, _k.placement_version, literal(0)).where(
    _k.arn == bindparam("cluster")
)
_FINGERPRINT_SILENT = select(
    _k.created_at,
    _k.placement_version,
    select(func.count())
    .where(_c.arn.in_(bindparam("silent", expanding=True)), _c.agent_seen_at > bindparam("cutoff"))
    .scalar_subquery(),
).where(_k.arn == bindparam("cluster"))
_RAISE_INSTANCES = (
    update(container_instances)
    .where(_c.arn.in_(bindparam("instances", expanding=True)))
    .values(assignments_version=_c.assignments_version + 1)
)
_RAISING = (
    update(clusters)
    .values(placement_version=_k.placement_version + 1)
    .returning(_k.arn, _k.placement_version)
)
RAISE_CLUSTER = _RAISING.where(_k.arn == bindparam("cluster"))
_RAISE_CLUSTERS = _RAISING.where(
    _k.arn.in_(bindparam("clusters", expanding=True))
    | _k.arn.in_(select(_c.cluster_arn).where(_c.arn.in_(bindparam("of", expanding=True))))
)


def fingerprint(
    engine: Engine, cluster_arn: str, *, silent: Collection[str] = (), cutoff: float = 0.0
) -> Fingerprint:
    """The cluster's ``Fingerprint``; ``silent``: instances whose agent was out of
    contact (a poll raises no version)."""
    with db.statement(engine) as conn:
        row = conn.execute(*fingerprint_query(cluster_arn, silent, cutoff)).first()
    return as_fingerprint(row)


class Expected(NamedTuple):
    """The cluster a placement was planned on: its fingerprint then (with the
    ``silent`` instances and ``cutoff`` it was taken with). ``TaskStore.place`` writes
    only while the cluster still has it."""

    cluster_arn: str
    fingerprint: Fingerprint
    silent: tuple[str, ...]
    cutoff: float

    def query(self) -> tuple[Select[Any], dict[str, Any]]:
        return fingerprint_query(self.cluster_arn, self.silent, self.cutoff)

    def seen_in(self, rows: Sequence[Sequence[Any]]) -> bool:
        """Whether the rows of ``query`` show the fingerprint expected."""
        return as_fingerprint(rows[0] if rows else None) == self.fingerprint


def fingerprint_query(
    cluster_arn: str, silent: Collection[str], cutoff: float
) -> tuple[Select[Any], dict[str, Any]]:
    """The statement reading the fingerprint, and its parameters."""
    if silent:
        return _FINGERPRINT_SILENT, {
            "cluster": cluster_arn,
            "silent": sorted(silent),
            "cutoff": cutoff,
        }
    return _FINGERPRINT, {"cluster": cluster_arn}


def as_fingerprint(row: Sequence[Any] | None) -> Fingerprint:
    """A fingerprint statement's row as a ``Fingerprint`` (None: no such cluster)."""
    if row is None:
        return Fingerprint(None, 0, 0)
    return Fingerprint(row[0], row[1], row[2])


def raise_versions(
    conn: Connection, *, instance_arns: Collection[str] = (), cluster_arns: Collection[str] = ()
) -> dict[str, int]:
    """Raise the ``assignments_version`` of ``instance_arns`` and the
    ``placement_version`` of their clusters and of ``cluster_arns``, in the caller's
    write transaction; the clusters' new versions."""
    arns = sorted(set(instance_arns))
    if arns:
        conn.execute(_RAISE_INSTANCES, {"instances": arns})
    if not arns and not cluster_arns:
        return {}
    parameters = {"clusters": sorted(set(cluster_arns)), "of": arns}
    return {arn: version for arn, version in conn.execute(_RAISE_CLUSTERS, parameters)}


@contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            yield conn


_DECODED: dict[str, Attributes] = {}


def decode_attributes(text: str | None) -> Attributes:
    """An aggregated string's attributes; instances alike share one (memoised) tuple."""
    if not text:
        return ()
    found = _DECODED.get(text)
    if found is None:
        pairs = []
        for item in text.split(_ENTRY):
            name, separator, value = item.partition(_VALUE)
            pairs.append((name, value if separator else None))
        found = tuple(sorted(pairs))
        if len(_DECODED) >= _MEMO_LIMIT:
            _DECODED.clear()
        _DECODED[text] = found
    return found
