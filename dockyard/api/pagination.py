"""Opaque ``nextToken`` values: the key to continue after, base64-wrapped."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from dockyard.api.errors import AwsError, InvalidParameterException


def encode_token(key: str | None) -> str | None:
    if key is None:
        return None
    return base64.urlsafe_b64encode(("v1:" + key).encode()).decode()


def decode_token(
    token: str | None, error: type[AwsError] = InvalidParameterException
) -> str | None:
    """The key a token stands for; a token Dockyard did not issue is the caller's error."""
    if not token:
        return None
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    if not text.startswith("v1:"):
        raise error("Invalid nextToken: pass the nextToken value from a previous response.")
    return text[3:]


def listing(member: str, items: list[Any], next_key: str | None) -> dict[str, Any]:
    """A List* answer: ``items`` under ``member``, and a nextToken when more follow."""
    result: dict[str, Any] = {member: items}
    if next_key is not None:
        result["nextToken"] = encode_token(next_key)
    return result


def page_size(max_results: int | None, default: int = 100, ceiling: int = 100) -> int:
    if max_results is None:
        return default
    if not 1 <= max_results <= ceiling:
        raise InvalidParameterException(
            f"maxResults must be between 1 and {ceiling}; {max_results} was given."
        )
    return max_results
