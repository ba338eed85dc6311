"""The ECS cluster query language: parse an expression once, then test instances with it.

As the ECS developer guide documents it: ``subject operator [argument]`` conditions
combined with and/&&, or/||, not/! and parentheses. ``not`` binds tighter than ``and``,
which binds tighter than ``or``. The guide's per-subject operator lists are enforced
(``runningTasksCount in [1, 2]`` is refused: ``in`` is not listed for it).

Where the guide is silent:

- ``=~``/``!~`` take a regular expression that must match the WHOLE value, as Java's
  ``String.matches`` does: ``t3.*`` matches ``t3.micro``, ``t3`` does not.
- ``==``, ``!=`` and ``in`` are string equality ("String equality" in the guide). The
  orderings compare numerically when both sides are decimal numbers, else as strings;
  agentVersion orders as a version (1.9.0 < 1.14.5); runningTasksCount is an integer;
  registeredAt takes the guide's four date formats (no zone means UTC) and stands for
  the whole second or day it names: ``registeredAt == 2018-06-18`` is any time that
  day, ``registeredAt > 2018-06-18`` is from the next day on.
- A negated operator is the exact complement of its positive one (``!=`` is
  ``not ==``; likewise ``!in``, ``!~``, ``!exists``), so an instance WITHOUT the
  attribute satisfies ``attribute:x != a``. Orderings are false on a missing attribute
  or one without a value.
- ``task:group`` holds if ANY task on the instance satisfies the positive operator:
  ``task:group == web`` selects instances running a task of group web,
  ``task:group != web`` those running none.
- Values are unquoted (no whitespace, parentheses, brackets, commas, quotes, ``&&`` or
  ``||``) or quoted with ' or " (no escapes). Keywords are lowercase. Expressions are
  limited to 2,000 characters, the ECS limit for placement constraint expressions.
"""

from __future__ import annotations

import functools
import operator
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Set
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar, Protocol

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.parsers.lalr_interactive_parser import InteractiveParser

MAX_LENGTH = 2000


class QuerySubject(Protocol):
    """What an expression reads from a container instance."""

    @property
    def agent_connected(self) -> bool: ...
    @property
    def agent_version(self) -> str: ...
    @property
    def ec2_instance_id(self) -> str: ...
    @property
    def registered_at(self) -> float: ...  # epoch seconds
    @property
    def running_tasks_count(self) -> int: ...
    @property
    def task_groups(self) -> Set[str]: ...  # the groups of its tasks not yet stopped
    @property
    def attributes(self) -> Mapping[str, str | None]: ...  # None: present, no value


@dataclass(frozen=True)
class InstanceFacts:
    """A plain QuerySubject, for callers without an instance type of their own."""

    agent_connected: bool = True
    agent_version: str = ""
    ec2_instance_id: str = ""
    registered_at: float = 0.0
    running_tasks_count: int = 0
    task_groups: frozenset[str] = frozenset()
    attributes: Mapping[str, str | None] = field(default_factory=dict)


class QuerySyntaxError(ValueError):
    """A malformed expression, or an operator or argument its subject does not accept.
    ``position`` is the 0-based offset of the offending text in ``expression``."""

    def __init__(self, message: str, position: int, expression: str) -> None:
        super().__init__(f"{message} (at position {position})")
        self.message = message
        self.position = position
        self.expression = expression


Test = Callable[[QuerySubject], bool]


class Expression(ABC):
    """A parsed expression: immutable, hashable, shared (``parse`` caches them)."""

    @abstractmethod
    def matches(self, subject: QuerySubject) -> bool: ...

    @property
    @abstractmethod
    def subjects(self) -> frozenset[str]:
        """The subjects it reads (``task:group``, ``attribute:ecs.instance-type`` ...):
        a placement engine can cache results for expressions that read no task state."""


@dataclass(frozen=True)
class Condition(Expression):
    subject: str
    operator: str  # the symbolic form: == rather than equals, !in rather than not_in
    arguments: tuple[str, ...]  # none for exists, the list for in, else one
    test: Test = field(compare=False, repr=False)

    def matches(self, subject: QuerySubject) -> bool:
        return self.test(subject)

    @property
    def subjects(self) -> frozenset[str]:
        return frozenset({self.subject})

    def __str__(self) -> str:
        if self.operator in ("in", "!in"):
            return f"{self.subject} {self.operator} [{', '.join(map(_quote, self.arguments))}]"
        return " ".join([self.subject, self.operator, *map(_quote, self.arguments)])


@dataclass(frozen=True)
class Not(Expression):
    operand: Expression

    def matches(self, subject: QuerySubject) -> bool:
        return not self.operand.matches(subject)

    @property
    def subjects(self) -> frozenset[str]:
        return self.operand.subjects

    def __str__(self) -> str:
        return f"not ({self.operand})"


@dataclass(frozen=True)
class _Junction(Expression):
    operands: tuple[Expression, ...]
    word: ClassVar[str]

    @property
    def subjects(self) -> frozenset[str]:
        return frozenset().union(*(o.subjects for o in self.operands))

    def __str__(self) -> str:
        return f" {self.word} ".join(f"({o})" for o in self.operands)


class And(_Junction):
    word = "and"

    def matches(self, subject: QuerySubject) -> bool:
        return all(o.matches(subject) for o in self.operands)


class Or(_Junction):
    word = "or"

    def matches(self, subject: QuerySubject) -> bool:
        return any(o.matches(subject) for o in self.operands)


# The grammar. A word operator must end where a value would (END), so that
# ``equalsx`` is not read as ``equals x``; ``not`` outranks the subject pattern.
_END = r"""(?![^\s()\[\],'"])"""
_WORDS = "greater_than_equal|greater_than|less_than_equal|less_than|"
_WORDS += "not_equals|equals|not_matches|matches"
GRAMMAR = rf"""
?start: disjunction
?disjunction: conjunction (_OR conjunction)*
?conjunction: negation (_AND negation)*
?negation: _NOT negation                -> negated
         | _LPAR disjunction _RPAR
         | SUBJECT COMPARISON argument  -> condition
         | SUBJECT MEMBERSHIP _LBRACKET argument (_COMMA argument)* _RBRACKET -> condition
         | SUBJECT EXISTENCE            -> condition
?argument: VALUE | STRING

SUBJECT: /[A-Za-z][^\s()\[\],'"=!<>~&|]*/
COMPARISON: /(==|!=|>=|<=|=~|!~|>|<|({_WORDS}){_END})/
MEMBERSHIP: /(!in|not_in|in){_END}/
EXISTENCE: /(!exists|not_exists|exists){_END}/
VALUE: /(?:(?!&&|\|\|)[^\s()\[\],'"])+/
STRING: /'[^']*'|"[^"]*"/
_AND: /&&|and{_END}/
_OR: /\|\||or{_END}/
_NOT.2: /!|not{_END}/
_LPAR: "("
_RPAR: ")"
_LBRACKET: "["
_RBRACKET: "]"
_COMMA: ","
%ignore /\s+/
"""

_SYMBOL = {  # word forms -> the symbols Condition.operator uses
    "equals": "==",
    "not_equals": "!=",
    "greater_than": ">",
    "greater_than_equal": ">=",
    "less_than": "<",
    "less_than_equal": "<=",
    "matches": "=~",
    "not_matches": "!~",
    "not_in": "!in",
    "not_exists": "!exists",
}
_NEGATED = {"!=": "==", "!in": "in", "!~": "=~", "!exists": "exists"}
Compare = Callable[[Any, Any], bool]
_ORDER: dict[str, Compare] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
_COMPARE: dict[str, Compare] = {**_ORDER, "==": operator.eq}
_EQUALITY, _SETS, _REGEX = {"==", "!="}, {"in", "!in"}, {"=~", "!~"}
_ALL = ("==", "!=", ">", ">=", "<", "<=", "in", "!in", "=~", "!~", "exists", "!exists")
_OPERATORS = {  # as the guide lists them; attribute:NAME and task:group take all
    "agentConnected": _EQUALITY | _SETS | _REGEX,
    "agentVersion": _EQUALITY | set(_ORDER),
    "ec2InstanceId": _EQUALITY | _SETS | _REGEX,
    "registeredAt": _EQUALITY | set(_ORDER),
    "runningTasksCount": _EQUALITY | set(_ORDER),
    "task:group": set(_ALL),
}
_SUBJECTS = (
    "agentConnected, agentVersion, attribute:NAME, ec2InstanceId, registeredAt, "
    "runningTasksCount or task:group"
)
_ATTRIBUTE_NAME = re.compile(r"[A-Za-z0-9_./\\-]{1,128}")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_COUNT = re.compile(r"[0-9]+")
_VERSION = re.compile(r"[0-9]+(?:\.[0-9]+)*")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:T[0-9:]{8}(?:Z|[+-][0-9]{2}:[0-9]{2})?)?")
_PLAIN = re.compile(r"""(?:(?!&&|\|\|)[^\s()\[\],'"])+""")
_KEYWORDS = {*_SYMBOL, "in", "exists", "and", "or", "not"}


@functools.lru_cache(maxsize=4096)
def parse(expression: str) -> Expression:
    """The expression as a tree of Condition, Not, And and Or; QuerySyntaxError if it
    is malformed or asks a subject for something the guide does not allow."""
    if len(expression) > MAX_LENGTH:
        message = f"the expression has {len(expression)} characters; the limit is {MAX_LENGTH}"
        raise QuerySyntaxError(message, MAX_LENGTH, expression)
    try:
        tree = _parser().parse(expression)
    except UnexpectedInput:
        raise _diagnose(expression) from None
    return _build(tree, expression)


@functools.cache
def _parser() -> Lark:
    return Lark(GRAMMAR, parser="lalr", lexer="contextual")


def _build(node: Tree[Token] | Token, text: str) -> Expression:
    assert isinstance(node, Tree)
    if node.data == "negated":
        return Not(_build(node.children[0], text))
    if node.data in ("conjunction", "disjunction"):
        operands = tuple(_build(child, text) for child in node.children)
        return And(operands) if node.data == "conjunction" else Or(operands)
    subject, op, *values = [c for c in node.children if isinstance(c, Token)]
    symbol = _SYMBOL.get(op, str(op))
    if subject.startswith("attribute:"):
        name = subject[len("attribute:") :]
        if not _ATTRIBUTE_NAME.fullmatch(name):
            raise QuerySyntaxError(
                "an attribute name has 1-128 letters, numbers, hyphens, underscores, "
                f"slashes, backslashes or periods, not {name!r}",
                (subject.start_pos or 0) + len("attribute:"),
                text,
            )
    elif not _known(subject):
        raise _error(f"unknown subject {str(subject)!r}; expected {_SUBJECTS}", subject, text)
    elif symbol not in _OPERATORS[subject]:
        allowed = ", ".join(o for o in _ALL if o in _OPERATORS[subject])
        raise _error(f"{subject} takes {allowed}; not {str(op)!r}", op, text)
    arguments = tuple(v[1:-1] if v[0] in "'\"" else str(v) for v in values)
    positive = _NEGATED.get(symbol, symbol)
    test = _test(str(subject), positive, arguments, values, text)
    if positive != symbol:
        test = _negation(test)
    return Condition(str(subject), symbol, arguments, test)


def _known(subject: str) -> bool:
    return subject in _OPERATORS or subject.startswith("attribute:")


def _error(message: str, at: Token, text: str) -> QuerySyntaxError:
    return QuerySyntaxError(message, at.start_pos or 0, text)


def _negation(test: Test) -> Test:
    return lambda s: not test(s)


def _test(subject: str, op: str, args: tuple[str, ...], tokens: list[Token], text: str) -> Test:
    """The positive operator ``op`` (no != !in !~ !exists) on ``subject``."""
    if subject == "runningTasksCount":
        if not _COUNT.fullmatch(args[0]):
            raise _error(
                f"runningTasksCount compares with a whole number, not {args[0]!r}", tokens[0], text
            )
        count, compare = int(args[0]), _COMPARE[op]
        return lambda s: compare(s.running_tasks_count, count)
    if subject == "registeredAt":
        return _registered(op, _interval(args[0], tokens[0], text))
    if subject == "agentVersion" and op in _ORDER:
        if not _VERSION.fullmatch(args[0]):
            raise _error(
                f"agentVersion orders by a version such as 1.14.5, not {args[0]!r}", tokens[0], text
            )
        wanted, order = _version_key(args[0]), _ORDER[op]
        return lambda s: (v := _version_key(s.agent_version)) is not None and order(v, wanted)
    if op == "exists":
        if subject == "task:group":
            return lambda s: bool(s.task_groups)
        name = subject[len("attribute:") :]
        return lambda s: name in s.attributes
    if subject == "agentConnected" and op != "=~":
        for arg, token in zip(args, tokens, strict=True):
            if arg.lower() not in ("true", "false"):
                raise _error(f"agentConnected is true or false, not {arg!r}", token, text)
        args = tuple(a.lower() for a in args)
    return _over_values(subject, _predicate(op, args, tokens, text))


def _predicate(
    op: str, args: tuple[str, ...], tokens: list[Token], text: str
) -> Callable[[str], bool]:
    if op == "==":
        return args[0].__eq__
    if op == "in":
        return frozenset(args).__contains__
    if op == "=~":
        try:
            pattern = re.compile(args[0])
        except re.error as error:
            raise _error(
                f"invalid regular expression {args[0]!r}: {error}", tokens[0], text
            ) from None
        return lambda v: pattern.fullmatch(v) is not None
    wanted, number, order = args[0], _number(args[0]), _ORDER[op]

    def ordered(value: str) -> bool:
        if number is not None and (n := _number(value)) is not None:
            return order(n, number)
        return order(value, wanted)

    return ordered


def _over_values(subject: str, predicate: Callable[[str], bool]) -> Test:
    if subject == "task:group":
        return lambda s: any(map(predicate, s.task_groups))
    if subject == "ec2InstanceId":
        return lambda s: predicate(s.ec2_instance_id)
    if subject == "agentVersion":
        return lambda s: predicate(s.agent_version)
    if subject == "agentConnected":
        return lambda s: predicate("true" if s.agent_connected else "false")
    name = subject[len("attribute:") :]

    def attribute(s: QuerySubject) -> bool:
        value = s.attributes.get(name)
        return value is not None and predicate(value)

    return attribute


def _registered(op: str, interval: tuple[float, float]) -> Test:
    """``op`` against the [start, end) of the second or day the argument names."""
    start, end = interval
    if op == "==":
        return lambda s: start <= s.registered_at < end
    if op in (">=", "<"):
        order = _ORDER[op]
        return lambda s: order(s.registered_at, start)
    bound = operator.ge if op == ">" else operator.lt  # > day: from its end; <= day: before it
    return lambda s: bound(s.registered_at, end)


def _interval(value: str, token: Token, text: str) -> tuple[float, float]:
    moment = None
    if _DATE.fullmatch(value):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            moment = None
    if moment is None:
        formats = (
            "2018-06-18T22:28:28+00:00, 2018-06-18T22:28:28Z, 2018-06-18T22:28:28 or 2018-06-18"
        )
        raise _error(f"registeredAt takes a date such as {formats}, not {value!r}", token, text)
    start = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    return start, start + (1 if "T" in value else 86400)


def _number(text: str) -> Decimal | None:
    return Decimal(text) if _NUMBER.fullmatch(text) else None


def _version_key(text: str) -> tuple[int, ...] | None:
    """1.14.0 and 1.14 are the same version; a suffix (1.80.0-beta) is ignored."""
    found = _VERSION.match(text)
    if found is None:
        return None
    parts = [int(p) for p in found.group().split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def _quote(value: str) -> str:
    if _PLAIN.fullmatch(value) and value not in _KEYWORDS:
        return value
    return f'"{value}"' if "'" in value else f"'{value}'"


# Error messages. The fast parse above only says that something failed; this second
# pass feeds tokens one at a time so the message can name what came before the error.

_WANTED = {  # terminal -> how a message names it, in the order messages list them
    "SUBJECT": "a subject such as attribute:NAME",
    "_NOT": "'not'",
    "_LPAR": "'('",
    "COMPARISON": "an operator",
    "MEMBERSHIP": "an operator",
    "EXISTENCE": "an operator",
    "VALUE": "a value",
    "STRING": "a value",
    "_LBRACKET": "a list such as [a, b]",
    "_COMMA": "','",
    "_RBRACKET": "']'",
    "_AND": "'and'",
    "_OR": "'or'",
    "_RPAR": "')'",
    "$END": "the end of the expression",
}


def _diagnose(text: str) -> QuerySyntaxError:
    interactive = _parser().parse_interactive(text)
    before = _copy(interactive)  # the parser as it was before the token being fed
    seen: list[Token] = []  # every token lexed, the failing one included
    try:
        for token in interactive.iter_parse():
            seen.append(token)
            before = _copy(interactive)
        before = _copy(interactive)
        interactive.feed_eof(seen[-1] if seen else None)  # type: ignore[no-untyped-call]
    except UnexpectedToken as error:
        # Refused by the parser (a token it was fed): what fitted before it reduced on
        # that token. Refused by the lexer: what fits where the parser stands.
        refused_by_parser = bool(seen) and error.token is seen[-1]
        fits = _accepts(before if refused_by_parser else interactive)
        if error.token.type == "$END":
            return _syntax(text, len(text), fits, seen, None)
        return _syntax(text, error.token.start_pos or 0, fits, seen, str(error.token))
    except UnexpectedCharacters as error:
        return _syntax(text, error.pos_in_stream or 0, _accepts(interactive), seen, None)
    return QuerySyntaxError("malformed expression", 0, text)  # pragma: no cover


def _copy(interactive: InteractiveParser) -> InteractiveParser:
    return interactive.copy()  # type: ignore[no-untyped-call,no-any-return]


def _accepts(interactive: InteractiveParser) -> set[str]:
    return set(interactive.accepts())  # type: ignore[no-untyped-call]


def _syntax(
    text: str, position: int, expected: Iterable[str], seen: list[Token], found: str | None
) -> QuerySyntaxError:
    before = [t for t in seen if (t.start_pos or 0) < position]
    previous = before[-1] if before else None
    if previous is not None and previous.type == "SUBJECT" and not _known(previous):
        # "and a == b": the stray word was read as a subject; say so, not "expected an operator"
        return _error(f"unknown subject {str(previous)!r}; expected {_SUBJECTS}", previous, text)
    if text[position : position + 1] in ("'", '"') and text.count(text[position], position) == 1:
        return QuerySyntaxError("this quote is never closed", position, text)
    order = list(_WANTED)
    names = sorted(expected, key=lambda n: order.index(n) if n in order else len(order))
    wanted = list(dict.fromkeys(_WANTED.get(n, n) for n in names)) or ["something else"]
    message = "expected " + " or ".join(filter(None, [", ".join(wanted[:-1]), wanted[-1]]))
    if previous is not None:
        message += f" after {str(previous)!r}"
    if found is None:
        rest = text[position:].split(None, 1)
        found = rest[0][:40] if rest else None
    message += f", found {found!r}" if found is not None else ", found the end of the expression"
    return QuerySyntaxError(message, position, text)
