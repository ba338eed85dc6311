"""What the placement engine reads and returns, and the ECS wire forms it accepts.

Everything is a frozen dataclass: a snapshot of the cluster's instances, one task's
demand, the user's constraints and strategies in, placements and failures out. The
``parse_*`` helpers turn ``placementStrategy`` / ``placementConstraints`` /
``requiresAttributes`` lists into these types and refuse what ECS refuses, with a
``PlacementInputError`` that names the offending field (the handler maps it to
InvalidParameterException).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from dockyard.scheduler import query

MAX_STRATEGIES = 5  # "a maximum of 5 strategy rules for each task"
MAX_CONSTRAINTS = 10  # per task, task definition and call together
AVAILABILITY_ZONE = "attribute:ecs.availability-zone"


class PlacementInputError(ValueError):
    """A strategy, constraint or required attribute ECS would refuse; the message starts
    with the field, e.g. ``placementStrategy[1].field``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Resources:
    """CPU units, MiB, host ports and GPUs. As an instance's ``remaining``, the port sets
    are the ports already taken (ECS reports PORTS that way); as ``registered`` they are
    the ports the host reserves for itself."""

    cpu: int = 0
    memory: int = 0
    ports_tcp: frozenset[int] = frozenset()
    ports_udp: frozenset[int] = frozenset()
    gpus: int = 0


@dataclass(frozen=True)
class Instance:
    """A container instance as placement sees it. The query fields (agent_connected ...
    attributes) make it a ``query.QuerySubject`` for memberOf.

    ``group_counts`` (task group -> tasks of it here) is what spread and distinctInstance
    count; ``task_groups`` defaults to its groups. ``launch_type`` is EC2 or EXTERNAL;
    ``capacity_provider`` the provider whose capacity this is, if any.
    """

    arn: str
    ec2_instance_id: str
    registered: Resources
    remaining: Resources
    status: str = "ACTIVE"  # ACTIVE | DRAINING | INACTIVE | REGISTERING | ...
    agent_connected: bool = True
    agent_version: str = ""
    registered_at: float = 0.0
    attributes: Mapping[str, str | None] = field(default_factory=dict)
    running_tasks_count: int = 0
    group_counts: Mapping[str, int] = field(default_factory=dict)
    task_groups: frozenset[str] = frozenset()
    launch_type: str = "EC2"
    capacity_provider: str | None = None

    def __post_init__(self) -> None:
        if not self.task_groups and self.group_counts:
            groups = frozenset(g for g, n in self.group_counts.items() if n > 0)
            object.__setattr__(self, "task_groups", groups)

    def serves(self, launch_target: str | None) -> bool:
        """Whether a task for ``launch_target`` (EC2, EXTERNAL, a capacity provider's
        name, or None for any) may use this instance at all."""
        if launch_target is None:
            return True
        if launch_target in ("EC2", "EXTERNAL"):
            return self.launch_type == launch_target
        return self.capacity_provider == launch_target


@dataclass(frozen=True)
class RequiredAttribute:
    """A task definition's ``requiresAttributes`` entry: the name must be present, and
    equal ``value`` when one is given."""

    name: str
    value: str | None = None


@dataclass(frozen=True)
class TaskDemand:
    """What one task needs: task-level cpu/memory when the definition sets them, else the
    containers' sums (memoryReservation, else memory); static host ports in bridge and
    host network modes; GPUs from resourceRequirements."""

    cpu: int = 0
    memory: int = 0
    ports_tcp: frozenset[int] = frozenset()
    ports_udp: frozenset[int] = frozenset()
    gpus: int = 0
    required_attributes: tuple[RequiredAttribute, ...] = ()
    group: str = ""  # service:NAME for services, else the RunTask group or family:FAMILY
    family: str = ""
    launch_target: str | None = None  # see Instance.serves


@dataclass(frozen=True)
class Constraint:
    """``distinctInstance``, or ``memberOf`` with a cluster query language expression
    (parsed on construction, so a bad one fails with ``query.QuerySyntaxError``)."""

    type: Literal["distinctInstance", "memberOf"]
    expression: str | None = None
    query: query.Expression | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.type == "memberOf" and self.query is None:
            object.__setattr__(self, "query", query.parse(self.expression or ""))

    @classmethod
    def member_of(cls, expression: str) -> Constraint:
        return cls("memberOf", expression)

    @classmethod
    def distinct_instance(cls) -> Constraint:
        return cls("distinctInstance")


@dataclass(frozen=True)
class Strategy:
    """``binpack`` on cpu|memory, ``spread`` on instanceId|host|attribute:NAME, or
    ``random``. ``field`` is normalised: binpack fields lower case, host -> instanceId."""

    type: Literal["binpack", "spread", "random"]
    field: str | None = None

    def __post_init__(self) -> None:
        if self.type == "spread" and (self.field or "").lower() in ("host", "instanceid"):
            object.__setattr__(self, "field", "instanceId")
        valid = {
            "binpack": self.field in ("cpu", "memory"),
            "spread": self.field == "instanceId" or self.attribute is not None,
            "random": self.field is None,
        }
        if not valid.get(self.type, False):
            raise PlacementInputError(f"placementStrategy: no {self.type} on {self.field!r}")

    @property
    def attribute(self) -> str | None:
        """The attribute a spread counts over; None for instance-level spreads."""
        if self.type == "spread" and self.field and self.field.startswith("attribute:"):
            return self.field.removeprefix("attribute:") or None
        return None

    @classmethod
    def binpack(cls, resource: Literal["cpu", "memory"]) -> Strategy:
        return cls("binpack", resource)

    @classmethod
    def spread(cls, over: str) -> Strategy:
        return cls("spread", over)

    @classmethod
    def random(cls) -> Strategy:
        return cls("random")


@dataclass(frozen=True)
class RunningTask:
    """A task scale-in may stop: its ARN and what it holds on its instance."""

    arn: str
    cpu: int = 0
    memory: int = 0


@dataclass(frozen=True)
class Failure:
    """An ECS ``failures[]`` entry: the instance's ARN, the reason, what it lacked."""

    arn: str
    reason: str
    detail: str


@dataclass(frozen=True)
class PlacementResult:
    """An instance ARN per placed task, in order. Placement stops at the first task that
    fits nowhere; ``failures`` then holds the closest instance's refusal. Both empty
    while tasks were asked for means there was no candidate instance at all."""

    placements: tuple[str, ...]
    failures: tuple[Failure, ...]


# ECS wire forms -> the types above.


def parse_strategies(
    wire: Sequence[Mapping[str, object]] | None, where: str = "placementStrategy"
) -> tuple[Strategy, ...]:
    entries = list(wire or [])
    if len(entries) > MAX_STRATEGIES:
        raise PlacementInputError(
            f"{where}: {len(entries)} strategies given; the limit is {MAX_STRATEGIES}"
        )
    return tuple(_strategy(entry, f"{where}[{i}]") for i, entry in enumerate(entries))


def _strategy(entry: Mapping[str, object], where: str) -> Strategy:
    kind, given = _text(entry, "type", where), _text(entry, "field", where)
    if kind == "random":
        return Strategy.random()  # "For the random placement strategy, this field is not used"
    if kind == "binpack":
        if given is None or given.lower() not in ("cpu", "memory"):
            raise PlacementInputError(f"{where}.field: binpack takes cpu or memory, not {given!r}")
        return Strategy("binpack", given.lower())
    if kind == "spread":
        if given is None or not given.strip():
            raise PlacementInputError(
                f"{where}.field: spread needs instanceId, host or attribute:NAME"
            )
        if given.lower() in ("instanceid", "host"):
            return Strategy.spread("instanceId")
        if not given.startswith("attribute:") or given == "attribute:":
            raise PlacementInputError(
                f"{where}.field: spread takes instanceId, host or attribute:NAME, not {given!r}"
            )
        return Strategy.spread(given)
    raise PlacementInputError(f"{where}.type: expected random, spread or binpack, not {kind!r}")


def parse_constraints(
    wire: Sequence[Mapping[str, object]] | None,
    where: str = "placementConstraints",
    *,
    in_task_definition: bool = False,
) -> tuple[Constraint, ...]:
    """``in_task_definition``: only memberOf is allowed there."""
    entries = list(wire or [])
    if len(entries) > MAX_CONSTRAINTS:
        raise PlacementInputError(
            f"{where}: {len(entries)} constraints given; the limit is {MAX_CONSTRAINTS}"
        )
    return tuple(
        _constraint(entry, f"{where}[{i}]", in_task_definition) for i, entry in enumerate(entries)
    )


def _constraint(entry: Mapping[str, object], where: str, in_task_definition: bool) -> Constraint:
    kind, expression = _text(entry, "type", where), _text(entry, "expression", where)
    if kind == "distinctInstance" and not in_task_definition:
        if expression:
            raise PlacementInputError(f"{where}.expression: distinctInstance takes no expression")
        return Constraint.distinct_instance()
    if kind == "memberOf":
        if not expression:
            raise PlacementInputError(f"{where}.expression: memberOf needs an expression")
        try:
            return Constraint.member_of(expression)
        except query.QuerySyntaxError as error:
            raise PlacementInputError(
                f"{where}.expression: {error.message} at position {error.position}"
            ) from None
    allowed = "memberOf" if in_task_definition else "distinctInstance or memberOf"
    raise PlacementInputError(f"{where}.type: expected {allowed}, not {kind!r}")


def combine_constraints(
    task_definition: Sequence[Constraint], call: Sequence[Constraint]
) -> tuple[Constraint, ...]:
    """The task definition's constraints then the call's, within the shared limit."""
    combined = (*task_definition, *call)
    if len(combined) > MAX_CONSTRAINTS:
        raise PlacementInputError(
            f"placementConstraints: {len(combined)} constraints with the task definition's; "
            f"the limit is {MAX_CONSTRAINTS}"
        )
    return combined


def parse_required_attributes(
    wire: Sequence[Mapping[str, object]] | None, where: str = "requiresAttributes"
) -> tuple[RequiredAttribute, ...]:
    """Attributes targeted at the container instance (no targetType, or container-instance)."""
    required = []
    for i, entry in enumerate(wire or []):
        name = _text(entry, "name", f"{where}[{i}]")
        if not name:
            raise PlacementInputError(f"{where}[{i}].name: required")
        if _text(entry, "targetType", f"{where}[{i}]") in (None, "container-instance"):
            required.append(RequiredAttribute(name, _text(entry, "value", f"{where}[{i}]")))
    return tuple(required)


def _text(entry: Mapping[str, object], key: str, where: str) -> str | None:
    value = entry.get(key)
    if value is None or isinstance(value, str):
        return value
    raise PlacementInputError(f"{where}.{key}: expected a string, not {type(value).__name__}")
