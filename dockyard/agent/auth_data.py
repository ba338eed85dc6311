"""Private registry credentials from ECS_ENGINE_AUTH_TYPE + ECS_ENGINE_AUTH_DATA.

Two formats, as the ECS agent reads them (both JSON objects keyed by registry):

- ``docker``: ``{"https://index.docker.io/v1/": {"username": "u", "password": "p",
  "email": "e"}}``, Docker's AuthConfig per registry;
- ``dockercfg``: the contents of ``~/.dockercfg``: ``{"registry": {"auth":
  base64("u:p"), "email": "e"}}``. The ``{"auths": {...}}`` wrapper of
  ``~/.docker/config.json`` is accepted too (the AWS docs ask users to strip it).

Keys lose their ``http://``/``https://`` scheme. Docker Hub images use the
``index.docker.io/v1/`` key that ``docker login`` writes. Any other image uses the
keys for its registry host: the longest whose path is a prefix of the image's
repository (``host/team`` beats ``host`` for ``host/team/app``), else any key for that
host, as the agent falls back to a plain host match.

Parse errors are ``ValueError`` with a message that never contains a secret; the
config loader adds the variable's name.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any, NamedTuple

AUTH_TYPES = ("docker", "dockercfg")
DOCKER_HUB_KEY = "index.docker.io/v1/"
DOCKER_HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})


class Credentials(NamedTuple):
    username: str
    password: str

    def __repr__(self) -> str:  # never print a password in a log line
        return f"Credentials(username={self.username!r}, password='***')"


def parse_auth_data(auth_type: str, raw: str) -> dict[str, Credentials]:
    """Registry key (without scheme) -> credentials, for one of ``AUTH_TYPES``."""
    try:
        document = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"not valid JSON ({error.msg} at character {error.pos})") from None
    if not isinstance(document, dict):
        raise ValueError("expected a JSON object keyed by registry")
    if auth_type == "dockercfg" and set(document) == {"auths"}:
        document = document["auths"]
        if not isinstance(document, dict):
            raise ValueError('"auths" must be a JSON object keyed by registry')
    parse_entry = _docker_entry if auth_type == "docker" else _dockercfg_entry
    result: dict[str, Credentials] = {}
    for registry, entry in document.items():
        if not isinstance(entry, dict):
            raise ValueError(f"registry {registry!r}: expected a JSON object")
        result[_strip_scheme(registry)] = parse_entry(registry, entry)
    return result


def _docker_entry(registry: str, entry: Mapping[str, Any]) -> Credentials:
    username, password = entry.get("username"), entry.get("password")
    if username is None and password is None and "auth" in entry:
        return _decode_auth(registry, entry["auth"])
    if not isinstance(username, str) or not isinstance(password, str):
        raise ValueError(f'registry {registry!r}: expected "username" and "password" strings')
    return Credentials(username, password)


def _dockercfg_entry(registry: str, entry: Mapping[str, Any]) -> Credentials:
    if "auth" not in entry:
        raise ValueError(f'registry {registry!r}: expected an "auth" member')
    return _decode_auth(registry, entry["auth"])


def _decode_auth(registry: str, auth: Any) -> Credentials:
    expected = f'registry {registry!r}: "auth" must be base64 of "username:password"'
    if not isinstance(auth, str):
        raise ValueError(expected)
    try:
        decoded = base64.b64decode(auth, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError(expected) from None
    username, colon, password = decoded.partition(":")
    if not colon:
        raise ValueError(expected)
    return Credentials(username, password)


def _strip_scheme(registry: str) -> str:
    for scheme in ("https://", "http://"):
        if registry.startswith(scheme):
            return registry[len(scheme) :]
    return registry


def split_image(image: str) -> tuple[str, str]:
    """(registry host, repository) of an image reference, Docker's way.

    The first path component is a registry host only when it has a ``.`` or a ``:``
    or is ``localhost``; otherwise the image is on Docker Hub (``docker.io``).
    Tag and digest are dropped: ``127.0.0.1:5000/demo:latest`` -> ("127.0.0.1:5000",
    "demo").
    """
    name = image.split("@", 1)[0]
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        name = name[:colon]
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first.lower(), rest
    return "docker.io", name


def find_credentials(auths: Mapping[str, Credentials], image: str) -> Credentials | None:
    """The credentials to pull ``image`` with, or None to pull anonymously."""
    host, repository = split_image(image)
    if host in DOCKER_HUB_HOSTS:
        if DOCKER_HUB_KEY in auths:
            return auths[DOCKER_HUB_KEY]
        hub = sorted(key for key in auths if _host_of(key) in DOCKER_HUB_HOSTS)
        return auths[hub[0]] if hub else None
    same_host = sorted(key for key in auths if _host_of(key) == host)
    if not same_host:
        return None
    matching = [key for key in same_host if _path_matches(key, repository)]
    best = max(matching, key=len) if matching else same_host[0]
    return auths[best]


def _host_of(key: str) -> str:
    return key.split("/", 1)[0].lower()


def _path_matches(key: str, repository: str) -> bool:
    path = key.partition("/")[2].strip("/")
    return not path or repository == path or repository.startswith(path + "/")
