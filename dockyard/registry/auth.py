"""Registry credentials: the ECR authorization token, and who a /v2/ request is.

``GetAuthorizationToken`` hands out ``base64("AWS:" + token)``; ``docker login
--username AWS --password TOKEN`` then sends the token with Basic auth on every
request, or trades it at the token endpoint for a Bearer token. A token names the
identity, account and region it was issued for (the registry of that region, as ECR
has one registry per account and region) and expires after 12 hours. Tokens are
HMAC-signed with a key kept in the data dir, so they survive restarts.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path

import orjson

from dockyard.api.identity import Identities, Identity
from dockyard.registry.errors import RegistryError

TOKEN_LIFETIME = 12 * 3600
KEY_FILE = "registry.key"


@dataclass(frozen=True)
class RegistryCaller:
    identity: Identity
    account_id: str
    region: str


def load_or_create_key(data_dir: Path) -> bytes:
    path = data_dir / KEY_FILE
    if not path.exists():
        path.write_bytes(secrets.token_bytes(32))
        path.chmod(0o600)
    return path.read_bytes()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Tokens:
    def __init__(self, key: bytes, identities: Identities) -> None:
        self._key = key
        self._identities = identities

    def issue(self, caller: RegistryCaller, now: float) -> tuple[str, float]:
        """A token for ``caller`` and when it expires (epoch seconds)."""
        expires_at = now + TOKEN_LIFETIME
        claims = {
            "k": caller.identity.access_key_id,
            "a": caller.account_id,
            "r": caller.region,
            "e": expires_at,
        }
        body = _b64(orjson.dumps(claims))
        return f"{body}.{self._sign(body)}", expires_at

    def verify(self, token: str, now: float) -> RegistryCaller:
        body, _, signature = token.partition(".")
        if not signature or not hmac.compare_digest(signature, self._sign(body)):
            raise RegistryError("UNAUTHORIZED", "authentication token is not valid")
        try:
            claims = orjson.loads(_unb64(body))
        except (binascii.Error, orjson.JSONDecodeError, ValueError):
            raise RegistryError("UNAUTHORIZED", "authentication token is not valid") from None
        if claims["e"] <= now:
            raise RegistryError(
                "UNAUTHORIZED",
                "Your authorization token has expired. Reauthenticate and try again.",
            )
        identity = self._identities.get(claims["k"])
        if identity is None:
            raise RegistryError("UNAUTHORIZED", "the identity of this token no longer exists")
        return RegistryCaller(identity, claims["a"], claims["r"])

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())

    def authenticate(self, authorization: str | None, now: float) -> RegistryCaller:
        """Who sent a /v2/ request: ``Basic AWS:token`` or ``Bearer token``."""
        if not authorization:
            raise RegistryError("UNAUTHORIZED")
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer":
            return self.verify(value.strip(), now)
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value.strip()).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise RegistryError("UNAUTHORIZED", "malformed Basic credentials") from None
            if user != "AWS":
                raise RegistryError("UNAUTHORIZED", "the user name must be AWS")
            return self.verify(password, now)
        raise RegistryError("UNAUTHORIZED", f"unsupported authorization scheme {scheme}")


def authorize(caller: RegistryCaller, action: str, repository: str) -> None:
    """The one place a /v2/ or ECR action on a repository is allowed or denied.

    ``action`` is "pull", "push" or "delete". Every identity may do everything until
    IAM-style policies arrive; they will be checked here.
    """
    del caller, action, repository
