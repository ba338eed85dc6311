"""RunTask's placing write in one statement, one round trip (PostgreSQL).

``TaskStore.place`` takes two round trips: it locks the instances and reads their
documents, checks each task still fits, then writes. When the plan was made on a
cluster ``current`` vouches for (``Expected``) and this process knows each instance's
document at the version the plan saw (``task_rows.known``: it read or wrote it last),
the check can be made before sending, and one statement does the rest: it locks the
instances, raises the cluster's version only if the cluster shows the fingerprint
expected and every instance is ACTIVE with the very document the new one was made
from, and writes the documents and the tasks only if it did. Otherwise it writes
nothing and the plan is stale, as in the long way. Lock order as there: instances (by
ARN), then the cluster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import BigInteger, Engine, Text, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY

from dockyard.store import placement, task_rows
from dockyard.store.models import Resources, Task
from dockyard.store.pipeline import one_statement
from dockyard.store.resources import shortfall
from dockyard.store.schema import tasks
from dockyard.store.task_rows import Placed


def place_at_once(
    engine: Engine, new: Sequence[Task], expected: placement.Expected, versions: Mapping[str, int]
) -> Placed | None:
    """``place`` in one round trip, when every instance of ``new`` is known at the
    version the plan saw and takes its tasks; None when not (``place`` goes the long
    way). The statement writes only if the cluster shows ``expected`` and each
    instance is still ACTIVE with the very document the new one was made from."""
    if engine.dialect.name != "postgresql" or not new:
        return None
    remaining: dict[str, Resources] = {}
    parsed: dict[str, dict[str, Any]] = {}
    olds: dict[str, str] = {}
    placed: list[Task] = []
    for task in new:
        arn = task.container_instance_arn or ""
        if arn not in remaining:
            document = task_rows.known(arn, versions.get(arn))
            if document is None:
                return None
            olds[arn] = document
            parsed[arn], remaining[arn] = task_rows.parsed(document)
        if shortfall(remaining[arn], task.resources) is not None:
            return None  # the long way refuses it, with the reason
        holding, remaining[arn] = task_rows.holding(task, remaining[arn])
        placed.append(holding)
    touched = sorted(remaining)
    news = [task_rows.with_remaining_text(parsed[arn], remaining[arn]) for arn in touched]
    rows = [task_rows.row(t) for t in placed]
    fingerprint = expected.fingerprint
    parameters = {
        "cluster": expected.cluster_arn,
        "created": fingerprint.cluster_created_at,
        "version": fingerprint.version,
        "silent": list(expected.silent),
        "cutoff": expected.cutoff,
        "back": fingerprint.back,
        "arns": touched,
        "versions": [versions[arn] for arn in touched],
        "olds": [olds[arn] for arn in touched],
        "news": news,
        **{f"t_{name}": [row[name] for row in rows] for name in rows[0]},
    }
    answer = one_statement(engine, _AT_ONCE, parameters, binary=True)
    if not answer:
        return Placed([], [], {}, {}, stale=True)
    raised = {arn: versions[arn] + 1 for arn in touched}
    for arn, document in zip(touched, news, strict=True):
        task_rows.know(arn, raised[arn], document)
    return Placed(placed, [], raised, {expected.cluster_arn: answer[0][0]})


_TASK_COLUMNS = ", ".join(f'"{c.name}"' for c in tasks.c)
_AT_ONCE = text(
    f"""
WITH locked AS (
    SELECT arn, assignments_version, status, document FROM container_instances
    WHERE arn = ANY(:arns) AND cluster_arn = :cluster ORDER BY arn FOR UPDATE
), raised AS (
    UPDATE clusters SET placement_version = placement_version + 1
    WHERE arn = :cluster AND created_at = :created AND placement_version = :version
    AND (SELECT count(*) FROM container_instances
         WHERE arn = ANY(:silent) AND agent_seen_at > :cutoff) = :back
    AND (SELECT count(*) FROM locked JOIN unnest(:arns, :versions, :olds) AS e(arn, v, old)
         ON locked.arn = e.arn AND locked.assignments_version = e.v
         AND locked.status = 'ACTIVE' AND locked.document = e.old) = cardinality(:arns)
    RETURNING placement_version
), documents AS (
    UPDATE container_instances SET document = e.new, assignments_version = e.v + 1
    FROM unnest(:arns, :versions, :news) AS e(arn, v, new)
    WHERE container_instances.arn = e.arn AND EXISTS (SELECT FROM raised)
), added AS (
    INSERT INTO tasks ({_TASK_COLUMNS})
    SELECT * FROM unnest({", ".join(f":t_{c.name}" for c in tasks.c)})
    WHERE EXISTS (SELECT FROM raised)
)
SELECT placement_version FROM raised
"""
).bindparams(
    bindparam("silent", type_=ARRAY(Text)),
    bindparam("arns", type_=ARRAY(Text)),
    bindparam("versions", type_=ARRAY(BigInteger)),
    bindparam("olds", type_=ARRAY(Text)),
    bindparam("news", type_=ARRAY(Text)),
    *(bindparam(f"t_{c.name}", type_=ARRAY(c.type)) for c in tasks.c),
)
