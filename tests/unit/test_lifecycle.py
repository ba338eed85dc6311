"""ECR lifecycle policies (dockyard.ecr.lifecycle): which images a policy expires, and
which policy texts ECR refuses.

Each evaluation row is one story: a repository's images, a policy, and the expiries
ECR documents for them. The "docs" stories are the worked examples of the ECR user
guide ("Examples of lifecycle policies").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dockyard.ecr.lifecycle import DAY, Policy, PolicyError, evaluate, parse_policy

NOW = 1_750_000_000.0
Doc = dict[str, Any]


# -- factories ----------------------------------------------------------------------


@dataclass(frozen=True)
class Img:
    digest: str
    tags: tuple[str, ...]
    pushed_at: float
    last_pulled_at: float | None = None


def img(name: str, days_ago: float, *tags: str, pulled_days_ago: float | None = None) -> Img:
    """An image whose digest is its name, pushed ``days_ago`` days before NOW."""
    pulled = None if pulled_days_ago is None else NOW - pulled_days_ago * DAY
    return Img(name, tags, NOW - days_ago * DAY, pulled)


def rule(priority: int, status: str, count: str, number: int, **selection: Any) -> Doc:
    """A rule; count "days" means sinceImagePushed with countUnit days."""
    chosen: Doc = {"tagStatus": status, **selection}
    if count == "newest":
        chosen.update(countType="imageCountMoreThan", countNumber=number)
    else:
        kind = "sinceImagePulled" if count == "pulled" else "sinceImagePushed"
        chosen.update(countType=kind, countUnit="days", countNumber=number)
    return {"rulePriority": priority, "selection": chosen, "action": {"type": "expire"}}


def policy(*rules: Doc) -> Policy:
    return parse_policy(json.dumps({"rules": list(rules)}))


def expired(p: Policy, images: list[Img]) -> list[tuple[str, int]]:
    return [(e.digest, e.rule_priority) for e in evaluate(p, images, NOW)]


# -- evaluation stories ---------------------------------------------------------------

V_IMAGES = [
    img("v1", 4, "v1"),
    img("v2", 3, "v2"),
    img("v3", 2, "v3"),
    img("v4", 1, "v4"),
    img("loose", 5),
]
DOCS_AB = [img("A", 10, "beta-1", "prod-1"), img("B", 9, "beta-2", "prod-2"), img("C", 8, "beta-3")]

STORIES: list[tuple[str, list[Img], Policy, list[tuple[str, int]]]] = [
    (
        "keep only the 2 newest images tagged v*: v1 and v2 go, oldest first",
        V_IMAGES,
        policy(rule(1, "tagged", "newest", 2, tagPatternList=["v*"])),
        [("v1", 1), ("v2", 1)],
    ),
    (
        "the same with tagPrefixList",
        V_IMAGES,
        policy(rule(1, "tagged", "newest", 2, tagPrefixList=["v"])),
        [("v1", 1), ("v2", 1)],
    ),
    (
        "untagged images older than 14 days; tagged ones are not touched",
        [img("u20", 20), img("u15", 15), img("u10", 10), img("t30", 30, "t")],
        policy(rule(1, "untagged", "days", 14)),
        [("u20", 1), ("u15", 1)],
    ),
    (
        "exactly 14 days old is not older than 14 days",
        [img("u14", 14), img("u14+", 14.001)],
        policy(rule(1, "untagged", "days", 14)),
        [("u14+", 1)],
    ),
    (
        "docs example A: B matched rule 1's tags, so rule 2 may not expire it",
        DOCS_AB,
        policy(
            rule(1, "tagged", "newest", 1, tagPrefixList=["prod"]),
            rule(2, "tagged", "newest", 1, tagPrefixList=["beta"]),
        ),
        [("A", 1)],
    ),
    (
        "docs example B: the beta rule first expires A and B",
        DOCS_AB,
        policy(
            rule(1, "tagged", "newest", 1, tagPrefixList=["beta"]),
            rule(2, "tagged", "newest", 1, tagPrefixList=["prod"]),
        ),
        [("A", 1), ("B", 1)],
    ),
    (
        "docs: several prefixes in one rule must all match; only C is both and old",
        [
            img("A", 12, "alpha-1"),
            img("B", 11, "beta-1"),
            img("C", 10, "alpha-2", "beta-2"),
            img("D", 4, "alpha-3"),
            img("E", 3, "beta-3"),
            img("F", 2, "alpha-4", "beta-4"),
        ],
        policy(rule(1, "tagged", "days", 5, tagPrefixList=["alpha", "beta"])),
        [("C", 1)],
    ),
    (
        "docs: tags are not exclusive, extra tags do not stop a match",
        [
            img("A", 10, "alpha-1", "beta-1", "gamma-1"),
            img("B", 9, "alpha-2", "beta-2"),
            img("C", 8, "alpha-3", "beta-3", "gamma-2"),
        ],
        policy(rule(1, "tagged", "newest", 1, tagPrefixList=["alpha", "beta"])),
        [("A", 1), ("B", 1)],
    ),
    (
        "an image an earlier rule kept still counts towards a later rule's newest",
        [img("old-beta", 10, "beta-1"), img("new-both", 1, "prod-1", "beta-2")],
        policy(
            rule(1, "tagged", "newest", 1, tagPrefixList=["prod"]),
            rule(2, "tagged", "newest", 1, tagPrefixList=["beta"]),
        ),
        [("old-beta", 2)],
    ),
    (
        "a rule that expires nothing still shields what it selects from later rules",
        [img("prod", 50, "prod-1"), img("x", 40, "x"), img("y", 30, "y")],
        policy(
            rule(1, "tagged", "days", 100, tagPrefixList=["prod"]),
            rule(2, "any", "newest", 1),
        ),
        [("x", 2)],
    ),
    (
        "the any rule comes last and sweeps what no other rule claimed",
        [
            img("p1", 30, "prod-1"),
            img("p2", 20, "prod-2"),
            img("dev", 10, "dev-1"),
            img("fresh", 1, "dev-2"),
            img("loose", 8),
        ],
        policy(
            rule(1, "tagged", "newest", 1, tagPrefixList=["prod"]),
            rule(2, "any", "days", 7),
        ),
        [("p1", 1), ("dev", 2), ("loose", 2)],
    ),
    (
        "a prefix only matches the start of a tag",
        [img("a", 3, "release-1"), img("b", 2, "1-release"), img("c", 1, "x")],
        policy(rule(1, "tagged", "days", 1, tagPrefixList=["release"])),
        [("a", 1)],
    ),
    (
        "a pattern's wildcards match anywhere, including nothing",
        [img("a", 3, "release-1"), img("b", 2, "1-release"), img("c", 1.5, "release")],
        policy(rule(1, "tagged", "days", 1, tagPatternList=["*release*"])),
        [("a", 1), ("b", 1), ("c", 1)],
    ),
    (
        "a pattern without a wildcard is an exact tag",
        [img("a", 3, "latest"), img("b", 2, "latest-2")],
        policy(rule(1, "tagged", "days", 1, tagPatternList=["latest"])),
        [("a", 1)],
    ),
    (
        "an image with several tags is one image, selected if any tag matches",
        [img("multi", 3, "v1", "latest", "stable"), img("v2", 2, "v2"), img("v3", 1, "v3")],
        policy(rule(1, "tagged", "newest", 1, tagPatternList=["v*"])),
        [("multi", 1), ("v2", 1)],
    ),
    (
        "several patterns in one rule must each match some tag of the image",
        [img("both", 3, "v1", "stable"), img("only-v", 2, "v2")],
        policy(rule(1, "tagged", "days", 1, tagPatternList=["v*", "stable"])),
        [("both", 1)],
    ),
    (
        "count ties on push time fall back to the digest: the smallest digests go",
        [img("c", 5, "t1"), img("a", 5, "t2"), img("b", 5, "t3")],
        policy(rule(1, "tagged", "newest", 1, tagPrefixList=["t"])),
        [("a", 1), ("b", 1)],
    ),
    (
        "fewer images than the count: nothing expires",
        V_IMAGES,
        policy(rule(1, "tagged", "newest", 5, tagPrefixList=["v"])),
        [],
    ),
    (
        "sinceImagePulled: a recent pull keeps an old image, never pulled counts from push",
        [img("used", 30, "a", pulled_days_ago=2), img("unused", 30, "b"), img("new", 1, "c")],
        policy(rule(1, "any", "pulled", 7)),
        [("unused", 1)],
    ),
    (
        "preview order: by rule priority, then oldest first",
        [img("u-old", 40), img("u-new", 30), img("v-old", 50, "v1"), img("v-new", 45, "v2")],
        policy(
            rule(5, "untagged", "days", 1),
            rule(2, "tagged", "days", 1, tagPrefixList=["v"]),
        ),
        [("v-old", 2), ("v-new", 2), ("u-old", 5), ("u-new", 5)],
    ),
]


@pytest.mark.parametrize(
    ("images", "the_policy", "expected"),
    [pytest.param(i, p, e, id=name) for name, i, p, e in STORIES],
)
def test_evaluation(images: list[Img], the_policy: Policy, expected: list[tuple[str, int]]) -> None:
    assert expired(the_policy, images) == expected


# -- properties -------------------------------------------------------------------------

TAGS = ["v1", "v2", "v10", "prod-1", "prod-2", "beta", "latest", "rc-v1"]


@st.composite
def images_strategy(draw: st.DrawFn) -> list[Img]:
    count = draw(st.integers(0, 12))
    return [
        Img(
            digest=f"d{n:02d}",
            tags=tuple(draw(st.lists(st.sampled_from(TAGS), max_size=3, unique=True))),
            pushed_at=NOW - draw(st.integers(0, 40)) * DAY / 2,
            last_pulled_at=draw(st.none() | st.just(NOW - 3 * DAY)),
        )
        for n in range(count)
    ]


@st.composite
def rule_strategy(draw: st.DrawFn, priority: int) -> Doc:
    status = draw(st.sampled_from(["tagged", "untagged", "any"]))
    extra: Doc = {}
    if status == "tagged":
        key = draw(st.sampled_from(["tagPrefixList", "tagPatternList"]))
        pool = ["v", "prod", "beta", "rc"] if key == "tagPrefixList" else ["v*", "*1", "prod*", "*"]
        extra[key] = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=2, unique=True))
    count = draw(st.sampled_from(["newest", "days", "pulled"]))
    return rule(priority, status, count, draw(st.integers(1, 6)), **extra)


@st.composite
def policy_strategy(draw: st.DrawFn) -> Policy:
    priorities = draw(st.lists(st.integers(1, 50), min_size=1, max_size=5, unique=True))
    rules = [draw(rule_strategy(p)) for p in priorities]
    try:
        return parse_policy(json.dumps({"rules": rules}))
    except PolicyError:
        assume(False)
        raise


@settings(max_examples=300, deadline=None)
@given(p=policy_strategy(), images=images_strategy())
def test_each_image_expires_at_most_once_and_only_by_the_rule_that_claims_it(
    p: Policy, images: list[Img]
) -> None:
    by_digest = {i.digest: i for i in images}
    expiries = evaluate(p, images, NOW)
    digests = [e.digest for e in expiries]
    assert len(digests) == len(set(digests))
    for expiry in expiries:
        tags = by_digest[expiry.digest].tags
        first = next(r for r in p.rules if r.selection.selects(tags))
        assert first.priority == expiry.rule_priority
    priorities = [e.rule_priority for e in expiries]
    assert priorities == sorted(priorities)


@settings(max_examples=300, deadline=None)
@given(p=policy_strategy(), images=images_strategy())
def test_running_again_on_the_survivors_expires_nothing(p: Policy, images: list[Img]) -> None:
    gone = {e.digest for e in evaluate(p, images, NOW)}
    assert evaluate(p, [i for i in images if i.digest not in gone], NOW) == []


# -- validation -------------------------------------------------------------------------

GOOD = rule(1, "tagged", "newest", 2, tagPatternList=["v*"])


def with_selection(**changes: Any) -> Doc:
    selection = {k: v for k, v in {**GOOD["selection"], **changes}.items() if v is not None}
    return {**GOOD, "selection": selection}


INVALID: list[tuple[str, Any, str]] = [
    ("not JSON", "{rules: [", "Could not map policyString into LifecyclePolicy"),
    ("not an object", [GOOD], "Could not map policyString into LifecyclePolicy"),
    ("no rules", {"rule": [GOOD]}, 'missing required properties (["rules"])'),
    ("empty rules", {"rules": []}, "at least 1 elements"),
    ("rule not an object", {"rules": ["expire"]}, "rules[0]: must be an object"),
    (
        "duplicate priorities",
        {"rules": [GOOD, rule(1, "untagged", "days", 3)]},
        "rulePriority 1 is used by more than one rule",
    ),
    (
        "any rule not last",
        {"rules": [rule(1, "any", "days", 30), rule(2, "untagged", "days", 3)]},
        "Rule for tagStatus=ANY must have the lowest priority",
    ),
    (
        "two any rules",
        {"rules": [rule(1, "any", "days", 30), rule(2, "any", "newest", 3)]},
        "Rule for tagStatus=ANY must have the lowest priority",
    ),
    (
        "two untagged rules",
        {"rules": [rule(1, "untagged", "days", 30), rule(2, "untagged", "newest", 3)]},
        "Only one rule can select Untagged images",
    ),
    (
        "same prefixes twice",
        {
            "rules": [
                rule(1, "tagged", "days", 30, tagPrefixList=["a", "b"]),
                rule(2, "tagged", "newest", 3, tagPrefixList=["b", "a"]),
            ]
        },
        "unique set of tag prefixes",
    ),
    (
        "tagged without a tag list",
        {"rules": [with_selection(tagPatternList=None)]},
        "Must specify tagPrefixList or tagPatternList when tagStatus=TAGGED",
    ),
    (
        "untagged with a tag list",
        {"rules": [with_selection(tagStatus="untagged")]},
        "may only be used when tagStatus is tagged",
    ),
    (
        "both tag lists",
        {"rules": [with_selection(tagPrefixList=["v"])]},
        "either tagPatternList or tagPrefixList, not both",
    ),
    (
        "five wildcards",
        {"rules": [with_selection(tagPatternList=["test*1*2*3*4*5"])]},
        "at most 4 '*'",
    ),
    ("empty tag list", {"rules": [with_selection(tagPatternList=[])]}, "non-empty list"),
    (
        "countUnit with imageCountMoreThan",
        {"rules": [with_selection(countUnit="days")]},
        "remove it for imageCountMoreThan",
    ),
    (
        "sinceImagePushed without countUnit",
        {"rules": [with_selection(countType="sinceImagePushed")]},
        'countUnit: required for sinceImagePushed; use "days"',
    ),
    (
        "countUnit in hours",
        {"rules": [with_selection(countType="sinceImagePushed", countUnit="hours")]},
        'instance value ("hours") not found in enum',
    ),
    ("countNumber 0", {"rules": [with_selection(countNumber=0)]}, "must be a positive integer"),
    ("countNumber a string", {"rules": [with_selection(countNumber="2")]}, "must be an integer"),
    ("rulePriority 0", {"rules": [{**GOOD, "rulePriority": 0}]}, "rulePriority: must be a pos"),
    (
        "unknown selection property",
        {"rules": [with_selection(tagList=["v"])]},
        'not allowed by the schema: (["tagList"])',
    ),
    (
        "unknown countType",
        {"rules": [with_selection(countType="imageCountLessThan")]},
        "not found in enum",
    ),
    (
        "sinceImageTransitioned",
        {"rules": [with_selection(countType="sinceImageTransitioned", countUnit="days")]},
        "Dockyard has no archive storage class",
    ),
    (
        "archive storage class",
        {"rules": [with_selection(storageClass="archive")]},
        "Dockyard has no archive storage class",
    ),
    (
        "transition action",
        {"rules": [{**GOOD, "action": {"type": "transition", "targetStorageClass": "archive"}}]},
        "Dockyard has no archive storage class",
    ),
    ("delete action", {"rules": [{**GOOD, "action": {"type": "delete"}}]}, "not found in enum"),
    ("no action", {"rules": [{k: v for k, v in GOOD.items() if k != "action"}]}, '(["action"])'),
]


@pytest.mark.parametrize(
    ("document", "message"), [pytest.param(d, m, id=name) for name, d, m in INVALID]
)
def test_invalid_policies_say_what_to_fix(document: Any, message: str) -> None:
    text = document if isinstance(document, str) else json.dumps(document)
    with pytest.raises(PolicyError) as raised:
        parse_policy(text)
    assert message in str(raised.value)


def test_four_wildcards_and_standard_storage_are_accepted() -> None:
    parse_policy(json.dumps({"rules": [with_selection(tagPatternList=["*test*1*2*3"])]}))
    parse_policy(json.dumps({"rules": [with_selection(storageClass="standard")]}))


def test_the_text_is_echoed_compact_and_in_priority_order() -> None:
    text = json.dumps(
        {
            "rules": [
                {**rule(9, "any", "days", 30), "description": "sweep"},
                rule(3, "untagged", "newest", 1),
            ]
        },
        indent=4,
    )
    echoed = parse_policy(text).to_text()
    assert echoed == (
        '{"rules":[{"rulePriority":3,"selection":{"tagStatus":"untagged",'
        '"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},'
        '{"rulePriority":9,"description":"sweep","selection":{"tagStatus":"any",'
        '"countType":"sinceImagePushed","countUnit":"days","countNumber":30},'
        '"action":{"type":"expire"}}]}'
    )
    assert parse_policy(echoed) == parse_policy(text)
