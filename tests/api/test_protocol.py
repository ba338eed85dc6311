"""The AWS JSON protocol edge: signatures, malformed input, unknown operations.

Every bad request gets the AWS error type a real endpoint answers with, and leaves
the stored state exactly as it was.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.live import REGION, LiveServer

ECS_PREFIX = "AmazonEC2ContainerServiceV20141113."
JSON = "application/x-amz-json-1.1"


def snapshot(ecs: Any) -> dict[str, Any]:
    """Everything a bad request might have touched."""
    clusters = ecs.describe_clusters(clusters=["keep"], include=["TAGS", "SETTINGS"])
    return {
        "clusters": ecs.list_clusters()["clusterArns"],
        "described": clusters["clusters"],
        "definitions": ecs.list_task_definitions(status="ACTIVE")["taskDefinitionArns"],
        "families": ecs.list_task_definition_families()["families"],
    }


@pytest.fixture
def seeded(ecs: Any) -> dict[str, Any]:
    ecs.create_cluster(clusterName="keep", tags=[{"key": "k", "value": "v"}])
    ecs.register_task_definition(
        family="keep", containerDefinitions=[{"name": "a", "image": "x", "memory": 64}]
    )
    return snapshot(ecs)


def signed_at(
    server: LiveServer, when: datetime, body: bytes, target: str, secret: str = "test"
) -> httpx.Response:
    request = AWSRequest(
        method="POST",
        url=server.endpoint + "/",
        data=body,
        headers={"X-Amz-Target": target, "Content-Type": JSON},
    )
    signer = SigV4Auth(Credentials("test", secret), "ecs", REGION)
    request.context["timestamp"] = when.strftime("%Y%m%dT%H%M%SZ")
    signer._modify_request_before_signing(request)
    canonical = signer.canonical_request(request)
    signature = signer.signature(signer.string_to_sign(request, canonical), request)
    signer._inject_signature_to_request(request, signature)
    return httpx.post(request.url, content=body, headers=dict(request.headers))


CREATE = ECS_PREFIX + "CreateCluster"
REGISTER = ECS_PREFIX + "RegisterTaskDefinition"

# (id, target, body, error type)
BAD_BODIES = [
    ("malformed-json", CREATE, b'{"clusterName": ', "SerializationException"),
    ("not-an-object", CREATE, b'["x"]', "SerializationException"),
    ("wrong-type", CREATE, b'{"clusterName": 5}', "SerializationException"),
    (
        "wrong-nested-type",
        REGISTER,
        json.dumps(
            {"family": "keep", "containerDefinitions": [{"name": "a", "image": "x", "cpu": "1"}]}
        ).encode(),
        "SerializationException",
    ),
    ("missing-member", REGISTER, b'{"family": "keep"}', "InvalidParameterException"),
    (
        "missing-nested-member",
        ECS_PREFIX + "TagResource",
        json.dumps({"resourceArn": "arn:aws:ecs:eu-west-1:000000000000:cluster/keep"}).encode(),
        "InvalidParameterException",
    ),
    (
        "unknown-enum",
        REGISTER,
        json.dumps(
            {
                "family": "keep",
                "networkMode": "overlay",
                "containerDefinitions": [{"name": "a", "image": "x", "memory": 64}],
            }
        ).encode(),
        "InvalidParameterException",
    ),
    (
        "oversized-tag-key",
        CREATE,
        json.dumps({"clusterName": "keep", "tags": [{"key": "k" * 129, "value": "v"}]}).encode(),
        "InvalidParameterException",
    ),
    (
        "too-many-tags",
        CREATE,
        json.dumps(
            {"clusterName": "new", "tags": [{"key": f"k{i}", "value": "v"} for i in range(51)]}
        ).encode(),
        "InvalidParameterException",
    ),
    (
        "oversized-name",
        CREATE,
        json.dumps({"clusterName": "n" * 300}).encode(),
        "InvalidParameterException",
    ),
    ("unknown-operation", ECS_PREFIX + "LaunchRockets", b"{}", "UnknownOperationException"),
    ("unknown-service", "SomethingElse.CreateCluster", b"{}", "UnknownOperationException"),
    ("no-operation", "", b"{}", "UnknownOperationException"),
]


@pytest.mark.parametrize(
    ("target", "body", "code"), [c[1:] for c in BAD_BODIES], ids=[c[0] for c in BAD_BODIES]
)
def test_bad_input_is_refused_and_changes_nothing(
    server: LiveServer, ecs: Any, seeded: dict[str, Any], target: str, body: bytes, code: str
) -> None:
    headers = {"Content-Type": JSON}
    if target:
        headers["X-Amz-Target"] = target
    response = server.signed_post("/", body, headers)
    assert response.status_code == 400, response.text
    answer = response.json()
    assert answer["__type"] == code
    assert answer["message"] or code == "UnknownOperationException"
    assert response.headers["content-type"] == JSON
    assert snapshot(ecs) == seeded


def test_wrong_secret_is_refused_and_creates_nothing(
    server: LiveServer, ecs: Any, seeded: dict[str, Any]
) -> None:
    intruder = server.client("ecs", secret="wrong")
    with pytest.raises(Exception) as excinfo:
        intruder.create_cluster(clusterName="intruder")
    assert excinfo.value.response["Error"]["Code"] == "InvalidSignatureException"  # type: ignore[attr-defined]
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403  # type: ignore[attr-defined]
    assert snapshot(ecs) == seeded


def test_unknown_access_key(server: LiveServer, ecs: Any, seeded: dict[str, Any]) -> None:
    stranger = server.client("ecs", key="AKIASTRANGER")
    with pytest.raises(Exception) as excinfo:
        stranger.create_cluster(clusterName="stranger")
    assert excinfo.value.response["Error"]["Code"] == "UnrecognizedClientException"  # type: ignore[attr-defined]
    assert snapshot(ecs) == seeded


@pytest.mark.parametrize(
    ("skew", "accepted"),
    [(timedelta(minutes=-6), False), (timedelta(minutes=6), False), (timedelta(minutes=-4), True)],
    ids=["stale", "future", "within-window"],
)
def test_clock_skew_window(
    server: LiveServer, ecs: Any, seeded: dict[str, Any], skew: timedelta, accepted: bool
) -> None:
    body = json.dumps({"clusterName": "skewed"}).encode()
    response = signed_at(server, datetime.now(UTC) + skew, body, CREATE)
    if accepted:
        assert response.status_code == 200, response.text
        assert "skewed" in str(ecs.list_clusters()["clusterArns"])
    else:
        assert response.status_code == 403
        assert response.json()["__type"] == "InvalidSignatureException"
        assert "Signature" in response.json()["message"]
        assert snapshot(ecs) == seeded


def test_missing_signature(server: LiveServer, ecs: Any, seeded: dict[str, Any]) -> None:
    response = httpx.post(
        server.endpoint + "/",
        content=b'{"clusterName": "anon"}',
        headers={"X-Amz-Target": CREATE, "Content-Type": JSON},
    )
    assert response.status_code == 403
    assert response.json()["__type"] == "MissingAuthenticationTokenException"
    assert snapshot(ecs) == seeded


def test_body_changed_after_signing(server: LiveServer, ecs: Any, seeded: dict[str, Any]) -> None:
    request = AWSRequest(
        method="POST",
        url=server.endpoint + "/",
        data=b'{"clusterName": "a"}',
        headers={"X-Amz-Target": CREATE, "Content-Type": JSON},
    )
    SigV4Auth(Credentials("test", "test"), "ecs", REGION).add_auth(request)
    headers = dict(request.headers)
    headers.pop("Content-Length", None)
    response = httpx.post(request.url, content=b'{"clusterName": "b"}', headers=headers)
    assert response.status_code == 403
    assert response.json()["__type"] == "InvalidSignatureException"
    assert snapshot(ecs) == seeded


def test_health_needs_no_signature(server: LiveServer) -> None:
    assert httpx.get(server.endpoint + "/health").json() == {"status": "ok"}


def test_region_comes_from_the_signature(server: LiveServer, ecs: Any) -> None:
    tokyo = server.client("ecs", region="ap-northeast-1")
    arn = tokyo.create_cluster(clusterName="t")["cluster"]["clusterArn"]
    assert arn == "arn:aws:ecs:ap-northeast-1:000000000000:cluster/t"
