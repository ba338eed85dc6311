"""Who may call Dockyard: access keys, their secrets, and whether they are admins.

Identities come from ``identities.json`` in the data dir (and ``--identity`` flags);
out of the box there is one admin, ``test``/``test``, the convention local AWS
emulators use. The file is a JSON list::

    [{"access_key_id": "AKIA...", "secret_access_key": "...", "name": "ci", "admin": false}]
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ACCESS_KEY = "test"
DEFAULT_SECRET_KEY = "test"


@dataclass(frozen=True)
class Identity:
    access_key_id: str
    secret_access_key: str
    name: str = "root"
    admin: bool = True


DEFAULT_IDENTITY = Identity(DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY)


class IdentityConfigError(ValueError):
    """The identities file or flag is malformed; the message says where."""


def parse_identity_flag(value: str) -> Identity:
    """``KEY:SECRET`` or ``KEY:SECRET:NAME`` or ``KEY:SECRET:NAME:user`` (not admin)."""
    parts = value.split(":")
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise IdentityConfigError(f"--identity {value!r}: expected KEY:SECRET[:NAME[:admin|user]]")
    name = parts[2] if len(parts) > 2 and parts[2] else parts[0]
    admin = parts[3] != "user" if len(parts) > 3 else True
    return Identity(parts[0], parts[1], name, admin)


def load_identities_file(path: Path) -> list[Identity]:
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise IdentityConfigError(f"{path}: {exc}") from exc
    if not isinstance(entries, list):
        raise IdentityConfigError(f"{path}: expected a JSON list of identities")
    identities = []
    for i, entry in enumerate(entries):
        try:
            identities.append(
                Identity(
                    access_key_id=str(entry["access_key_id"]),
                    secret_access_key=str(entry["secret_access_key"]),
                    name=str(entry.get("name", entry["access_key_id"])),
                    admin=bool(entry.get("admin", False)),
                )
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise IdentityConfigError(
                f"{path}: entry {i} needs access_key_id and secret_access_key"
            ) from exc
    return identities


class Identities:
    """Access key id -> identity. Later entries replace earlier ones with the same key."""

    def __init__(self, identities: Iterable[Identity]) -> None:
        self._by_key = {i.access_key_id: i for i in identities}

    def get(self, access_key_id: str) -> Identity | None:
        return self._by_key.get(access_key_id)

    def __iter__(self) -> Iterator[Identity]:
        return iter(self._by_key.values())
