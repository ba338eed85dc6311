"""What lets RunTask calls overlap without changing their answers:

- a shared read is never older than any caller it serves;
- placing calls alike in one engine run chooses what running them one after another
  would (``placement_batch``), failures included.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dockyard.ecs.shared_reads import SharedReads
from dockyard.scheduler.model import (
    AVAILABILITY_ZONE,
    Constraint,
    Instance,
    Resources,
    Strategy,
    TaskDemand,
)
from dockyard.scheduler.placement import charge, place


def test_a_caller_arriving_during_a_read_waits_for_the_next_one() -> None:
    reads = SharedReads[int]()
    started: list[float] = []
    release = threading.Event()

    def read() -> int:
        started.append(time.monotonic())
        if len(started) == 1:
            release.wait(5)
        return len(started)

    results: dict[str, int] = {}
    arrived: dict[str, float] = {}

    def caller(name: str) -> None:
        arrived[name] = time.monotonic()
        results[name] = reads.read("cluster", read)

    first = threading.Thread(target=caller, args=("first",))
    first.start()
    while not started:
        time.sleep(0.001)
    late = [threading.Thread(target=caller, args=(f"late{n}",)) for n in range(3)]
    for thread in late:
        thread.start()
    time.sleep(0.05)
    release.set()
    for thread in [first, *late]:
        thread.join(5)
    # The first read served only the first caller; one more served all the late ones,
    # and it began after each of them arrived.
    assert results == {"first": 1, "late0": 2, "late1": 2, "late2": 2}
    assert all(started[1] >= arrived[f"late{n}"] for n in range(3))


def test_a_failed_read_fails_every_caller_it_serves() -> None:
    reads = SharedReads[int]()

    def read() -> int:
        raise RuntimeError("database gone")

    with pytest.raises(RuntimeError, match="database gone"):
        reads.read("cluster", read)
    assert reads.read("cluster", lambda: 7) == 7  # the next read starts afresh


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
