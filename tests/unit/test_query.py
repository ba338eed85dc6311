"""The cluster query language: every subject and operator, precedence, and errors that
point at the offending text. Expressions come from the ECS developer guide where it
gives them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dockyard.scheduler.query import (
    MAX_LENGTH,
    And,
    Condition,
    InstanceFacts,
    Not,
    Or,
    QuerySyntaxError,
    parse,
)

REGISTERED = datetime(2018, 6, 18, 22, 28, 28, tzinfo=UTC).timestamp()


def instance(**changes: Any) -> InstanceFacts:
    """A t3.micro in eu-west-1a running two tasks (service:web, family:batch)."""
    facts: dict[str, Any] = {
        "agent_connected": True,
        "agent_version": "1.80.0",
        "ec2_instance_id": "i-0abc",
        "registered_at": REGISTERED,
        "running_tasks_count": 2,
        "task_groups": frozenset({"service:web", "family:batch"}),
        "attributes": {
            "ecs.instance-type": "t3.micro",
            "ecs.availability-zone": "eu-west-1a",
            "custom.count": "10",
            "custom.label": "blue team",
            "com.amazonaws.ecs.capability.docker-remote-api.1.44": None,
        },
    }
    facts.update(changes)
    return InstanceFacts(**facts)


def case(expression: str, expected: bool, **changes: Any) -> Any:
    return pytest.param(expression, expected, changes, id=expression)


SUBJECTS_AND_OPERATORS = [
    # agentConnected: ==, !=, in, !in, =~, !~ (true/false, any case)
    case("agentConnected == true", True),
    case("agentConnected equals false", False),
    case("agentConnected != false", True),
    case("agentConnected not_equals true", False),
    case("agentConnected == TRUE", True),
    case("agentConnected in [true]", True),
    case("agentConnected !in [false]", True),
    case("agentConnected not_in [true, false]", False),
    case("agentConnected =~ t.*", True),
    case("agentConnected !~ tr.*", False),
    case("agentConnected == false", True, agent_connected=False),
    # agentVersion: equality as strings, orderings as versions
    case("agentVersion == 1.80.0", True),
    case("agentVersion != 1.80.0", False),
    case("agentVersion < 1.14.5", False),
    case("agentVersion > 1.9.0", True),  # as strings "1.80.0" < "1.9.0"
    case("agentVersion >= 1.80", True),  # 1.80 is 1.80.0
    case("agentVersion <= 1.80.0", True),
    case("agentVersion greater_than 1.80.0", False),
    case("agentVersion greater_than_equal 2", False),
    case("agentVersion less_than 2", True),
    case("agentVersion less_than_equal 1.79.9", False),
    case("agentVersion < 1.14.5", False, agent_version=""),
    case("agentVersion < 1.14.5", True, agent_version="1.9.0-beta"),
    # attribute:NAME, every operator
    case("attribute:ecs.instance-type == t3.micro", True),
    case("attribute:ecs.instance-type equals m5.large", False),
    case("attribute:ecs.instance-type != t3.micro", False),
    case("attribute:ecs.instance-type not_equals m5.large", True),
    case("attribute:ecs.instance-type =~ t3.*", True),
    case("attribute:ecs.instance-type =~ t3", False),  # the whole value must match
    case("attribute:ecs.instance-type matches 't[23]\\..*'", True),
    case("attribute:ecs.instance-type !~ m5.*", True),
    case("attribute:ecs.instance-type not_matches t.*", False),
    case("attribute:ecs.instance-type in [t3.micro, m5.large]", True),
    case("attribute:ecs.instance-type !in [t3.micro]", False),
    case("attribute:ecs.instance-type not_in [m5.large, c5.xlarge]", True),
    case("attribute:ecs.instance-type exists", True),
    case("attribute:ecs.instance-type !exists", False),
    case("attribute:ecs.instance-type not_exists", False),
    case("attribute:ecs.instance-type > m5.large", True),  # not numbers: as strings
    case("attribute:ecs.instance-type < t3", False),
    case("attribute:custom.count > 9", True),  # numbers: "10" > "9"
    case("attribute:custom.count greater_than 9.5", True),
    case("attribute:custom.count >= 10.0", True),
    case("attribute:custom.count < -1", False),
    case("attribute:custom.count < 9e0", True),  # 9e0 is no number here: as strings
    case("attribute:custom.label == 'blue team'", True),
    case('attribute:custom.label == "blue team"', True),
    # a missing attribute fails every positive operator; negations are complements
    case("attribute:missing == x", False),
    case("attribute:missing != x", True),
    case("attribute:missing in [x]", False),
    case("attribute:missing !in [x]", True),
    case("attribute:missing =~ .*", False),
    case("attribute:missing !~ .*", True),
    case("attribute:missing > 1", False),
    case("attribute:missing <= 1", False),
    case("attribute:missing exists", False),
    case("attribute:missing !exists", True),
    # an attribute with no value exists but equals nothing
    case("attribute:com.amazonaws.ecs.capability.docker-remote-api.1.44 exists", True),
    case("attribute:com.amazonaws.ecs.capability.docker-remote-api.1.44 == ''", False),
    case("attribute:com.amazonaws.ecs.capability.docker-remote-api.1.44 != x", True),
    # attribute names with slashes and backslashes
    case("attribute:team/a\\b == x", True, attributes={"team/a\\b": "x"}),
    # ec2InstanceId
    case("ec2InstanceId == i-0abc", True),
    case("ec2InstanceId != i-0abc", False),
    case("ec2InstanceId in ['i-0abc', 'i-wxyx7890']", True),
    case("ec2InstanceId not_in ['i-0abc']", False),
    case("ec2InstanceId =~ 'i-0.*'", True),
    case("ec2InstanceId !~ 'i-0.*'", False),
    # registeredAt (22:28:28 UTC on 2018-06-18): a date is the whole day
    case("registeredAt == 2018-06-18", True),
    case("registeredAt == 2018-06-18T22:28:28Z", True),
    case("registeredAt == 2018-06-18T22:28:28+00:00", True),
    case("registeredAt == 2018-06-18T22:28:28", True),  # no zone: UTC
    case("registeredAt == 2018-06-19T00:28:28+02:00", True),
    case("registeredAt == 2018-06-18T22:28:29Z", False),
    case("registeredAt != 2018-06-17", True),
    case("registeredAt < 2018-06-19", True),
    case("registeredAt < 2018-06-18", False),
    case("registeredAt <= 2018-06-18", True),
    case("registeredAt > 2018-06-18", False),
    case("registeredAt >= 2018-06-18", True),
    case("registeredAt greater_than 2018-02-13", True),
    case("registeredAt less_than_equal 2018-06-18T22:28:27Z", False),
    # runningTasksCount
    case("runningTasksCount == 2", True),
    case("runningTasksCount equals 02", True),
    case("runningTasksCount != 2", False),
    case("runningTasksCount > 1", True),
    case("runningTasksCount >= 3", False),
    case("runningTasksCount < 3", True),
    case("runningTasksCount <= 1", False),
    # task:group: ANY task's group
    case("task:group == service:web", True),
    case("task:group == database", False),
    case("task:group != database", True),
    case("task:group != service:web", False),  # not "some task is not in service:web"
    case("task:group in [database, service:web]", True),
    case("task:group !in [database]", True),
    case("task:group =~ 'service:.*'", True),
    case("task:group !~ 'family:.*'", False),
    case("task:group exists", True),
    case("task:group exists", False, task_groups=frozenset()),
    case("task:group !exists", True, task_groups=frozenset()),
    case("task:group > service:a", True),
]

# A = true, F = false: precedence shows in what each combination yields.
A, F = "runningTasksCount == 2", "runningTasksCount == 5"
COMPOUND = [
    case(f"{A} and {F}", False),
    case(f"{A} && {A}", True),
    case(f"{F} or {A}", True),
    case(f"{F} || {F}", False),
    case(f"not {A}", False),
    case(f"!{F}", True),
    case(f"! ! {A}", True),
    case(f"not({A})", False),
    case(f"{A} or {F} and {F}", True),  # and binds tighter: A or (F and F)
    case(f"({A} or {F}) and {F}", False),
    case(f"not {F} and {F}", False),  # not binds tighter: (not F) and F
    case(f"not ({F} and {F})", True),
    case(f"not {A} or {A}", True),
    case(f"((({A})))", True),
    case(f"{A} and {A} and {F}", False),
    case(f"{F} or {F} or {A}", True),
    case(f"{A}&&{A}||{F}", True),
    case(f"({F}||{A})&&!({F})", True),
]

GUIDE_EXAMPLES = [
    case(
        "attribute:ecs.instance-type == t2.small",
        True,
        attributes={"ecs.instance-type": "t2.small"},
    ),
    case("attribute:ecs.availability-zone in [us-east-1a, us-east-1b]", False),
    case(
        "attribute:ecs.instance-type =~ g2.* and attribute:ecs.availability-zone != us-east-1d",
        True,
        attributes={"ecs.instance-type": "g2.2xlarge", "ecs.availability-zone": "us-east-1a"},
    ),
    case("task:group == service:production", True, task_groups=frozenset({"service:production"})),
    case("not(task:group == database)", True),
    case("runningTasksCount == 1", False),
    case("agentVersion < 1.14.5", True, agent_version="1.14.4"),
    case("registeredAt < 2018-02-13", False),
    case("ec2InstanceId in ['i-abcd1234', 'i-wxyx7890']", True, ec2_instance_id="i-wxyx7890"),
    # the placement issue's own example
    case(
        "attribute:ecs.instance-type =~ t3.* and "
        "attribute:ecs.availability-zone in [eu-west-1a, eu-west-1b]",
        True,
    ),
]


@pytest.mark.parametrize(("expression", "expected", "changes"), SUBJECTS_AND_OPERATORS)
def test_subjects_and_operators(expression: str, expected: bool, changes: dict[str, Any]) -> None:
    assert parse(expression).matches(instance(**changes)) is expected


@pytest.mark.parametrize(("expression", "expected", "changes"), COMPOUND)
def test_compound_expressions_and_precedence(
    expression: str, expected: bool, changes: dict[str, Any]
) -> None:
    assert parse(expression).matches(instance(**changes)) is expected


@pytest.mark.parametrize(("expression", "expected", "changes"), GUIDE_EXAMPLES)
def test_examples_from_the_guide_and_the_issue(
    expression: str, expected: bool, changes: dict[str, Any]
) -> None:
    assert parse(expression).matches(instance(**changes)) is expected


@pytest.mark.parametrize(
    ("word", "symbol"),
    [
        ("equals", "=="),
        ("not_equals", "!="),
        ("greater_than", ">"),
        ("greater_than_equal", ">="),
        ("less_than", "<"),
        ("less_than_equal", "<="),
        ("matches", "=~"),
        ("not_matches", "!~"),
    ],
)
def test_word_operators_are_their_symbols(word: str, symbol: str) -> None:
    by_word, by_symbol = parse(f"attribute:x {word} 5"), parse(f"attribute:x {symbol} 5")
    assert by_word == by_symbol
    assert isinstance(by_word, Condition) and by_word.operator == symbol


def test_lists_negated_words_and_existence_have_both_forms() -> None:
    assert parse("attribute:x !in [a, 'b c', \"d\"]") == parse("attribute:x not_in [a,'b c',d]")
    assert parse("attribute:x !exists") == parse("attribute:x not_exists")
    found = parse("attribute:x in [a, 'b c']")
    assert isinstance(found, Condition) and found.arguments == ("a", "b c")


def test_the_tree_is_grouped_as_written() -> None:
    tree = parse("attribute:a exists or attribute:b exists and not attribute:c exists")
    assert isinstance(tree, Or) and isinstance(tree.operands[1], And)
    assert isinstance(tree.operands[1].operands[1], Not)
    assert str(tree) == (
        "(attribute:a exists) or ((attribute:b exists) and (not (attribute:c exists)))"
    )


def test_keywords_are_values_where_a_value_is_expected() -> None:
    assert parse("attribute:x == and").matches(instance(attributes={"x": "and"}))
    assert parse("attribute:x in [or, not]").matches(instance(attributes={"x": "not"}))
    assert parse("attribute:nothing == x").matches(instance(attributes={"nothing": "x"}))


def test_subjects_lists_what_an_expression_reads() -> None:
    expression = parse("task:group == a and (attribute:x exists or not runningTasksCount > 1)")
    assert expression.subjects == {"task:group", "attribute:x", "runningTasksCount"}


def test_parsing_is_cached() -> None:
    assert parse("attribute:ecs.os-type == linux") is parse("attribute:ecs.os-type == linux")


MALFORMED = [
    # (expression, position, what the message says)
    (
        "attribute:ecs.instance-type t3.*",
        28,
        "expected an operator after 'attribute:ecs.instance-type', found 't3.*'",
    ),
    ("", 0, "expected a subject such as attribute:NAME, 'not' or '(', found the end"),
    ("attribute:x ==", 14, "expected a value after '==', found the end of the expression"),
    ("attribute:x == a and", 20, "expected a subject such as attribute:NAME, 'not' or '('"),
    ("(attribute:x == a", 17, "expected ')' after 'a'"),
    ("attribute:x == a)", 16, "expected 'and', 'or' or the end of the expression after 'a'"),
    ("attribute:x == a b", 17, "expected 'and', 'or' or the end of the expression"),
    ("attribute:x in a", 15, "expected a list such as [a, b] after 'in', found 'a'"),
    ("attribute:x in [a, ]", 19, "expected a value after ','"),
    ("attribute:x in [a b]", 18, "expected ',' or ']' after 'a', found 'b'"),
    ("attribute:x in []", 16, "expected a value after '['"),
    ("attribute:x = a", 12, "expected an operator after 'attribute:x'"),
    ("attribute:x == [a]", 15, "expected a value after '=='"),
    ("attribute:x equalsfoo", 12, "expected an operator"),
    ("attribute:x == a AND attribute:y == b", 17, "found 'AND'"),  # keywords are lowercase
    ("attribute:x == 'abc", 15, "this quote is never closed"),
    ("not", 3, "expected a subject"),
    ("== b", 0, "expected a subject such as attribute:NAME, 'not' or '(', found '=='"),
    ("and attribute:x exists", 0, "unknown subject 'and'"),
    ("foo == 1", 0, "unknown subject 'foo'"),
    ("attribute: == a", 10, "an attribute name has 1-128 letters"),
    ("(attribute:a@b == c)", 11, "not 'a@b'"),
    ("runningTasksCount in [1]", 18, "runningTasksCount takes ==, !=, >, >=, <, <=; not 'in'"),
    ("agentConnected exists", 15, "agentConnected takes ==, !=, in, !in, =~, !~; not 'exists'"),
    ("agentVersion =~ 1.*", 13, "agentVersion takes ==, !=, >, >=, <, <=; not '=~'"),
    ("runningTasksCount > many", 20, "runningTasksCount compares with a whole number"),
    ("registeredAt < 2018-13-45", 15, "registeredAt takes a date such as"),
    ("registeredAt < yesterday", 15, "not 'yesterday'"),
    ("registeredAt > 2018-06-18T22:28", 15, "registeredAt takes a date"),
    ("attribute:x =~ 't2('", 15, "invalid regular expression 't2('"),
    ("agentConnected in [true, yes]", 25, "agentConnected is true or false, not 'yes'"),
    ("agentVersion < latest", 15, "agentVersion orders by a version such as 1.14.5"),
    ("x" * (MAX_LENGTH + 1), MAX_LENGTH, f"the limit is {MAX_LENGTH}"),
]


@pytest.mark.parametrize(
    ("expression", "position", "message"), MALFORMED, ids=lambda v: str(v)[:50]
)
def test_malformed_expressions_say_where_and_why(
    expression: str, position: int, message: str
) -> None:
    with pytest.raises(QuerySyntaxError) as raised:
        parse(expression)
    assert raised.value.position == position, raised.value.message
    assert message in raised.value.message
    assert raised.value.expression == expression
    assert isinstance(raised.value, ValueError)


# Properties. Conditions are built from the guide's subjects with operators they accept.

VALUES = st.sampled_from(["t3.micro", "m5.large", "eu-west-1a", "10", "9.5", "web", "a b"])
PATTERNS = st.sampled_from(["t3.*", ".*", "m5\\..*", "[a-z]+", "9.*"])


def _value(text: str) -> str:
    return f"'{text}'" if " " in text else text


SUBJECTS = [
    *("attribute:ecs.instance-type", "attribute:custom", "task:group", "ec2InstanceId"),
    *("agentConnected", "agentVersion", "registeredAt", "runningTasksCount"),
]


@st.composite
def conditions(draw: st.DrawFn) -> str:
    subject = draw(st.sampled_from(SUBJECTS))
    if subject == "runningTasksCount":
        op = draw(st.sampled_from(["==", "!=", ">", ">=", "<", "<=", "equals", "less_than"]))
        return f"{subject} {op} {draw(st.integers(0, 4))}"
    if subject == "registeredAt":
        op = draw(st.sampled_from(["==", "!=", ">", ">=", "<", "<=", "greater_than"]))
        day = draw(st.dates(datetime(2018, 6, 16).date(), datetime(2018, 6, 20).date()))
        return f"{subject} {op} {day.isoformat()}"
    if subject == "agentVersion":
        op = draw(st.sampled_from(["==", "!=", ">", ">=", "<", "<="]))
        return f"{subject} {op} {draw(st.sampled_from(['1.9.0', '1.80.0', '1.80', '2']))}"
    if subject == "agentConnected":
        op = draw(st.sampled_from(["==", "!=", "in", "!in"]))
        value = draw(st.sampled_from(["true", "false"]))
        return f"{subject} {op} [{value}]" if "in" in op else f"{subject} {op} {value}"
    ops = ["==", "!=", "in", "!in", "not_in", "=~", "!~", "matches"]
    if subject.startswith(("attribute", "task")):
        ops += [">", ">=", "<", "<=", "exists", "!exists", "not_exists"]
    op = draw(st.sampled_from(ops))
    if op in ("in", "!in", "not_in"):
        listed = draw(st.lists(VALUES, min_size=1, max_size=3))
        return f"{subject} {op} [{', '.join(map(_value, listed))}]"
    if "exists" in op:
        return f"{subject} {op}"
    if op in ("=~", "!~", "matches"):
        return f"{subject} {op} '{draw(PATTERNS)}'"
    return f"{subject} {op} {_value(draw(VALUES))}"


expressions = st.recursive(
    conditions(),
    lambda inner: st.one_of(
        inner.map(lambda e: f"not ({e})"),
        inner.map(lambda e: f"!({e})"),
        st.lists(inner, min_size=2, max_size=3).map(lambda es: " and ".join(f"({e})" for e in es)),
        st.lists(inner, min_size=2, max_size=3).map(lambda es: " || ".join(f"({e})" for e in es)),
    ),
    max_leaves=8,
)

subjects = st.builds(
    InstanceFacts,
    agent_connected=st.booleans(),
    agent_version=st.sampled_from(["", "1.9.0", "1.80.0", "2.0.1"]),
    ec2_instance_id=st.sampled_from(["i-0abc", "t3.micro"]),
    registered_at=st.floats(REGISTERED - 3 * 86400, REGISTERED + 3 * 86400),
    running_tasks_count=st.integers(0, 4),
    task_groups=st.frozensets(VALUES, max_size=3),
    attributes=st.dictionaries(
        st.sampled_from(["ecs.instance-type", "custom"]), st.none() | VALUES, max_size=2
    ),
)

# Text made of the language's own pieces, glued without regard for the grammar.
FRAGMENTS = [
    *("attribute:x", "attribute:", "task:group", "runningTasksCount", "registeredAt"),
    *("agentVersion", "agentConnected", "ec2InstanceId", "==", "!=", "=~", "!~", ">", "<="),
    *("in", "!in", "not_in", "exists", "!exists", "and", "or", "not", "&&", "||", "!"),
    *("(", ")", "[", "]", ",", "'", '"', "t3.*", "1", "2018-06-18", "(?", "\\", "é", "٣"),
]
glued = st.lists(st.sampled_from(FRAGMENTS), max_size=12).flatmap(
    lambda parts: st.lists(
        st.sampled_from(["", " ", "\n"]), min_size=len(parts), max_size=len(parts)
    ).map(lambda gaps: "".join(p + g for p, g in zip(parts, gaps, strict=True)))
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(glued, expressions, st.text(max_size=40)))
def test_parse_raises_nothing_but_query_syntax_error(text: str) -> None:
    try:
        parse(text)
    except QuerySyntaxError as error:
        assert 0 <= error.position <= len(text)
        assert error.message


@settings(max_examples=300, deadline=None)
@given(expressions, subjects)
def test_not_negates_and_printing_round_trips(text: str, subject: InstanceFacts) -> None:
    expression = parse(text)
    assert parse(f"not ({text})").matches(subject) is not expression.matches(subject)
    assert parse(f"!({text})").matches(subject) is not expression.matches(subject)
    again = parse(str(expression))
    assert again == expression
    assert again.matches(subject) is expression.matches(subject)


@settings(max_examples=200, deadline=None)
@given(conditions(), subjects)
def test_negated_operators_are_complements(text: str, subject: InstanceFacts) -> None:
    condition = parse(text)
    assert isinstance(condition, Condition)
    positive = {"!=": "==", "!in": "in", "!~": "=~", "!exists": "exists"}.get(condition.operator)
    if positive is not None:
        flipped = Condition(condition.subject, positive, condition.arguments, condition.test)
        assert parse(str(flipped)).matches(subject) is not condition.matches(subject)
