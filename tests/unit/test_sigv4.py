"""verify() against requests signed by botocore itself, at a clock the test chooses."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from dockyard.api.errors import (
    AwsError,
    IncompleteSignatureException,
    InvalidSignatureException,
    MissingAuthenticationTokenException,
    UnrecognizedClientException,
)
from dockyard.api.identity import Identities, Identity
from dockyard.api.sigv4 import Caller, SignedRequest, verify

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
ENDPOINT = "http://127.0.0.1:8080"
REGION = "eu-west-1"
CI = Identity("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "ci", admin=False)
IDENTITIES = Identities([CI, Identity("test", "test")])
BODY = b'{"clusterName": "default"}'
ECS_HEADERS = {
    "X-Amz-Target": "AmazonEC2ContainerServiceV20141113.CreateCluster",
    "Content-Type": "application/x-amz-json-1.1",
}


class SigV4At(SigV4Auth):
    """botocore's SigV4 signer with the clock set: ``add_auth`` as botocore's, but
    stamped ``at`` instead of the current time."""

    def __init__(self, credentials: Credentials, service: str, region: str, at: datetime):
        super().__init__(credentials, service, region)
        self.at = at

    def add_auth(self, request: AWSRequest) -> None:
        request.context["timestamp"] = self.at.strftime(SIGV4_TIMESTAMP)
        self._modify_request_before_signing(request)
        canonical_request = self.canonical_request(request)
        string_to_sign = self.string_to_sign(request, canonical_request)
        self._inject_signature_to_request(request, self.signature(string_to_sign, request))


def signed(
    *,
    at: datetime = NOW,
    key: str = CI.access_key_id,
    secret: str = CI.secret_access_key,
    method: str = "POST",
    path: str = "/",
    body: bytes = BODY,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    region: str = REGION,
    service: str = "ecs",
) -> SignedRequest:
    """A request signed by botocore, as the server receives it: lower-case header
    names, and the Host header the HTTP client adds."""
    request = AWSRequest(
        method=method,
        url=ENDPOINT + path,
        data=body,
        headers=ECS_HEADERS if headers is None else headers,
        params=params or {},
    )
    SigV4At(Credentials(key, secret), service, region, at).add_auth(request)
    prepared = request.prepare()
    received = {name.lower(): value for name, value in prepared.headers.items()}
    received["host"] = urlsplit(prepared.url).netloc
    return SignedRequest(method, prepared.url, received, prepared.body or b"")


def with_headers(request: SignedRequest, **changes: str | None) -> SignedRequest:
    """The request with headers set (or removed, given None); names use _ for -."""
    headers = dict(request.headers)
    for name, value in changes.items():
        headers.pop(name.replace("_", "-"), None)
        if value is not None:
            headers[name.replace("_", "-")] = value
    return replace(request, headers=headers)


def sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def authorization(request: SignedRequest) -> str:
    return request.headers["authorization"]


# Accepted


def test_a_valid_signature_names_the_caller_and_the_scope() -> None:
    request = signed(region="us-east-2", service="ecr")

    assert verify(request, IDENTITIES, NOW) == Caller(CI, "us-east-2", "ecr")


ACCEPTED = [
    pytest.param(lambda: signed(at=NOW - timedelta(minutes=4)), id="signed-4-minutes-ago"),
    pytest.param(lambda: signed(at=NOW + timedelta(minutes=4)), id="clock-4-minutes-ahead"),
    pytest.param(lambda: signed(at=NOW - timedelta(minutes=5)), id="exactly-at-the-5-minute-limit"),
    pytest.param(
        lambda: signed(method="GET", body=b"", path="/v2/", params={"n": "2", "last": "a/b=c"}),
        id="query-string",
    ),
    pytest.param(lambda: signed(key="test", secret="test"), id="second-identity"),
    pytest.param(lambda: signed(body=b""), id="empty-body"),
    pytest.param(
        lambda: with_headers(signed(), x_forwarded_for="10.0.0.1", user_agent="proxy"),
        id="unsigned-headers-added-on-the-way",
    ),
    pytest.param(
        lambda: signed(headers={**ECS_HEADERS, "X-Amz-Content-SHA256": sha256(BODY)}),
        id="content-sha256-matches-body",
    ),
]


@pytest.mark.parametrize("make_request", ACCEPTED)
def test_accepted(make_request: Callable[[], SignedRequest]) -> None:
    assert verify(make_request(), IDENTITIES, NOW).identity in IDENTITIES


def test_the_credential_scope_keeps_the_day_of_signing_across_midnight() -> None:
    """The scope's date is the signer's day (x-amz-date), not the server's."""
    request = signed(at=datetime(2024, 4, 30, 23, 58, tzinfo=UTC))

    assert "/20240430/" in authorization(request)
    assert verify(request, IDENTITIES, datetime(2024, 5, 1, 0, 2, tzinfo=UTC)).identity == CI


# Rejected


def _malformed(header: str) -> Callable[[], SignedRequest]:
    return lambda: with_headers(signed(), authorization=header)


def _tampered(**changes: Any) -> Callable[[], SignedRequest]:
    return lambda: replace(signed(), **changes)


SIGNATURE = "0" * 64
CREDENTIAL = f"Credential={CI.access_key_id}/20240501/{REGION}/ecs/aws4_request"

REJECTED = [
    pytest.param(
        lambda: signed(secret="not-the-secret"),
        InvalidSignatureException,
        "signature we calculated does not match",
        id="wrong-secret",
    ),
    pytest.param(
        lambda: signed(key="AKIDUNKNOWN"),
        UnrecognizedClientException,
        "security token included in the request is invalid",
        id="unknown-access-key",
    ),
    pytest.param(
        lambda: with_headers(signed(), authorization=None),
        MissingAuthenticationTokenException,
        "Missing Authentication Token",
        id="no-authorization-header",
    ),
    pytest.param(
        lambda: with_headers(signed(), authorization=""),
        MissingAuthenticationTokenException,
        "Missing Authentication Token",
        id="empty-authorization-header",
    ),
    pytest.param(
        _malformed(f"AWS4-HMAC-SHA256 {CREDENTIAL}"),
        IncompleteSignatureException,
        "requires 'Credential', 'SignedHeaders' and 'Signature'",
        id="no-signed-headers-or-signature",
    ),
    pytest.param(
        _malformed(f"AWS4-HMAC-SHA256 {CREDENTIAL}, SignedHeaders=host;x-amz-date"),
        IncompleteSignatureException,
        "requires 'Credential'",
        id="no-signature",
    ),
    pytest.param(
        _malformed(f"AWS4-HMAC-SHA256 {CREDENTIAL}, SignedHeaders=host, Signature=xyz"),
        IncompleteSignatureException,
        "requires 'Credential'",
        id="signature-not-hex",
    ),
    pytest.param(
        _malformed(f"AWS {CI.access_key_id}:c2lnbmF0dXJl"),
        IncompleteSignatureException,
        "requires 'Credential'",
        id="signature-version-2",
    ),
    pytest.param(
        _malformed("Bearer eyJhbGciOi"),
        IncompleteSignatureException,
        "requires 'Credential'",
        id="bearer-token",
    ),
    pytest.param(
        lambda: signed(at=NOW - timedelta(minutes=6)),
        InvalidSignatureException,
        "Signature expired: 20240501T115400Z is now earlier than 20240501T115500Z",
        id="signed-6-minutes-ago",
    ),
    pytest.param(
        lambda: signed(at=NOW + timedelta(minutes=6)),
        InvalidSignatureException,
        "Signature not yet current: 20240501T120600Z is still later than 20240501T120500Z",
        id="signed-6-minutes-in-the-future",
    ),
    pytest.param(
        lambda: with_headers(signed(), x_amz_date=None),
        IncompleteSignatureException,
        "'X-Amz-Date'",
        id="no-x-amz-date",
    ),
    pytest.param(
        lambda: with_headers(signed(), x_amz_date="20240501T120100Z"),
        InvalidSignatureException,
        "signature we calculated does not match",
        id="x-amz-date-changed-after-signing",
    ),
    pytest.param(
        lambda: with_headers(signed(), x_amz_date="20240430T120000Z"),
        InvalidSignatureException,
        "Date in Credential scope does not match",
        id="x-amz-date-outside-the-credential-day",
    ),
    pytest.param(
        _tampered(body=BODY.replace(b"default", b"prod")),
        InvalidSignatureException,
        "signature we calculated does not match",
        id="body-changed-after-signing",
    ),
    pytest.param(
        _tampered(url=ENDPOINT + "/other"),
        InvalidSignatureException,
        "signature we calculated does not match",
        id="path-changed-after-signing",
    ),
    pytest.param(
        _tampered(method="PUT"),
        InvalidSignatureException,
        "signature we calculated does not match",
        id="method-changed-after-signing",
    ),
    pytest.param(
        lambda: replace(signed(method="GET", body=b"", params={"n": "2"}), url=ENDPOINT + "/?n=3"),
        InvalidSignatureException,
        "signature we calculated does not match",
        id="query-changed-after-signing",
    ),
    pytest.param(
        lambda: with_headers(signed(), x_amz_target="AmazonEC2ContainerServiceV20141113.X"),
        InvalidSignatureException,
        "signature we calculated does not match",
        id="signed-header-changed",
    ),
    pytest.param(
        lambda: with_headers(signed(), x_amz_target=None),
        IncompleteSignatureException,
        "missing: x-amz-target",
        id="signed-header-removed",
    ),
    pytest.param(
        lambda: with_headers(
            signed(),
            authorization=authorization(signed()).replace(
                "SignedHeaders=content-type;host;", "SignedHeaders=content-type;"
            ),
        ),
        IncompleteSignatureException,
        "must cover the host header",
        id="host-not-signed",
    ),
    pytest.param(
        lambda: signed(headers={**ECS_HEADERS, "X-Amz-Content-SHA256": sha256(b"other")}),
        InvalidSignatureException,
        "'x-amz-content-sha256' header does not match",
        id="content-sha256-of-another-body",
    ),
    pytest.param(
        lambda: replace(
            signed(headers={**ECS_HEADERS, "X-Amz-Content-SHA256": sha256(BODY)}), body=b"{}"
        ),
        InvalidSignatureException,
        "'x-amz-content-sha256' header does not match",
        id="body-changed-under-content-sha256",
    ),
]


@pytest.mark.parametrize(("make_request", "error", "message"), REJECTED)
def test_rejected(
    make_request: Callable[[], SignedRequest], error: type[AwsError], message: str
) -> None:
    with pytest.raises(error) as raised:
        verify(make_request(), IDENTITIES, NOW)

    assert message in raised.value.message
