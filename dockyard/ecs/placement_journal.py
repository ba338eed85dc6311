"""This process's recent placements per cluster, for snapshots read while they were
being written.

StartTask reads its snapshot of the cluster without holding the cluster's lock, then
takes the lock to check and write. Placements other calls wrote meanwhile may be
missing from that snapshot; if it did not see them it would give the same resources
again and lose the race at the store. The journal has every placement this process
wrote, with the ``assignments_version`` the write gave its instance (and the cluster's
``placement_version``). Versions only rise and the snapshot is a consistent one, so an
instance whose version in the snapshot is below a placement's missed exactly that
placement, and ``catch_up`` charges it to the instance. RunTask, which reads under the
lock, uses the journal the other way round: ``since`` tells what this process wrote
after its last read, so that ``placement_snapshot.current`` can skip the next read.

What the journal cannot know (placements by other server processes, tasks stopping)
is either in the snapshot or not; the store re-checks every placement either way.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace

from dockyard.scheduler.model import Instance, Resources
from dockyard.store.task_rows import Placed

_KEPT = 4096  # placements per cluster; a snapshot older than them just risks a retry


@dataclass(frozen=True)
class Entry:
    seq: int
    instance_arn: str
    version: int  # the instance's assignments_version once this was written
    cluster_version: int | None  # the cluster's placement_version then (None: no cluster)
    group: str
    held: Resources


class Journal:
    def __init__(self) -> None:
        self._seq = 0
        self._entries: deque[Entry] = deque(maxlen=_KEPT)

    def mark(self) -> int:
        """Take before reading a snapshot: what was written before is in it."""
        return self._seq

    def record(self, written: Placed) -> None:
        """Call holding the cluster's lock, right after the store wrote."""
        for task in written.placed:
            arn = task.container_instance_arn
            if arn is None:
                continue
            self._seq += 1
            r = task.resources
            held = Resources(r.cpu, r.memory, r.ports, r.ports_udp, len(r.gpus))
            self._entries.append(
                Entry(
                    self._seq,
                    arn,
                    written.versions[arn],
                    written.cluster_versions.get(task.cluster_arn),
                    task.group,
                    held,
                )
            )

    def catch_up(
        self,
        instances: Sequence[Instance],
        versions: Sequence[int],
        index: dict[str, int],
        mark: int,
        group: str,
    ) -> list[Instance]:
        """``instances`` (read at ``versions``, positions in ``index``) with the
        placements written since ``mark`` that the snapshot does not include."""
        caught = list(instances)
        for entry in self._since(mark):
            k = index.get(entry.instance_arn)
            if k is None or versions[k] >= entry.version:
                continue  # not placeable any more, or already in the snapshot
            caught[k] = charged(caught[k], entry, group)
        return caught

    def since(self, mark: int) -> list[Entry] | None:
        """The placements written after ``mark``, oldest first; None when some of them
        are no longer kept."""
        if self._seq - mark > len(self._entries):
            return None
        return self._since(mark)[::-1]

    def _since(self, mark: int) -> list[Entry]:
        found = []
        for entry in reversed(self._entries):
            if entry.seq <= mark:
                break
            found.append(entry)
        return found


def charged(instance: Instance, entry: Entry, group: str) -> Instance:
    """``instance`` holding the task of ``entry`` too."""
    left, held = instance.remaining, entry.held
    remaining = Resources(
        cpu=left.cpu - held.cpu,
        memory=left.memory - held.memory,
        ports_tcp=left.ports_tcp | held.ports_tcp,
        ports_udp=left.ports_udp | held.ports_udp,
        gpus=left.gpus - held.gpus,
    )
    counts = dict(instance.group_counts)
    if entry.group == group:
        counts[group] = counts.get(group, 0) + 1
    return replace(
        instance,
        remaining=remaining,
        group_counts=counts,
        task_groups=instance.task_groups | {entry.group},
    )


_JOURNALS: dict[str, Journal] = {}
_JOURNALS_LOCK = threading.Lock()


def journal(cluster_arn: str) -> Journal:
    with _JOURNALS_LOCK:
        return _JOURNALS.setdefault(cluster_arn, Journal())
