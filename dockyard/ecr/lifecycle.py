"""ECR lifecycle policies: the policy text parsed into rules, and which images they expire.

Pure: ``parse_policy`` checks a policy text against ECR's documented rules and returns a
frozen ``Policy``; ``evaluate`` takes that policy, a repository's images and the clock
and returns the ``Expiry`` list. Nothing here touches the store or reads the time.

How rules combine (the ECR user guide, "Lifecycle policy evaluation rules"):

- every rule identifies the images its tag selection matches, as if no other rule
  had run ("can still identify them as if they haven't been expired");
- among those it marks the ones past its limit: beyond the ``countNumber`` newest
  pushes (``imageCountMoreThan``), or older than ``countNumber`` days
  (``sinceImagePushed``, ``sinceImagePulled``), oldest first;
- rules apply in ``rulePriority`` order, lowest value first, and an image that matched
  the tag selection of an earlier rule cannot be expired by a later one, whether or
  not the earlier rule expired it. So each image is expired by one rule or none.

Glossary: *select* = match a rule's tagStatus and tag list; *mark* = past the rule's
limit; *claim* = selected by an earlier rule, hence out of reach of later ones.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

DAY = 86400.0
MAX_WILDCARDS = 4  # per tagPatternList string, as the ECR docs state
MAX_INT = 2**31 - 1  # ECR's integers are Java ints
TAG_STATUSES = ("any", "tagged", "untagged")
COUNT_TYPES = ("imageCountMoreThan", "sinceImagePulled", "sinceImagePushed")
NO_ARCHIVE = "Dockyard has no archive storage class"


class PolicyError(ValueError):
    """The policy text breaks one of ECR's rules; the message says which and where."""


class LifecycleImage(Protocol):
    """What evaluation needs to know about an image (``store.models.Image`` fits)."""

    @property
    def digest(self) -> str: ...
    @property
    def tags(self) -> tuple[str, ...]: ...
    @property
    def pushed_at(self) -> float: ...
    @property
    def last_pulled_at(self) -> float | None: ...


@dataclass(frozen=True)
class Selection:
    tag_status: str  # any | tagged | untagged
    count_type: str  # imageCountMoreThan | sinceImagePushed | sinceImagePulled
    count_number: int
    count_unit: str | None = None  # "days" for the since* count types, else None
    tag_prefixes: tuple[str, ...] = ()
    tag_patterns: tuple[str, ...] = ()
    storage_class: str | None = None  # only "standard"; kept so the text echoes it

    def selects(self, tags: Sequence[str]) -> bool:
        """Every listed prefix or pattern must match at least one of the image's tags."""
        if self.tag_status == "any":
            return True
        if self.tag_status == "untagged":
            return not tags
        if self.tag_prefixes:
            return all(any(t.startswith(p) for t in tags) for p in self.tag_prefixes)
        return all(any(_wildcard(p).fullmatch(t) for t in tags) for p in self.tag_patterns)


@dataclass(frozen=True)
class Rule:
    priority: int
    selection: Selection
    description: str | None = None
    action: str = "expire"

    def marks(self, selected: Sequence[LifecycleImage], now: float) -> list[LifecycleImage]:
        """The selected images past this rule's limit, oldest push first."""
        oldest_first = sorted(selected, key=push_order)
        number = self.selection.count_number
        if self.selection.count_type == "imageCountMoreThan":
            return oldest_first[: max(0, len(oldest_first) - number)]
        cutoff = now - number * DAY
        if self.selection.count_type == "sinceImagePushed":
            return [i for i in oldest_first if i.pushed_at < cutoff]
        # sinceImagePulled: an image never pulled is as old as its push
        return [i for i in oldest_first if _last_used(i) < cutoff]


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...]  # in rulePriority order

    def to_text(self) -> str:
        """The policy as ECR echoes it: compact JSON, rules in rulePriority order."""
        return json.dumps({"rules": [_rule_document(r) for r in self.rules]}, **_COMPACT)


@dataclass(frozen=True)
class Expiry:
    digest: str
    rule_priority: int
    action: str = "EXPIRE"  # the wire's ImageActionType


def push_order(image: LifecycleImage) -> tuple[float, str]:
    """Oldest push first; equal push times fall back to the digest so runs agree."""
    return (image.pushed_at, image.digest)


def evaluate(policy: Policy, images: Iterable[LifecycleImage], now: float) -> list[Expiry]:
    """What ``policy`` expires among ``images`` at ``now``.

    Ordered as a preview lists them: by rule priority, then oldest push first. Each
    digest appears at most once, always under a rule that selected it.
    """
    images = list(images)
    claimed: set[str] = set()
    expiries: list[Expiry] = []
    for rule in policy.rules:
        selected = [i for i in images if rule.selection.selects(i.tags)]
        for image in rule.marks(selected, now):
            if image.digest not in claimed:
                expiries.append(Expiry(image.digest, rule.priority))
        claimed.update(i.digest for i in selected)
    return expiries


def _last_used(image: LifecycleImage) -> float:
    return image.pushed_at if image.last_pulled_at is None else image.last_pulled_at


@functools.lru_cache(maxsize=256)
def _wildcard(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


_COMPACT: dict[str, Any] = {"separators": (",", ":"), "ensure_ascii": False}


def _rule_document(rule: Rule) -> dict[str, Any]:
    s = rule.selection
    selection: dict[str, Any] = {"tagStatus": s.tag_status}
    if s.tag_patterns:
        selection["tagPatternList"] = list(s.tag_patterns)
    if s.tag_prefixes:
        selection["tagPrefixList"] = list(s.tag_prefixes)
    if s.storage_class is not None:
        selection["storageClass"] = s.storage_class
    selection["countType"] = s.count_type
    if s.count_unit is not None:
        selection["countUnit"] = s.count_unit
    selection["countNumber"] = s.count_number
    document: dict[str, Any] = {"rulePriority": rule.priority}
    if rule.description is not None:
        document["description"] = rule.description
    document.update(selection=selection, action={"type": rule.action})
    return document


# -- parsing ------------------------------------------------------------------------


def parse_policy(text: str) -> Policy:
    """The policy ``text`` describes, or ``PolicyError`` saying what to fix."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise PolicyError(
            f"Could not map policyString into LifecyclePolicy: the text is not valid JSON ({exc})."
        ) from None
    if not isinstance(document, dict):
        raise PolicyError("Could not map policyString into LifecyclePolicy: not a JSON object.")
    _properties(document, "policy", required={"rules"}, allowed={"rules"})
    items = document["rules"]
    if not isinstance(items, list):
        raise PolicyError("rules: must be a list of rule objects.")
    if not items:
        raise PolicyError("rules: array is too short: must have at least 1 elements.")
    rules = sorted((_rule(item, f"rules[{n}]") for n, item in enumerate(items)), key=_priority)
    _check_together(rules)
    return Policy(tuple(rules))


def _priority(rule: Rule) -> int:
    return rule.priority


def _rule(item: object, where: str) -> Rule:
    rule = _properties(
        item, where, required={"rulePriority", "selection", "action"}, allowed={"description"}
    )
    description = rule.get("description")
    if description is not None and not isinstance(description, str):
        raise PolicyError(f"{where}.description: must be a string.")
    return Rule(
        priority=_integer(rule["rulePriority"], f"{where}.rulePriority"),
        selection=_selection(rule["selection"], f"{where}.selection"),
        description=description,
        action=_action(rule["action"], f"{where}.action"),
    )


def _selection(item: object, where: str) -> Selection:
    selection = _properties(
        item,
        where,
        required={"tagStatus", "countType", "countNumber"},
        allowed={"tagPrefixList", "tagPatternList", "countUnit", "storageClass"},
    )
    status = _choice(selection["tagStatus"], TAG_STATUSES, f"{where}.tagStatus")
    count_type = selection["countType"]
    if count_type == "sinceImageTransitioned":
        raise PolicyError(
            f"{where}.countType: sinceImageTransitioned selects archived images and "
            f"{NO_ARCHIVE}; use sinceImagePushed, sinceImagePulled or imageCountMoreThan."
        )
    count_type = _choice(count_type, COUNT_TYPES, f"{where}.countType")
    unit = selection.get("countUnit")
    if count_type == "imageCountMoreThan" and unit is not None:
        raise PolicyError(
            f"{where}.countUnit: only allowed when countType is sinceImagePushed or "
            "sinceImagePulled; remove it for imageCountMoreThan."
        )
    if count_type != "imageCountMoreThan":
        if unit is None:
            raise PolicyError(f'{where}.countUnit: required for {count_type}; use "days".')
        _choice(unit, ("days",), f"{where}.countUnit")
    storage = selection.get("storageClass")
    if storage == "archive":
        raise PolicyError(f"{where}.storageClass: {NO_ARCHIVE}; use standard or leave it out.")
    if storage is not None:
        _choice(storage, ("standard",), f"{where}.storageClass")
    prefixes = _strings(selection.get("tagPrefixList"), f"{where}.tagPrefixList")
    patterns = _strings(selection.get("tagPatternList"), f"{where}.tagPatternList")
    if status == "tagged" and not (prefixes or patterns):
        raise PolicyError(
            f"{where}: Must specify tagPrefixList or tagPatternList when tagStatus=TAGGED."
        )
    if status != "tagged" and (prefixes or patterns):
        raise PolicyError(
            f"{where}: tagPrefixList and tagPatternList may only be used when tagStatus is "
            f"tagged; remove them or set tagStatus to tagged (it is {status})."
        )
    if prefixes and patterns:
        raise PolicyError(
            f"{where}: a rule may specify either tagPatternList or tagPrefixList, not both."
        )
    for pattern in patterns:
        if pattern.count("*") > MAX_WILDCARDS:
            raise PolicyError(
                f"{where}.tagPatternList: {pattern!r} has {pattern.count('*')} wildcards; "
                f"at most {MAX_WILDCARDS} '*' are allowed per pattern."
            )
    return Selection(
        tag_status=status,
        count_type=count_type,
        count_number=_integer(selection["countNumber"], f"{where}.countNumber"),
        count_unit=unit,
        tag_prefixes=prefixes,
        tag_patterns=patterns,
        storage_class=storage,
    )


def _action(item: object, where: str) -> str:
    action = _properties(item, where, required={"type"}, allowed={"targetStorageClass"})
    if action["type"] == "transition" or "targetStorageClass" in action:
        raise PolicyError(
            f"{where}: transition actions move images to archive storage and {NO_ARCHIVE}; "
            'use {"type": "expire"} without targetStorageClass.'
        )
    return _choice(action["type"], ("expire",), f"{where}.type")


def _check_together(rules: Sequence[Rule]) -> None:
    """The rules ECR checks across a policy's rules (``rules`` in priority order)."""
    for before, after in itertools.pairwise(rules):
        if before.priority == after.priority:
            raise PolicyError(
                f"rulePriority {before.priority} is used by more than one rule; "
                "give each rule a unique rulePriority."
            )
    untagged = [r.priority for r in rules if r.selection.tag_status == "untagged"]
    if len(untagged) > 1:
        raise PolicyError(
            f"Only one rule can select Untagged images; rules with rulePriority "
            f"{', '.join(map(str, untagged))} all do."
        )
    for rule in rules[:-1]:
        if rule.selection.tag_status == "any":
            raise PolicyError(
                "Rule for tagStatus=ANY must have the lowest priority: rulePriority "
                f"{rule.priority} selects any image but rule {rules[-1].priority} comes "
                "after it; give the any rule the highest rulePriority value."
            )
    seen: dict[tuple[str, frozenset[str]], int] = {}
    for rule in rules:
        s = rule.selection
        if s.tag_status != "tagged":
            continue
        kind = "tagPrefixList" if s.tag_prefixes else "tagPatternList"
        key = (kind, frozenset(s.tag_prefixes or s.tag_patterns))
        if key in seen:
            raise PolicyError(
                f"Rules {seen[key]} and {rule.priority} select the same {kind}; the set of "
                "rules must contain a unique set of tag prefixes, so merge the two rules."
            )
        seen[key] = rule.priority


# -- JSON checks, with the path in every message --------------------------------------


def _properties(
    item: object, where: str, *, required: set[str], allowed: set[str]
) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise PolicyError(f"{where}: must be an object, not {_json_type(item)}.")
    missing = sorted(required - item.keys())
    if missing:
        raise PolicyError(f"{where}: object has missing required properties ({_names(missing)}).")
    extra = sorted(item.keys() - required - allowed)
    if extra:
        raise PolicyError(
            f"{where}: object instance has properties which are not allowed by the schema: "
            f"({_names(extra)})."
        )
    return item


def _integer(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PolicyError(f"{where}: must be an integer, not {_json_type(value)}.")
    if not 1 <= value <= MAX_INT:
        raise PolicyError(f"{where}: must be a positive integer up to {MAX_INT}; found {value}.")
    return value


def _choice(value: object, options: Sequence[str], where: str) -> str:
    if not isinstance(value, str) or value not in options:
        raise PolicyError(
            f"{where}: instance value ({json.dumps(value)}) not found in enum "
            f"(possible values: {_names(options)})."
        )
    return value


def _strings(value: object, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not value:
        raise PolicyError(f"{where}: must be a non-empty list of strings.")
    if not all(isinstance(v, str) and v for v in value):
        raise PolicyError(f"{where}: every entry must be a non-empty string.")
    return tuple(value)


def _names(names: Iterable[str]) -> str:
    return json.dumps(list(names), separators=(",", ":"))


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, bool | dict | list | str):
        return names[type(value)]
    return "a number"
