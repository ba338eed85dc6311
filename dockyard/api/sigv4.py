"""SigV4 verification: recompute the signature with botocore's own signer.

We rebuild the request exactly as the client signed it (only the headers it listed
in SignedHeaders), let ``botocore.auth.SigV4Auth`` compute the canonical request and
signature, and compare in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from dockyard.api.errors import (
    IncompleteSignatureException,
    InvalidSignatureException,
    MissingAuthenticationTokenException,
    UnrecognizedClientException,
)
from dockyard.api.identity import Identities, Identity

CLOCK_SKEW = timedelta(minutes=5)
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"

_AMZ_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z", re.ASCII)
_AUTH_RE = re.compile(
    r"AWS4-HMAC-SHA256\s+"
    r"Credential=(?P<key>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[^/,\s]+)/(?P<service>[^/,\s]+)"
    r"/aws4_request,\s*SignedHeaders=(?P<headers>[a-z0-9;\-]+),\s*Signature=(?P<sig>[0-9a-f]{64})"
)


@dataclass(frozen=True)
class SignedRequest:
    """What the protocol layer knows of an incoming HTTP request."""

    method: str
    url: str  # scheme://host/path?query as received
    headers: Mapping[str, str]  # lower-case names
    body: bytes


@dataclass(frozen=True)
class Caller:
    identity: Identity
    region: str
    service: str


def verify(request: SignedRequest, identities: Identities, now: datetime) -> Caller:
    """Return who signed ``request``, or raise the error AWS would answer with."""
    header = request.headers.get("authorization")
    if not header:
        raise MissingAuthenticationTokenException("Missing Authentication Token")
    match = _AUTH_RE.match(header)
    if not match:
        raise IncompleteSignatureException(
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' "
            f"parameters in AWS4-HMAC-SHA256 form. Authorization={header}"
        )
    identity = identities.get(match["key"])
    if identity is None:
        raise UnrecognizedClientException("The security token included in the request is invalid.")

    amz_date = request.headers.get("x-amz-date", "")
    signed_at = _parse_amz_date(amz_date)
    if amz_date[:8] != match["date"]:
        raise InvalidSignatureException(
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{match['date']}' != '{amz_date[:8]}', from '{amz_date}'."
        )
    if abs(now - signed_at) > CLOCK_SKEW:
        raise InvalidSignatureException(
            f"Signature expired: {amz_date} is now earlier than "
            f"{(now - CLOCK_SKEW).strftime(SIGV4_TIMESTAMP)} "
            f"({now.strftime(SIGV4_TIMESTAMP)} - 5 min.)"
            if signed_at < now
            else f"Signature not yet current: {amz_date} is still later than "
            f"{(now + CLOCK_SKEW).strftime(SIGV4_TIMESTAMP)} "
            f"({now.strftime(SIGV4_TIMESTAMP)} + 5 min.)"
        )
    content_sha = request.headers.get("x-amz-content-sha256")
    if content_sha not in (None, UNSIGNED_PAYLOAD) and not hmac.compare_digest(
        content_sha, hashlib.sha256(request.body).hexdigest()
    ):
        raise InvalidSignatureException(
            "The provided 'x-amz-content-sha256' header does not match what was computed."
        )

    expected = _signature(request, match["headers"].split(";"), identity, match, amz_date)
    if not hmac.compare_digest(expected, match["sig"]):
        raise InvalidSignatureException(
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method. "
            "Consult the service documentation for details."
        )
    return Caller(identity=identity, region=match["region"], service=match["service"])


def _parse_amz_date(value: str) -> datetime:
    # SIGV4_TIMESTAMP by hand: strptime costs as much as the rest of the check.
    parts = _AMZ_DATE.fullmatch(value)
    try:
        if parts is None:
            raise ValueError(value)
        year, month, day, hour, minute, second = map(int, parts.groups())
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        raise IncompleteSignatureException(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' "
            "header in ISO-8601 basic format (YYYYMMDDTHHMMSSZ)."
        ) from None


def _signature(
    request: SignedRequest,
    signed_headers: list[str],
    identity: Identity,
    match: re.Match[str],
    amz_date: str,
) -> str:
    missing = [h for h in signed_headers if h not in request.headers]
    if missing or "host" not in signed_headers:
        raise IncompleteSignatureException(
            "The request signature must cover the host header and every signed header "
            f"must be present (missing: {', '.join(missing) or 'host'})."
        )
    aws_request = AWSRequest(
        method=request.method,
        url=request.url,
        headers={h: request.headers[h] for h in signed_headers},
        data=request.body,
    )
    aws_request.context["timestamp"] = amz_date
    signer = SigV4Auth(
        Credentials(identity.access_key_id, identity.secret_access_key),
        match["service"],
        match["region"],
    )
    canonical = signer.canonical_request(aws_request)
    string_to_sign = signer.string_to_sign(aws_request, canonical)
    return str(signer.signature(string_to_sign, aws_request))
