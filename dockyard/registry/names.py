"""The distribution spec's grammar for repository names, tags and digests.

Each check returns its argument when it is valid and raises the spec's error code
otherwise, so the routes can validate a path before touching the store.
"""

from __future__ import annotations

import re

from dockyard.registry.errors import RegistryError

MAX_NAME_LENGTH = 256

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
_ALGORITHM = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*")
_HEX = re.compile(r"[a-f0-9]+")
# The registered algorithms and the length of their lowercase hex encoding.
_HEX_LENGTH = {"sha256": 64, "sha512": 128}


def check_name(name: str) -> str:
    if len(name) > MAX_NAME_LENGTH:
        raise RegistryError(
            "NAME_INVALID",
            f"repository name is longer than {MAX_NAME_LENGTH} characters",
            {"name": name[:MAX_NAME_LENGTH] + "..."},
        )
    if not _NAME.fullmatch(name):
        raise RegistryError(
            "NAME_INVALID",
            "repository name must be lowercase path components of letters and digits "
            "separated by '/', each joined by '.', '_', '__' or dashes",
            {"name": name},
        )
    return name


def check_tag(tag: str) -> str:
    if not _TAG.fullmatch(tag):
        raise RegistryError(
            "TAG_INVALID",
            "a tag is up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'",
            {"tag": tag},
        )
    return tag


def check_digest(digest: str) -> str:
    algorithm, colon, encoded = digest.partition(":")
    if not colon or not _ALGORITHM.fullmatch(algorithm):
        raise RegistryError(
            "DIGEST_INVALID", "a digest is written algorithm:hex", {"digest": digest}
        )
    length = _HEX_LENGTH.get(algorithm)
    if length is None:
        raise RegistryError(
            "DIGEST_INVALID",
            f"unsupported digest algorithm {algorithm!r} (use sha256 or sha512)",
            {"digest": digest},
        )
    if len(encoded) != length or not _HEX.fullmatch(encoded):
        raise RegistryError(
            "DIGEST_INVALID",
            f"a {algorithm} digest is {length} lowercase hex digits",
            {"digest": digest},
        )
    return digest


def is_digest(reference: str) -> bool:
    """A manifest reference is a digest when it has a colon (tags cannot)."""
    return ":" in reference


def check_reference(reference: str) -> str:
    """A tag or a digest, as in ``/v2/<name>/manifests/<reference>``."""
    return check_digest(reference) if is_digest(reference) else check_tag(reference)
