"""What lets RunTask calls overlap without changing their answers: placing calls
alike in one engine run chooses what running them one after another would
(``placement_batch``), failures included.
"""

from __future__ import annotations

import random
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from dockyard.scheduler.model import (
    AVAILABILITY_ZONE,
    Constraint,
    Instance,
    Resources,
    Strategy,
    TaskDemand,
)
from dockyard.scheduler.placement import charge, place

GROUP = "service:web"


@st.composite
def clusters(draw: st.DrawFn) -> list[Instance]:
    """Instances whose memory left never ties under binpack: each leaves a different
    remainder by the task's 128 MiB, however many tasks it takes. (With ties, both ways
    draw from the same choices, but not the same one.)"""
    size = draw(st.integers(1, 8))
    odd = draw(st.lists(st.integers(1, 127), min_size=size, max_size=size, unique=True))
    memories = [128 * draw(st.integers(0, 6)) + r for r in odd]
    return [
        Instance(
            arn=f"arn:{n}",
            ec2_instance_id=f"i-{n:03d}",
            registered=Resources(4096, m),
            remaining=Resources(4096, m),
            attributes={"ecs.availability-zone": "abc"[n % 3]},
            group_counts={GROUP: draw(st.integers(0, 2))},
        )
        for n, m in enumerate(memories)
    ]


PLANS = [
    (Strategy.binpack("memory"),),
    (Strategy.spread(AVAILABILITY_ZONE), Strategy.binpack("memory")),
]


@settings(max_examples=200, deadline=None)
@given(
    instances=clusters(),
    counts=st.lists(st.integers(1, 10), min_size=2, max_size=4),
    plan=st.sampled_from(PLANS),
    distinct=st.booleans(),
)
def test_alike_calls_placed_together_choose_what_one_after_another_would(
    instances: list[Instance], counts: list[int], plan: tuple[Strategy, ...], distinct: bool
) -> None:
    demand = TaskDemand(cpu=128, memory=128, group=GROUP)
    constraints = (Constraint.distinct_instance(),) if distinct else ()
    together = place(demand, sum(counts), instances, constraints, plan, random.Random(1))

    state, chosen, failures = list(instances), [], []
    for count in counts:
        result = place(demand, count, state, constraints, plan, random.Random(1))
        chosen += result.placements
        failures = failures or list(result.failures)
        for arn in result.placements:  # the write, as the next call's snapshot shows it
            k = next(k for k, i in enumerate(state) if i.arn == arn)
            held = state[k].group_counts.get(GROUP, 0)
            state[k] = replace(
                state[k],
                remaining=charge(state[k].remaining, demand),
                group_counts={GROUP: held + 1},
                task_groups=frozenset({GROUP}),
            )
    assert list(together.placements) == chosen
    assert list(together.failures) == failures
