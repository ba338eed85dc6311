"""Strategies: the order in which fitting instances are preferred (best effort; the
filters are what bind).

Each strategy gives an instance a number, lower preferred, and the user's strategies
compare as a tuple in the user's order:

    binpack(cpu|memory)      what the instance has left of it (the fullest first)
    spread(instanceId|host)  tasks of the group on the instance
    spread(attribute:NAME)   tasks of the group on all instances with its value of NAME
                             (an instance without NAME has the value None)
    random                   ends the list: candidates still tied are drawn uniformly

Candidates still tied after the last strategy are drawn uniformly with the caller's
rng, which is exactly what ``random`` means, so strategies after a ``random`` can never
matter and are dropped. A seeded rng makes every choice repeatable.

``Ranking`` keeps that order as tasks are placed, without rescanning the instances:
instances with equal values of every shared attribute spread form a *class* (e.g. one
per availability zone); within a class only an instance's own numbers can differ, so
each class buckets its members by their own numbers (``Buckets``) and the classes are
bucketed by their best member's full tuple. A placement changes the chosen instance's
numbers and the counts of its attribute values, so only its class (and classes sharing
one of those values) move. ``stop_order`` applies the same strategies to scale-in.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import replace
from typing import Generic, TypeVar

from dockyard.scheduler.model import Instance, Resources, RunningTask, Strategy

Key = tuple[int, ...]
T = TypeVar("T", bound=Hashable)


def effective(strategies: Sequence[Strategy]) -> tuple[Strategy, ...]:
    """The strategies that can change a choice: those before the first random."""
    kept = []
    for strategy in strategies:
        if strategy.type == "random":
            break
        kept.append(strategy)
    return tuple(kept)


class Buckets(Generic[T]):
    """Items grouped by key, lowest key first: O(log n) add, O(1) remove and best."""

    def __init__(self) -> None:
        self._buckets: dict[Key, list[T]] = {}
        self._where: dict[T, int] = {}  # item -> its index in its bucket
        self._heap: list[Key] = []  # may hold keys of buckets since emptied

    def add(self, key: Key, item: T) -> None:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = []
            heapq.heappush(self._heap, key)
        self._where[item] = len(bucket)
        bucket.append(item)

    def remove(self, key: Key, item: T) -> None:
        bucket = self._buckets[key]
        index = self._where.pop(item)
        last = bucket.pop()
        if index < len(bucket):
            bucket[index] = last
            self._where[last] = index
        if not bucket:
            del self._buckets[key]

    def best(self) -> tuple[Key, list[T]] | None:
        heap = self._heap
        while heap:
            bucket = self._buckets.get(heap[0])
            if bucket:
                return heap[0], bucket
            heapq.heappop(heap)
        return None


class _Class:
    """Fitting instances with the same value of every shared attribute spread."""

    __slots__ = ("key", "members", "values")

    def __init__(self, values: tuple[str | None, ...]) -> None:
        self.values = values
        self.members: Buckets[int] = Buckets()  # by the members' own numbers
        self.key: Key | None = None  # its full tuple, from its best member; None if empty


def best_of(ranked: Buckets[_Class], rng: random.Random) -> int | None:
    """A uniform draw among the best members of the top-ranked classes (None: empty)."""
    top = ranked.best()
    if top is None:
        return None
    buckets = [b[1] for b in (cls.members.best() for cls in top[1]) if b is not None]
    if len(buckets) == 1 and len(buckets[0]) == 1:
        return buckets[0][0]
    pick = rng.randrange(sum(map(len, buckets)))
    for bucket in buckets:
        if pick < len(bucket):
            return bucket[pick]
        pick -= len(bucket)
    raise AssertionError("unreachable: pick is below the total")


class Ranking:
    """The fitting candidates in strategy order, kept current as tasks are placed.

    ``instances`` are all the candidates (their tasks count for spread); ``fitting``
    indexes those that may take the task. After a placement on ``k`` call
    ``placed(k, left, fits)``; an instance that no longer fits leaves for good (within
    a call it only loses resources and gains tasks, so it never fits again).
    """

    def __init__(
        self,
        strategies: Sequence[Strategy],
        instances: Sequence[Instance],
        fitting: Sequence[int],
        group: str,
        rng: random.Random,
    ) -> None:
        self._rng = rng
        plan = effective(strategies)
        names = sorted({s.attribute for s in plan if s.attribute is not None})
        self._values = {n: [i.attributes.get(n) for i in instances] for n in names}
        self._on_instance = [i.group_counts.get(group, 0) for i in instances]
        self._counts = {n: Counter[str | None]() for n in names}
        holding = [k for k, tasks in enumerate(self._on_instance) if tasks]
        for name, counts in self._counts.items():
            for k in holding:
                counts[self._values[name][k]] += self._on_instance[k]
        # An attribute whose values each sit on one fitting instance changes only with
        # that instance, so it ranks like the instance's own numbers.
        self._shared = [n for n in names if _repeats(self._values[n][k] for k in fitting)]
        # Per strategy: (True, index into class values) or (False, index into own numbers).
        self._layout: list[tuple[bool, int]] = []
        self._own: list[tuple[str, str]] = []  # (binpack, cpu|memory) or (spread, field)
        for s in plan:
            if s.attribute in self._shared:
                self._layout.append((True, self._shared.index(s.attribute)))
            else:
                self._layout.append((False, len(self._own)))
                self._own.append((s.type, s.attribute or s.field or ""))
        self._left = {k: instances[k].remaining for k in fitting}
        self._own_key = self._initial_keys(fitting)
        self._class_of: dict[int, _Class] = {}
        self._classes: dict[tuple[str | None, ...], _Class] = {}
        # Per shared attribute: value -> the classes with it (a count change moves them).
        self._sharing: list[dict[str | None, list[_Class]]] = [{} for _ in self._shared]
        self._ranked: Buckets[_Class] = Buckets()
        of_class = list(zip(*(self._values[n] for n in self._shared), strict=True))
        for k in fitting:
            self._join(k, of_class[k] if of_class else ()).members.add(self._own_key[k], k)
        for cls in self._classes.values():
            self._rerank(cls)

    def best(self) -> int | None:
        """The index of the instance to place on, or None when nothing fits."""
        return best_of(self._ranked, self._rng)

    def placed(self, k: int, left: Resources, fits: bool) -> None:
        cls = self._class_of[k]
        cls.members.remove(self._own_key[k], k)
        self._on_instance[k] += 1
        for name, counts in self._counts.items():
            counts[self._values[name][k]] += 1
        self._left[k] = left
        if fits:
            self._own_key[k] = self._key_of(k)
            cls.members.add(self._own_key[k], k)
        moved = {cls}
        if len(self._shared) > 1:  # with one, the value's only class is cls itself
            for n, sharing in enumerate(self._sharing):
                moved.update(sharing[cls.values[n]])
        for other in moved:
            self._rerank(other)

    def _join(self, k: int, values: tuple[str | None, ...]) -> _Class:
        cls = self._classes.get(values)
        if cls is None:
            cls = self._classes[values] = _Class(values)
            for n, value in enumerate(values):
                self._sharing[n].setdefault(value, []).append(cls)
        self._class_of[k] = cls
        return cls

    def _initial_keys(self, fitting: Sequence[int]) -> dict[int, Key]:
        """``_key_of`` for every fitting instance at once, a column per strategy."""
        columns = []
        for kind, what in self._own:
            if kind == "binpack":
                lefts = [self._left[k] for k in fitting]
                columns.append(
                    [x.cpu for x in lefts] if what == "cpu" else [x.memory for x in lefts]
                )
            elif what == "instanceId":
                columns.append([self._on_instance[k] for k in fitting])
            else:
                counts, values = self._counts[what], self._values[what]
                columns.append([counts[values[k]] for k in fitting])
        if not columns:
            return dict.fromkeys(fitting, ())
        return dict(zip(fitting, zip(*columns, strict=True), strict=True))

    def _key_of(self, k: int) -> Key:
        """Instance ``k``'s own numbers, in strategy order."""
        left, key = self._left[k], []
        for kind, what in self._own:
            if kind == "binpack":
                key.append(left.cpu if what == "cpu" else left.memory)
            elif what == "instanceId":
                key.append(self._on_instance[k])
            else:
                key.append(self._counts[what][self._values[what][k]])
        return tuple(key)

    def _rerank(self, cls: _Class) -> None:
        if cls.key is not None:
            self._ranked.remove(cls.key, cls)
        best = cls.members.best()
        if best is None:
            cls.key = None
            return
        own = best[0]
        cls.key = tuple(
            self._counts[self._shared[at]][cls.values[at]] if shared else own[at]
            for shared, at in self._layout
        )
        self._ranked.add(cls.key, cls)


def _repeats(values: Iterable[object]) -> bool:
    seen = set()
    for value in values:
        if value in seen:
            return True
        seen.add(value)
    return False


def stop_order(
    hosted: Sequence[tuple[Instance, Sequence[RunningTask]]],
    count: int,
    strategies: Sequence[Strategy],
    rng: random.Random,
) -> list[str]:
    """Which ``count`` tasks scale-in stops, one at a time, each by the strategies read
    backwards: binpack stops the task whose instance has the most of the resource
    free once it is stopped; spread stops a task where the group has the most tasks
    (on that instance, or on that attribute value) to keep the balance; ties, and
    random, are drawn uniformly. Counts are of the tasks given (the group's)."""
    plan = effective(strategies)
    names = {s.attribute for s in plan if s.attribute is not None}
    left = [instance.remaining for instance, _ in hosted]
    per_instance = [len(tasks) for _, tasks in hosted]
    per_value = {n: Counter[str | None]() for n in names}
    for instance, tasks in hosted:
        for n in names:
            per_value[n][instance.attributes.get(n)] += len(tasks)
    remaining = [(j, task) for j, (_, tasks) in enumerate(hosted) for task in tasks]

    def key(j: int, task: RunningTask) -> Key:
        instance, numbers = hosted[j][0], []
        for s in plan:
            if s.type == "binpack":
                free = left[j].cpu + task.cpu if s.field == "cpu" else left[j].memory + task.memory
                numbers.append(-free)
            elif s.attribute is None:
                numbers.append(-per_instance[j])
            else:
                numbers.append(-per_value[s.attribute][instance.attributes.get(s.attribute)])
        return tuple(numbers)

    stopped: list[str] = []
    while remaining and len(stopped) < count:
        keys = [key(j, task) for j, task in remaining]
        lowest = min(keys)
        tied = [n for n, k in enumerate(keys) if k == lowest]
        j, task = remaining.pop(tied[rng.randrange(len(tied))] if len(tied) > 1 else tied[0])
        stopped.append(task.arn)
        held = left[j]
        left[j] = replace(held, cpu=held.cpu + task.cpu, memory=held.memory + task.memory)
        per_instance[j] -= 1
        for n in names:
            per_value[n][hosted[j][0].attributes.get(n)] -= 1
    return stopped
