"""Check a request body against the operation's input shape in the botocore model.

Two kinds of failure, as AWS reports them:

* a value of the wrong JSON type (or a body that is not an object) is a
  ``SerializationException``, raised at the first one found, naming the member path:
  ``containerDefinitions[0].memory: expected an integer but got the string "100"``;
* a missing required member, an enum miss, or a min/max/pattern breach is collected,
  and all of them are raised as one ``InvalidParameterException``:
  ``2 validation errors detected: Value null at 'family' failed to satisfy constraint:
  Member must not be null; Value 'XYZ' at 'networkMode' ...``.

Members the model does not know are ignored, as AWS ignores them; ``null`` counts as
absent. Paths use ``a[0].b`` for lists and ``a.key`` for map entries.
"""

from __future__ import annotations

import binascii
import functools
import json
import math
import re
from datetime import datetime
from typing import Any

from botocore.model import OperationModel, Shape

from dockyard.api.errors import AwsError, InvalidParameterException, SerializationException

_REDACTED = "*** Sensitive Data Redacted ***"
_INT_BITS = {"integer": 32, "long": 64}
_EXPECTED = {
    "structure": "an object",
    "map": "an object",
    "list": "a list",
    "string": "a string",
    "integer": "an integer",
    "long": "an integer",
    "double": "a number",
    "float": "a number",
    "boolean": "a boolean",
    "timestamp": "a timestamp (epoch seconds or an ISO 8601 string)",
    "blob": "a base64-encoded string",
}
# Java's Unicode classes, widened to the nearest Python class: accepting a little more
# than AWS is better than skipping the whole pattern.
_JAVA_CLASSES = {r"\p{L}": r"\w", r"\p{N}": r"\w", r"\p{Z}": r"\s"}


def validate_input(operation: OperationModel, params: object) -> None:
    """Raise SerializationException or InvalidParameterException if ``params`` is not
    a valid input for ``operation``; return None if it is."""
    if not isinstance(params, dict):
        raise _type_error("", "structure", params, secret=False)
    shape = operation.input_shape
    if shape is None:
        return
    problems: list[str] = []
    _check(shape, params, "", problems, secret=False)
    if problems:
        count = "1 validation error" if len(problems) == 1 else f"{len(problems)} validation errors"
        raise InvalidParameterException(f"{count} detected: " + "; ".join(problems))


def _check(shape: Shape, value: object, path: str, problems: list[str], secret: bool) -> None:
    meta: dict[str, Any] = shape.metadata
    if meta.get("document"):
        return
    secret = secret or bool(meta.get("sensitive"))
    kind: str = shape.type_name
    size: int | None = None
    if kind == "structure":
        if not isinstance(value, dict):
            raise _type_error(path, kind, value, secret)
        _check_structure(shape, value, path, problems, secret)
        return
    if kind == "list":
        if not isinstance(value, list):
            raise _type_error(path, kind, value, secret)
        for index, item in enumerate(value):
            _check(shape.member, item, f"{path}[{index}]", problems, secret)
        size = len(value)
    elif kind == "map":
        if not isinstance(value, dict):
            raise _type_error(path, kind, value, secret)
        for key, item in value.items():
            entry = _join(path, key)
            _check(shape.key, key, entry, problems, secret)
            _check(shape.value, item, entry, problems, secret)
        size = len(value)
    elif kind == "blob":
        size = _blob_size(value, path, secret)
    elif not _scalar_ok(kind, value):
        raise _type_error(path, kind, value, secret)
    elif isinstance(value, str) and kind == "string":
        size = len(value)
    _check_constraints(meta, value, size, path, problems, secret)


def _check_structure(
    shape: Shape, value: dict[str, object], path: str, problems: list[str], secret: bool
) -> None:
    required: list[str] = shape.required_members
    for name in required:
        if value.get(name) is None:
            problems.append(
                f"Value null at '{_join(path, name)}' failed to satisfy constraint: "
                "Member must not be null"
            )
    members: dict[str, Shape] = shape.members
    present = [name for name in members if value.get(name) is not None]
    for name in present:
        _check(members[name], value[name], _join(path, name), problems, secret)
    if shape.metadata.get("union") and len(present) != 1:
        problems.append(
            f"Value '{_show(value, secret)}' at '{path}' failed to satisfy constraint: "
            f"Member must have exactly one of these members set: [{', '.join(members)}]"
        )


def _check_constraints(
    meta: dict[str, Any],
    value: object,
    size: int | None,
    path: str,
    problems: list[str],
    secret: bool,
) -> None:
    def fail(rule: str) -> None:
        problems.append(
            f"Value '{_show(value, secret)}' at '{path}' failed to satisfy constraint: "
            f"Member must {rule}"
        )

    enum: list[str] | None = meta.get("enum")
    if enum and value not in enum:
        fail(f"satisfy enum value set: [{', '.join(enum)}]")
    low, high = meta.get("min"), meta.get("max")
    measure, what = (size, "length") if size is not None else (value, "value")
    if isinstance(measure, int | float):
        if low is not None and measure < low:
            fail(f"have {what} greater than or equal to {low}")
        if high is not None and measure > high:
            fail(f"have {what} less than or equal to {high}")
    pattern = meta.get("pattern")
    if pattern is not None and isinstance(value, str):
        regex = _regex(pattern)
        if regex is not None and regex.fullmatch(value) is None:
            fail(f"satisfy regular expression pattern: {pattern}")


def _scalar_ok(kind: str, value: object) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind in _INT_BITS:
        if isinstance(value, float):
            if not value.is_integer():
                return False
            value = int(value)
        bound = 1 << (_INT_BITS[kind] - 1)
        return isinstance(value, int) and -bound <= value < bound
    if kind in ("double", "float"):
        return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
    if kind == "timestamp":
        if isinstance(value, int | float):
            return math.isfinite(value)
        return isinstance(value, str) and _iso8601(value)
    return True  # a type this module does not know: let the handler decide


def _iso8601(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _blob_size(value: object, path: str, secret: bool) -> int:
    if isinstance(value, str):
        try:
            return len(binascii.a2b_base64(value, strict_mode=True))
        except (binascii.Error, ValueError):
            pass
    raise _type_error(path, "blob", value, secret)


@functools.cache
def _regex(pattern: str) -> re.Pattern[str] | None:
    for java, python in _JAVA_CLASSES.items():
        pattern = pattern.replace(java, python)
    try:
        return re.compile(pattern)
    except re.error:
        return None


def _type_error(path: str, kind: str, value: object, secret: bool) -> AwsError:
    got = _describe(value, secret)
    integral = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if kind in _INT_BITS and integral and not isinstance(value, bool):
        got += f", which does not fit in {_INT_BITS[kind]} bits"
    where = path or "request body"
    return SerializationException(f"{where}: expected {_EXPECTED[kind]} but got {got}")


def _describe(value: object, secret: bool) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {json.dumps(value)}"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    kind = "string" if isinstance(value, str) else "number"
    return f"a {kind}" if secret else f"the {kind} {_clip(json.dumps(value))}"


def _show(value: object, secret: bool) -> str:
    """Render a value the way AWS's Java services echo it: [a, b], {k=v}, true."""
    if secret:
        return _REDACTED
    if isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, list):
        return _clip("[" + ", ".join(_show(item, False) for item in value) + "]")
    if isinstance(value, dict):
        return _clip("{" + ", ".join(f"{k}={_show(v, False)}" for k, v in value.items()) + "}")
    return _clip(str(value))


def _clip(text: str, limit: int = 256) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name
