"""Hold every server response to the operation's output shape, strictly.

``install(client)`` hooks botocore's ``before-parse`` event on one boto3 client, so each
call's raw JSON body is checked before botocore's lenient parser sees it; a call whose
response breaks the model raises ``AssertionError`` listing the problems.

Strict means: no member the shape does not declare, no ``null``, JSON 1.1 wire types
(timestamps are epoch-second numbers, booleans are JSON booleans, integers are ints),
enum values from the enum set, required members present. Error responses (status
>= 400) must carry string ``__type`` and ``message`` (or ``Message``), and the type must
be one the operation declares or one every AWS JSON service may answer with.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.model import OperationModel, Shape

COMMON_ERRORS = frozenset(
    {
        "SerializationException",
        "UnknownOperationException",
        "MissingAuthenticationTokenException",
        "IncompleteSignatureException",
        "InvalidSignatureException",
        "UnrecognizedClientException",
        "AccessDeniedException",
        "ValidationException",
        "ThrottlingException",
    }
)

_WIRE_TYPES: dict[str, tuple[str, tuple[type, ...]]] = {
    "string": ("a string", (str,)),
    "blob": ("a base64 string", (str,)),
    "boolean": ("a boolean", (bool,)),
    "integer": ("an integer", (int,)),
    "long": ("an integer", (int,)),
    "double": ("a number", (int, float)),
    "float": ("a number", (int, float)),
    "timestamp": ("a number of epoch seconds", (int, float)),
}


def install(client: Any) -> None:
    """Check every response ``client`` receives; raise AssertionError on a bad one."""

    def check(operation_model: OperationModel, response_dict: dict[str, Any], **_: Any) -> None:
        # botocore emits before-parse with operation_model, response_dict (headers,
        # status_code, body, context) and customized_response_dict. A streamed body is
        # a file object, not JSON: leave it alone.
        if not isinstance(response_dict["body"], bytes | str):
            return
        problems = check_response(
            operation_model, response_dict["status_code"], response_dict["body"]
        )
        if problems:
            raise AssertionError(
                f"{operation_model.name} response breaks the model:\n  " + "\n  ".join(problems)
            )

    client.meta.events.register("before-parse.*.*", check, unique_id="dockyard-shapecheck")


def check_response(operation: OperationModel, status: int, raw: bytes | str) -> list[str]:
    """Problems with a raw HTTP response body, success or error."""
    try:
        body = json.loads(raw) if raw else {}
    except ValueError as exc:
        return [f"body is not JSON ({exc}): {raw[:200]!r}"]
    if status >= 400:
        return check_error(operation, body)
    return check_output(operation, body)


def check_output(operation: OperationModel, body: object) -> list[str]:
    """Problems with a successful response body; empty if it matches the output shape."""
    problems: list[str] = []
    shape = operation.output_shape
    if shape is None:
        if body != {}:
            problems.append(f"operation has no output, but the body is {body!r}")
        return problems
    _walk(shape, body, "", problems)
    return problems


def check_error(operation: OperationModel, body: object) -> list[str]:
    """Problems with an error response body."""
    if not isinstance(body, dict):
        return [f"error body must be an object, got {body!r}"]
    problems: list[str] = []
    code = body.get("__type")
    if not isinstance(code, str):
        problems.append(f"__type must be a string, got {code!r}")
    else:
        name = code.rsplit("#", 1)[-1]
        declared = {shape.name for shape in operation.error_shapes}
        declared |= {
            s.metadata.get("error", {}).get("code", s.name) for s in operation.error_shapes
        }
        if name not in declared | COMMON_ERRORS:
            problems.append(
                f"__type {name!r} is neither declared by {operation.name} "
                f"({', '.join(sorted(declared))}) nor a common AWS error"
            )
    message = body.get("message", body.get("Message"))
    if not isinstance(message, str):
        problems.append(f"message (or Message) must be a string, got {message!r}")
    return problems


def _walk(shape: Shape, value: object, path: str, problems: list[str]) -> None:
    where = path or "body"
    kind = shape.type_name
    if shape.metadata.get("document"):
        return
    if value is None:
        problems.append(f"{where}: null; omit the member instead")
    elif kind == "structure" and isinstance(value, dict):
        _walk_structure(shape, value, path, problems)
    elif kind == "list" and isinstance(value, list):
        for index, item in enumerate(value):
            _walk(shape.member, item, f"{path}[{index}]", problems)
    elif kind == "map" and isinstance(value, dict):
        for key, item in value.items():
            entry = _join(path, key)
            _walk(shape.key, key, entry, problems)
            _walk(shape.value, item, entry, problems)
    elif kind in ("structure", "list", "map"):
        expected = "a list" if kind == "list" else "an object"
        problems.append(f"{where}: expected {expected}, got {_show(value)}")
    elif kind not in _WIRE_TYPES:
        problems.append(f"{where}: shapecheck does not know the shape type {kind!r}")
    elif not _wire_type_ok(kind, value):
        problems.append(f"{where}: expected {_WIRE_TYPES[kind][0]}, got {_show(value)}")
    elif (enum := shape.metadata.get("enum")) and value not in enum:
        problems.append(f"{where}: {value!r} is not in the enum set {enum}")


def _walk_structure(shape: Shape, value: dict[str, Any], path: str, problems: list[str]) -> None:
    members = shape.members
    for name in shape.required_members:
        if name not in value:
            problems.append(f"{_join(path, name)}: required by {shape.name} but missing")
    for name, item in value.items():
        if name in members:
            _walk(members[name], item, _join(path, name), problems)
        else:
            problems.append(f"{_join(path, name)}: not a member of {shape.name}")


def _wire_type_ok(kind: str, value: object) -> bool:
    if isinstance(value, bool):  # bool is an int subclass: only a boolean shape takes it
        return kind == "boolean"
    return isinstance(value, _WIRE_TYPES[kind][1])


def _show(value: object) -> str:
    return f"{type(value).__name__} {value!r:.80}"


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name
