"""ECR lifecycle policies through boto3 and the AWS CLI: preview, put, expiry, errors.

Images are pushed the way the ECR API pushes them (the layer API, then PutImage), each
with its own layer so every image has its own digest.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.live import LiveServer

REPO = "lifecycle/app"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
KEEP_TWO_V = json.dumps(
    {
        "rules": [
            {
                "rulePriority": 1,
                "description": "keep only the 2 newest images tagged v*",
                "selection": {
                    "tagStatus": "tagged",
                    "tagPatternList": ["v*"],
                    "countType": "imageCountMoreThan",
                    "countNumber": 2,
                },
                "action": {"type": "expire"},
            }
        ]
    }
)


def policy_text(*rules: dict[str, Any]) -> str:
    return json.dumps({"rules": list(rules)})


def keep_newest(priority: int, count: int, status: str, **tags: Any) -> dict[str, Any]:
    selection = {"tagStatus": status, **tags, "countType": "imageCountMoreThan"}
    return {
        "rulePriority": priority,
        "selection": {**selection, "countNumber": count},
        "action": {"type": "expire"},
    }


@pytest.fixture
def ecr(server: LiveServer) -> Any:
    """A boto3 ECR client on a freshly reset server, with the repository REPO."""
    server.reset()
    client = server.client("ecr")
    client.create_repository(repositoryName=REPO)
    return client


def error_code(excinfo: pytest.ExceptionInfo[ClientError]) -> str:
    return str(excinfo.value.response["Error"]["Code"])


def upload_blob(ecr: Any, data: bytes) -> dict[str, Any]:
    """Push a blob through the layer API unless it is there already; its descriptor."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    known = ecr.batch_check_layer_availability(repositoryName=REPO, layerDigests=[digest])
    if known["layers"] and known["layers"][0].get("layerAvailability") == "AVAILABLE":
        return {"digest": digest, "size": len(data)}
    upload = ecr.initiate_layer_upload(repositoryName=REPO)["uploadId"]
    ecr.upload_layer_part(
        repositoryName=REPO,
        uploadId=upload,
        partFirstByte=0,
        partLastByte=len(data) - 1,
        layerPartBlob=data,
    )
    ecr.complete_layer_upload(repositoryName=REPO, uploadId=upload, layerDigests=[digest])
    return {"digest": digest, "size": len(data)}


def push(ecr: Any, name: str, tag: str | None = None, subject: str | None = None) -> str:
    """Push a one-layer image whose content is ``name``; its digest."""
    config = upload_blob(ecr, b"{}")
    layer = upload_blob(ecr, f"layer of {name}".encode())
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer}],
    }
    if subject is not None:
        manifest["artifactType"] = "application/vnd.example.signature"
        manifest["subject"] = {"mediaType": OCI_MANIFEST, "digest": subject, "size": 1}
    extra = {"imageTag": tag} if tag else {}
    image = ecr.put_image(repositoryName=REPO, imageManifest=json.dumps(manifest), **extra)
    return str(image["image"]["imageId"]["imageDigest"])


def push_index(ecr: Any, tag: str, *children: str) -> str:
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": d, "size": 1} for d in children],
    }
    image = ecr.put_image(repositoryName=REPO, imageManifest=json.dumps(manifest), imageTag=tag)
    return str(image["image"]["imageId"]["imageDigest"])


def digests(ecr: Any) -> set[str]:
    return {d["imageDigest"] for d in ecr.describe_images(repositoryName=REPO)["imageDetails"]}


def preview(ecr: Any, **params: Any) -> list[tuple[tuple[str, ...], int]]:
    results = ecr.get_lifecycle_policy_preview(repositoryName=REPO, **params)["previewResults"]
    return [(tuple(r.get("imageTags", ())), r["appliedRulePriority"]) for r in results]


def test_keep_the_two_newest_v_images_preview_then_policy(ecr: Any, server: LiveServer) -> None:
    pushed = {tag: push(ecr, tag, tag) for tag in ("v1", "v2", "v3", "v4")}
    loose = push(ecr, "untagged")

    started = ecr.start_lifecycle_policy_preview(
        repositoryName=REPO, lifecyclePolicyText=KEEP_TWO_V
    )
    assert started["status"] == "COMPLETE"
    answer = ecr.get_lifecycle_policy_preview(repositoryName=REPO)
    assert answer["status"] == "COMPLETE"
    assert [(r["imageDigest"], r["imageTags"]) for r in answer["previewResults"]] == [
        (pushed["v1"], ["v1"]),
        (pushed["v2"], ["v2"]),
    ]
    assert {r["action"]["type"] for r in answer["previewResults"]} == {"EXPIRE"}
    assert {r["appliedRulePriority"] for r in answer["previewResults"]} == {1}
    assert answer["summary"]["expiringImageTotalCount"] == 2
    assert digests(ecr) == {*pushed.values(), loose}  # a preview expires nothing

    # The AWS CLI v1, as a user runs it.
    result = server.aws(
        "ecr",
        "put-lifecycle-policy",
        "--repository-name",
        REPO,
        "--lifecycle-policy-text",
        KEEP_TWO_V,
    )
    assert result.returncode == 0, result.stderr
    echoed = json.loads(result.stdout)
    assert echoed["repositoryName"] == REPO
    assert json.loads(echoed["lifecyclePolicyText"]) == json.loads(KEEP_TWO_V)

    assert digests(ecr) == {pushed["v3"], pushed["v4"], loose}
    stored = ecr.get_lifecycle_policy(repositoryName=REPO)
    assert stored["lifecyclePolicyText"] == echoed["lifecyclePolicyText"]
    assert stored["lastEvaluatedAt"].year >= 2024

    # One more push: the two newest are kept again (run by the push or by the Put).
    pushed["v5"] = push(ecr, "v5", "v5")
    ecr.put_lifecycle_policy(repositoryName=REPO, lifecyclePolicyText=KEEP_TWO_V)
    assert digests(ecr) == {pushed["v4"], pushed["v5"], loose}

    deleted = ecr.delete_lifecycle_policy(repositoryName=REPO)
    assert deleted["lifecyclePolicyText"] == stored["lifecyclePolicyText"]
    with pytest.raises(ClientError) as raised:
        ecr.get_lifecycle_policy(repositoryName=REPO)
    assert error_code(raised) == "LifecyclePolicyNotFoundException"
    with pytest.raises(ClientError) as raised:
        ecr.delete_lifecycle_policy(repositoryName=REPO)
    assert error_code(raised) == "LifecyclePolicyNotFoundException"


def test_preview_filters_pages_and_picks_images(ecr: Any) -> None:
    with pytest.raises(ClientError) as raised:
        ecr.get_lifecycle_policy_preview(repositoryName=REPO)
    assert error_code(raised) == "LifecyclePolicyPreviewNotFoundException"
    with pytest.raises(ClientError) as raised:  # no text given and no policy stored
        ecr.start_lifecycle_policy_preview(repositoryName=REPO)
    assert error_code(raised) == "LifecyclePolicyNotFoundException"

    for tag in ("v1", "v2", "v3", "v4"):
        push(ecr, tag, tag)
    for n in range(3):
        push(ecr, f"loose-{n}")
    text = policy_text(
        keep_newest(2, 1, "untagged"), keep_newest(1, 1, "tagged", tagPrefixList=["v"])
    )
    ecr.start_lifecycle_policy_preview(repositoryName=REPO, lifecyclePolicyText=text)

    everything = [(("v1",), 1), (("v2",), 1), (("v3",), 1), ((), 2), ((), 2)]
    assert preview(ecr) == everything
    assert preview(ecr, filter={"tagStatus": "TAGGED"}) == everything[:3]
    assert preview(ecr, filter={"tagStatus": "UNTAGGED"}) == everything[3:]
    assert preview(ecr, imageIds=[{"imageTag": "v2"}]) == [(("v2",), 1)]

    pages, token = [], None
    while True:
        answer = ecr.get_lifecycle_policy_preview(
            repositoryName=REPO, maxResults=2, **({"nextToken": token} if token else {})
        )
        pages.append(len(answer["previewResults"]))
        assert answer["summary"]["expiringImageTotalCount"] == 5
        token = answer.get("nextToken")
        if token is None:
            break
    assert pages == [2, 2, 1]

    with pytest.raises(ClientError) as raised:
        ecr.get_lifecycle_policy_preview(
            repositoryName=REPO, imageIds=[{"imageTag": "v2"}], maxResults=5
        )
    assert error_code(raised) == "InvalidParameterException"


def test_parts_of_an_index_are_not_images_of_their_own(ecr: Any) -> None:
    amd64, arm64 = push(ecr, "amd64"), push(ecr, "arm64")
    index = push_index(ecr, "multi", amd64, arm64)
    old, new = push(ecr, "old-loose"), push(ecr, "new-loose")

    ecr.put_lifecycle_policy(
        repositoryName=REPO, lifecyclePolicyText=policy_text(keep_newest(1, 1, "untagged"))
    )
    # Only the two loose images compete; the platform images stay with their index.
    assert digests(ecr) == {amd64, arm64, index, new}
    assert old not in digests(ecr)


def test_a_referrer_goes_with_its_subject(ecr: Any) -> None:
    v1 = push(ecr, "v1", "v1")
    signature = push(ecr, "signature of v1", subject=v1)
    v2, v3 = push(ecr, "v2", "v2"), push(ecr, "v3", "v3")

    ecr.put_lifecycle_policy(repositoryName=REPO, lifecyclePolicyText=KEEP_TWO_V)
    assert digests(ecr) == {v2, v3}
    assert signature not in digests(ecr)


BAD_POLICIES = [
    pytest.param("{" + " " * 120, "not valid JSON", id="bad JSON"),
    pytest.param(
        policy_text(
            keep_newest(1, 1, "untagged"), keep_newest(1, 2, "tagged", tagPrefixList=["v"])
        ),
        "rulePriority 1 is used by more than one rule",
        id="duplicate priorities",
    ),
    pytest.param(
        policy_text(keep_newest(1, 9, "any"), keep_newest(2, 1, "untagged")),
        "Rule for tagStatus=ANY must have the lowest priority",
        id="any rule not last",
    ),
    pytest.param(
        policy_text(keep_newest(1, 1, "tagged", tagPatternList=["v*", "*a*b*c*d*e"])),
        "at most 4 '*'",
        id="five wildcards",
    ),
]


@pytest.mark.parametrize(("text", "reason"), BAD_POLICIES)
def test_invalid_policies_are_refused_with_the_reason(ecr: Any, text: str, reason: str) -> None:
    for call in (ecr.put_lifecycle_policy, ecr.start_lifecycle_policy_preview):
        with pytest.raises(ClientError) as raised:
            call(repositoryName=REPO, lifecyclePolicyText=text)
        assert error_code(raised) == "InvalidParameterException"
        message = raised.value.response["Error"]["Message"]
        assert "Lifecycle policy validation failure" in message
        assert reason in message
    with pytest.raises(ClientError) as raised:
        ecr.get_lifecycle_policy(repositoryName=REPO)
    assert error_code(raised) == "LifecyclePolicyNotFoundException"


def test_aws_cli_reports_an_invalid_policy(ecr: Any, server: LiveServer) -> None:
    text = policy_text(keep_newest(1, 1, "tagged"))
    result = server.aws(
        "ecr", "put-lifecycle-policy", "--repository-name", REPO, "--lifecycle-policy-text", text
    )
    assert result.returncode != 0
    assert "InvalidParameterException" in result.stderr
    assert "Must specify tagPrefixList or tagPatternList when tagStatus=TAGGED" in result.stderr


def test_unknown_repository(ecr: Any) -> None:
    with pytest.raises(ClientError) as raised:
        ecr.put_lifecycle_policy(repositoryName="nope", lifecyclePolicyText=KEEP_TWO_V)
    assert error_code(raised) == "RepositoryNotFoundException"
    with pytest.raises(ClientError) as raised:
        ecr.get_lifecycle_policy_preview(repositoryName="nope")
    assert error_code(raised) == "RepositoryNotFoundException"
