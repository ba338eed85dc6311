"""``place`` for a stream of calls alike on one cluster, kept between the calls.

``place`` builds its filters' answers and its ranking from all the instances on every
call: O(n) before the first task lands. RunTask on a cluster of thousands calls it
again and again with the same demand, constraints and strategies while few instances
change in between, so ``PlacementIndex`` keeps what ``place`` would build and, before
each call, ``sync`` re-evaluates only the instances that changed (told apart by
identity: the snapshot keeps an unchanged instance as the same object). A placement
is then O(log n) plus the instances that changed since the last call.

The choice is exactly ``place``'s: every task goes to an instance the strategies rank
best among all that fit, ties drawn uniformly with the caller's rng (the order within
a tie may differ from ``place``'s, so the same seed may draw another of the tied).

Only for constraints that a placement cannot change the answer of: memberOf
expressions reading ``runningTasksCount`` or ``task:group`` count this call's tasks as
``place`` does (``filters.Subject``), which the stored instances do not; those calls
use ``place`` (``supports``).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import replace

from dockyard.scheduler.filters import CHANGING_SUBJECTS, Feasibility
from dockyard.scheduler.model import (
    Constraint,
    Failure,
    Instance,
    PlacementResult,
    Strategy,
    TaskDemand,
)
from dockyard.scheduler.placement import charge
from dockyard.scheduler.strategies import Buckets, Key, _Class, best_of, effective


def supports(constraints: Sequence[Constraint]) -> bool:
    """Whether ``PlacementIndex`` places exactly as ``place`` under ``constraints``."""
    return not any(c.query and c.query.subjects & CHANGING_SUBJECTS for c in constraints)


class PlacementIndex:
    """The candidates of one kind of call (demand, constraints, strategies), which of
    them fit, and the strategies' order over those, as of the last ``sync`` and the
    placements since.

    Every spread attribute makes classes (instances alike in all of them), as in
    ``Ranking``; binpack and spread(instanceId) numbers are an instance's own.
    """

    def __init__(
        self,
        demand: TaskDemand,
        constraints: Sequence[Constraint],
        strategies: Sequence[Strategy],
    ) -> None:
        assert supports(constraints), "runningTasksCount/task:group memberOf: use place()"
        self.demand = demand
        self.feasibility = Feasibility(demand, constraints)
        plan = effective(strategies)
        self._names = sorted({s.attribute for s in plan if s.attribute is not None})
        # Per strategy: (True, index into class values) or (False, index into own numbers).
        self._layout: list[tuple[bool, int]] = []
        self._own: list[tuple[str, str]] = []  # (binpack, cpu|memory) or (spread, instanceId)
        for s in plan:
            if s.attribute is not None:
                self._layout.append((True, self._names.index(s.attribute)))
            else:
                self._layout.append((False, len(self._own)))
                self._own.append((s.type, s.field or ""))
        self._reset([])

    def _reset(self, instances: Sequence[Instance]) -> None:
        self._instances: list[Instance] = []
        self._tasks: list[int] = []  # the group's tasks on each candidate (0 otherwise)
        self._key: list[Key | None] = []  # own numbers of a fitting instance, else None
        self._class_of: list[_Class | None] = []
        self._counts = [Counter[str | None]() for _ in self._names]
        self._classes: dict[tuple[str | None, ...], _Class] = {}
        self._sharing: list[dict[str | None, list[_Class]]] = [{} for _ in self._names]
        self._ranked: Buckets[_Class] = Buckets()
        self._arns: dict[str, int] = {}
        moved: set[_Class] = set()
        for k, instance in enumerate(instances):
            self._instances.append(instance)
            self._tasks.append(0)
            self._key.append(None)
            self._class_of.append(None)
            self._arns[instance.arn] = k
            self._enter(k, instance, moved)
        for cls in moved:
            self._rerank(cls)

    def sync(self, instances: Sequence[Instance], changed: Iterable[int] | None = None) -> None:
        """Take ``instances`` (the cluster now, in a stable order) as the truth: only
        those that are not the very objects held are evaluated again. ``changed``: the
        positions where they can be (the caller knows that nothing else changed)."""
        held = self._instances
        if len(instances) != len(held):
            self._reset(instances)
            return
        moved: set[_Class] = set()
        for k in range(len(instances)) if changed is None else changed:
            instance = instances[k]
            if instance is not held[k]:
                if instance.arn != held[k].arn:
                    self._reset(instances)
                    return
                self._leave(k, moved)
                self._enter(k, instance, moved)
        for cls in moved:
            self._rerank(cls)

    def place(self, count: int, rng: random.Random) -> PlacementResult:
        """``place(demand, count, instances, constraints, strategies, rng)`` on the
        instances of the last ``sync``; the index then holds them charged."""
        chosen: list[str] = []
        placed: Counter[int] = Counter()
        group = self.demand.group
        for _ in range(count):
            k = best_of(self._ranked, rng)
            if k is None:
                failure = self._closest(placed)
                return PlacementResult(tuple(chosen), (failure,) if failure else ())
            before = self._instances[k]
            counts = {**before.group_counts, group: before.group_counts.get(group, 0) + 1}
            after = replace(
                before,
                remaining=charge(before.remaining, self.demand),
                group_counts=counts,
                task_groups=before.task_groups | {group},
            )
            moved: set[_Class] = set()
            self._leave(k, moved)
            self._enter(k, after, moved)
            for cls in moved:
                self._rerank(cls)
            placed[k] += 1
            chosen.append(before.arn)
        return PlacementResult(tuple(chosen), ())

    # One instance in or out

    def _enter(self, k: int, instance: Instance, moved: set[_Class]) -> None:
        self._instances[k] = instance
        if not instance.serves(self.demand.launch_target):
            return  # not a candidate: neither counted nor placed on
        tasks = self._tasks[k] = instance.group_counts.get(self.demand.group, 0)
        values = tuple(instance.attributes.get(n) for n in self._names)
        if tasks:
            for n, value in enumerate(values):
                self._counts[n][value] += tasks
                moved.update(self._sharing[n].get(value, ()))
        if self.feasibility.refusal(instance) is not None:
            return
        cls = self._classes.get(values)
        if cls is None:
            cls = self._classes[values] = _Class(values)
            for n, value in enumerate(values):
                self._sharing[n].setdefault(value, []).append(cls)
        key = self._key[k] = self._own_key(instance, tasks)
        self._class_of[k] = cls
        cls.members.add(key, k)
        moved.add(cls)

    def _leave(self, k: int, moved: set[_Class]) -> None:
        instance, tasks = self._instances[k], self._tasks[k]
        if tasks:
            for n, name in enumerate(self._names):
                value = instance.attributes.get(name)
                self._counts[n][value] -= tasks
                moved.update(self._sharing[n].get(value, ()))
            self._tasks[k] = 0
        cls, key = self._class_of[k], self._key[k]
        if cls is not None and key is not None:
            cls.members.remove(key, k)
            moved.add(cls)
        self._class_of[k] = self._key[k] = None

    def _own_key(self, instance: Instance, tasks: int) -> Key:
        key = []
        for kind, what in self._own:
            if kind == "binpack":
                left = instance.remaining
                key.append(left.cpu if what == "cpu" else left.memory)
            else:  # spread(instanceId): the group's tasks here
                key.append(tasks)
        return tuple(key)

    # Ranking

    def _rerank(self, cls: _Class) -> None:
        if cls.key is not None:
            self._ranked.remove(cls.key, cls)
        best = cls.members.best()
        if best is None:
            cls.key = None
            return
        own = best[0]
        cls.key = tuple(
            self._counts[at][cls.values[at]] if shared else own[at] for shared, at in self._layout
        )
        self._ranked.add(cls.key, cls)

    def _closest(self, placed: Counter[int]) -> Failure | None:
        """As ``place`` reports it (None: no candidates at all): O(n), but only when a
        task fits nowhere."""
        target = self.demand.launch_target
        ks = [k for k, i in enumerate(self._instances) if i.serves(target)]
        if not ks:
            return None
        candidates = [self._instances[k] for k in ks]
        return self.feasibility.closest(
            candidates, [c.remaining for c in candidates], [placed[k] for k in ks]
        )
