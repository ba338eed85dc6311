"""``PlacementIndex`` (the engine kept between RunTask calls) against the same
brute-force oracle as ``place``: on a fresh cluster, and across calls where the
cluster changed in between (tasks written, instances changed, added or gone)."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dockyard.scheduler.index import PlacementIndex, supports
from dockyard.scheduler.model import Instance, Resources
from dockyard.scheduler.placement import charge
from tests.unit.test_placement_properties import GROUP, Call, calls, check, crowded


def _rng(call: Call) -> random.Random:
    return random.Random(call.seed)


def written(cluster: list[Instance], placements: tuple[str, ...], call: Call) -> list[Instance]:
    """The cluster as the store has it once the placements are written: new objects."""
    per = Counter(placements)
    out = []
    for i in cluster:
        n = per[i.arn]
        if not n:
            out.append(i)
            continue
        left = i.remaining
        for _ in range(n):
            left = charge(left, call.demand)
        counts = {**i.group_counts, GROUP: i.group_counts.get(GROUP, 0) + n}
        out.append(replace(i, remaining=left, group_counts=counts, task_groups=frozenset()))
    return out


@settings(max_examples=300)
@given(st.one_of(calls, crowded))
def test_a_fresh_index_places_as_the_oracle_says(call: Call) -> None:
    assume(supports(call.constraints))
    index = PlacementIndex(call.demand, call.constraints, call.strategies)
    index.sync(call.cluster)
    check(call, index.place(call.count, _rng(call)))


@settings(max_examples=300)
@given(st.one_of(calls, crowded), st.data())
def test_an_index_kept_between_calls_places_as_a_fresh_one(call: Call, data: st.DataObject) -> None:
    assume(supports(call.constraints))
    index = PlacementIndex(call.demand, call.constraints, call.strategies)
    cluster = call.cluster
    index.sync(cluster)
    for _ in range(3):
        first = index.place(data.draw(st.integers(1, 5)), _rng(call))
        cluster = written(cluster, first.placements, call)
        # Meanwhile: tasks stop (resources back, fewer of the group), an instance drains.
        changed = data.draw(st.lists(st.integers(0, len(cluster) - 1), max_size=3))
        for k in changed:
            i = cluster[k]
            cluster[k] = data.draw(
                st.sampled_from(
                    [
                        replace(
                            i, remaining=i.registered, group_counts={}, task_groups=frozenset()
                        ),
                        replace(i, status="DRAINING"),
                        replace(i, remaining=Resources(i.remaining.cpu + 256, i.remaining.memory)),
                        replace(i, attributes={**i.attributes, "ecs.availability-zone": "c"}),
                    ]
                )
            )
        if data.draw(st.booleans()) and len(cluster) > 1:
            cluster = cluster[1:]  # one went away: the index starts again
        index.sync(cluster)
        now = Call(cluster, call.demand, call.count, call.constraints, call.strategies, call.seed)
        result = index.place(call.count, _rng(call))
        check(now, result)
        cluster = written(cluster, result.placements, call)
        index.sync(cluster)
