"""Filters: may this instance take one more task of this demand? Each answers None or
the ECS reason it may not, so every refusal can be explained (STYLE habit 3).

Reasons, in the order they are checked and reported (ECS checks resources, then
constraints; status and agent come first because they decide candidacy):

    INACTIVE / DRAINING   the instance's status is not ACTIVE
    AGENT                 its agent is not connected
    RESOURCE:CPU, RESOURCE:MEMORY, RESOURCE:GPU, RESOURCE:PORTS
    ATTRIBUTE             a requiresAttributes entry is missing (or has another value)
    MemberOf              a memberOf expression does not match
    DistinctInstance      the instance already runs a task of the group

``Feasibility`` evaluates them for one call: the static ones (status, agent,
attributes, and memberOf expressions that read only fixed fields) once per instance;
after each placement only the chosen instance is checked again.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence

from dockyard.scheduler import query
from dockyard.scheduler.model import Constraint, Failure, Instance, Resources, TaskDemand

INACTIVE, DRAINING, AGENT = "INACTIVE", "DRAINING", "AGENT"
CPU, MEMORY, GPU, PORTS = "RESOURCE:CPU", "RESOURCE:MEMORY", "RESOURCE:GPU", "RESOURCE:PORTS"
ATTRIBUTE, MEMBER_OF, DISTINCT_INSTANCE = "ATTRIBUTE", "MemberOf", "DistinctInstance"
UNAVAILABLE = frozenset({INACTIVE, DRAINING, AGENT})
# What placing a task changes on its instance; memberOf expressions reading these are
# evaluated again on the chosen instance after each placement.
CHANGING_SUBJECTS = frozenset({"runningTasksCount", "task:group"})


def status(instance: Instance) -> str | None:
    if instance.status == "ACTIVE":
        return None
    return DRAINING if instance.status == "DRAINING" else INACTIVE


def agent(instance: Instance) -> str | None:
    return None if instance.agent_connected else AGENT


def shortfalls(left: Resources, demand: TaskDemand) -> list[str]:
    """Every resource ``left`` lacks for ``demand``, in reason order."""
    found = []
    if demand.cpu > left.cpu:
        found.append(CPU)
    if demand.memory > left.memory:
        found.append(MEMORY)
    if demand.gpus > left.gpus:
        found.append(GPU)
    if demand.ports_tcp & left.ports_tcp or demand.ports_udp & left.ports_udp:
        found.append(PORTS)
    return found


def attributes(instance: Instance, demand: TaskDemand) -> str | None:
    have = instance.attributes
    for required in demand.required_attributes:
        if required.name not in have:
            return ATTRIBUTE
        if required.value is not None and have[required.name] != required.value:
            return ATTRIBUTE
    return None


class Subject:
    """An instance as a memberOf expression sees it after this call's placements on it:
    more running tasks, and the task's group among its groups."""

    __slots__ = (
        "agent_connected",
        "agent_version",
        "attributes",
        "ec2_instance_id",
        "registered_at",
        "running_tasks_count",
        "task_groups",
    )

    def __init__(self, instance: Instance, placed: int, group: str) -> None:
        self.agent_connected = instance.agent_connected
        self.agent_version = instance.agent_version
        self.attributes = instance.attributes
        self.ec2_instance_id = instance.ec2_instance_id
        self.registered_at = instance.registered_at
        self.running_tasks_count = instance.running_tasks_count + placed
        self.task_groups = instance.task_groups | {group} if placed else instance.task_groups


class Memo:
    """A memberOf expression that remembers its answers by the values of the subjects
    it reads, so instances alike in those (same type, same zone ...) share one
    evaluation, as Nomad's computed node classes do for constraints."""

    def __init__(self, text: str, expression: query.Expression) -> None:
        self.text = text
        self.expression = expression
        readers = [_reader(s) for s in sorted(expression.subjects)]
        self._readers = None if None in readers else [r for r in readers if r is not None]
        self._answers: dict[tuple[object, ...], bool] = {}

    def matches(self, subject: query.QuerySubject) -> bool:
        if self._readers is None:
            return self.expression.matches(subject)
        key = tuple([read(subject) for read in self._readers])
        answer = self._answers.get(key)
        if answer is None:
            answer = self._answers[key] = self.expression.matches(subject)
        return answer


_FIELDS = {
    "agentConnected": "agent_connected",
    "agentVersion": "agent_version",
    "ec2InstanceId": "ec2_instance_id",
    "registeredAt": "registered_at",
    "runningTasksCount": "running_tasks_count",
    "task:group": "task_groups",
}
_MISSING = object()  # an absent attribute, unlike one present without a value (None)


def _reader(subject: str) -> Callable[[query.QuerySubject], object] | None:
    """How to read ``subject`` off an instance; None for one this module does not know
    (its expressions are then evaluated every time)."""
    if subject in _FIELDS:
        return operator.attrgetter(_FIELDS[subject])
    if subject.startswith("attribute:"):
        name = subject.removeprefix("attribute:")
        return lambda instance: instance.attributes.get(name, _MISSING)
    return None


class Feasibility:
    """The filters for one call: a demand and its constraints."""

    def __init__(self, demand: TaskDemand, constraints: Sequence[Constraint]) -> None:
        self.demand = demand
        self.member_of = [
            Memo(c.expression or "", c.query) for c in constraints if c.query is not None
        ]
        self.distinct = any(c.type == "distinctInstance" for c in constraints)
        self.changing = [m for m in self.member_of if m.expression.subjects & CHANGING_SUBJECTS]

    def refusal(self, instance: Instance) -> str | None:
        """The first reason ``instance`` may not take the task before any placement:
        ``refusals(...)[0]`` written out, as it runs once per instance per call."""
        demand, left = self.demand, instance.remaining
        if instance.status != "ACTIVE":
            return status(instance)
        if not instance.agent_connected:
            return AGENT
        if demand.cpu > left.cpu:
            return CPU
        if demand.memory > left.memory:
            return MEMORY
        if demand.gpus > left.gpus:
            return GPU
        if demand.ports_tcp & left.ports_tcp or demand.ports_udp & left.ports_udp:
            return PORTS
        if demand.required_attributes and attributes(instance, demand):
            return ATTRIBUTE
        for memo in self.member_of:
            if not memo.matches(instance):
                return MEMBER_OF
        if self.distinct and instance.group_counts.get(demand.group, 0):
            return DISTINCT_INSTANCE
        return None

    def refusals(self, instance: Instance, left: Resources, placed: int) -> list[str]:
        """Every reason ``instance``, with ``left`` free after ``placed`` tasks of this
        call, may not take one more, in report order."""
        checks = (
            status(instance),
            agent(instance),
            *shortfalls(left, self.demand),
            attributes(instance, self.demand),
            self._member_of(instance, placed),
            self._distinct(instance, placed),
        )
        return [reason for reason in checks if reason is not None]

    def refit(self, instance: Instance, left: Resources, placed: int) -> bool:
        """Whether the instance just placed on still takes one more: only what a
        placement changes is checked again."""
        demand = self.demand
        if demand.cpu > left.cpu or demand.memory > left.memory or demand.gpus > left.gpus:
            return False
        if demand.ports_tcp or demand.ports_udp or self.distinct:
            return False  # its host ports are now taken; or it now runs one of the group
        if self.changing:
            subject = Subject(instance, placed, demand.group)
            return all(memo.matches(subject) for memo in self.changing)
        return True

    def _member_of(self, instance: Instance, placed: int) -> str | None:
        return MEMBER_OF if self._unmatched(instance, placed) else None

    def _unmatched(self, instance: Instance, placed: int) -> list[str]:
        if not self.member_of:
            return []
        subject = Subject(instance, placed, self.demand.group) if placed else instance
        return [memo.text for memo in self.member_of if not memo.matches(subject)]

    def _distinct(self, instance: Instance, placed: int) -> str | None:
        if not self.distinct:
            return None
        already = placed or instance.group_counts.get(self.demand.group, 0)
        return DISTINCT_INSTANCE if already else None

    def closest(
        self, candidates: Sequence[Instance], left: Sequence[Resources], placed: Sequence[int]
    ) -> Failure:
        """The refusal of the instance that came nearest to taking the task: an available
        one (status ACTIVE, agent connected) before others, then the fewest reasons,
        then the smallest resource shortfall relative to the demand, then the lowest EC2
        instance id. Asked only when no candidate fits, so every one has a reason."""
        demand = self.demand

        def gap(have: Resources) -> float:
            pairs = ((demand.cpu, have.cpu), (demand.memory, have.memory), (demand.gpus, have.gpus))
            return sum(max(0, need - got) / max(need, 1) for need, got in pairs)

        def distance(k: int) -> tuple[bool, int, float, str]:
            unavailable = bool(UNAVAILABLE.intersection(reasons[k]))
            return (unavailable, len(reasons[k]), gap(left[k]), candidates[k].ec2_instance_id)

        reasons = [self.refusals(c, left[k], placed[k]) for k, c in enumerate(candidates)]
        nearest = min(range(len(candidates)), key=distance)
        instance = candidates[nearest]
        lacked = self.explain(reasons[nearest], instance, left[nearest], placed[nearest])
        detail = f"Closest container instance {instance.ec2_instance_id}: {lacked}."
        return Failure(instance.arn, reasons[nearest][0], detail)

    def explain(
        self, reasons: Sequence[str], instance: Instance, left: Resources, placed: int
    ) -> str:
        """What ``instance`` lacked, for a failure's detail: one clause per reason."""
        return "; ".join(self._clause(reason, instance, left, placed) for reason in reasons)

    def _clause(self, reason: str, instance: Instance, left: Resources, placed: int) -> str:
        demand = self.demand
        if reason in (INACTIVE, DRAINING):
            return f"it is {instance.status}"
        if reason == AGENT:
            return "its agent is not connected"
        if reason == CPU:
            return f"it has {left.cpu} CPU units left and the task needs {demand.cpu}"
        if reason == MEMORY:
            return f"it has {left.memory} MiB of memory left and the task needs {demand.memory}"
        if reason == GPU:
            return f"it has {left.gpus} GPUs left and the task needs {demand.gpus}"
        if reason == PORTS:
            taken = [f"{p}/tcp" for p in sorted(demand.ports_tcp & left.ports_tcp)]
            taken += [f"{p}/udp" for p in sorted(demand.ports_udp & left.ports_udp)]
            return f"host ports {', '.join(taken)} are already in use"
        if reason == ATTRIBUTE:
            missing = [
                r.name if r.value is None else f"{r.name}={r.value}"
                for r in demand.required_attributes
                if r.name not in instance.attributes
                or (r.value is not None and instance.attributes[r.name] != r.value)
            ]
            return f"it lacks the required attributes {', '.join(missing)}"
        if reason == MEMBER_OF:
            failing = " and ".join(self._unmatched(instance, placed))
            return f"it does not match memberOf({failing})"
        return f"it already runs a task of group {demand.group} (distinctInstance)"
