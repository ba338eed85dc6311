"""ECR repositories through boto3 and the AWS CLI: settings, policies, tags, paging."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.live import REGION, LiveServer

ACCOUNT = "000000000000"
ARN = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/"
POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "pull",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            }
        ],
    }
)


@pytest.fixture
def ecr(server: LiveServer) -> Any:
    """A boto3 ECR client on a freshly reset server."""
    server.reset()
    return server.client("ecr")


def error_code(excinfo: pytest.ExceptionInfo[ClientError]) -> str:
    return str(excinfo.value.response["Error"]["Code"])


def names(ecr: Any) -> list[str]:
    return [r["repositoryName"] for r in ecr.describe_repositories()["repositories"]]


def test_create_describe_delete_story(ecr: Any, server: LiveServer) -> None:
    created = ecr.create_repository(repositoryName="team/web")["repository"]
    assert created["repositoryArn"] == ARN + "team/web"
    assert created["registryId"] == ACCOUNT
    assert created["repositoryUri"] == f"127.0.0.1:{server.port}/team/web"
    # ECR's defaults.
    assert created["imageTagMutability"] == "MUTABLE"
    assert created["imageScanningConfiguration"] == {"scanOnPush": False}
    assert created["encryptionConfiguration"] == {"encryptionType": "AES256"}
    assert "imageTagMutabilityExclusionFilters" not in created

    described = ecr.describe_repositories(repositoryNames=["team/web"])["repositories"]
    assert described == [created]

    deleted = ecr.delete_repository(repositoryName="team/web")["repository"]
    assert deleted["repositoryArn"] == created["repositoryArn"]
    assert names(ecr) == []
    with pytest.raises(ClientError) as excinfo:
        ecr.describe_repositories(repositoryNames=["team/web"])
    assert error_code(excinfo) == "RepositoryNotFoundException"
    assert excinfo.value.response["Error"]["Message"] == (
        f"The repository with name 'team/web' does not exist in the registry with id '{ACCOUNT}'"
    )


def test_settings_are_stored_and_returned(ecr: Any) -> None:
    created = ecr.create_repository(
        repositoryName="locked",
        imageTagMutability="IMMUTABLE_WITH_EXCLUSION",
        imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": "dev-*"}],
        imageScanningConfiguration={"scanOnPush": True},
        encryptionConfiguration={"encryptionType": "KMS"},
    )["repository"]
    assert created["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION"
    assert created["imageTagMutabilityExclusionFilters"] == [
        {"filterType": "WILDCARD", "filter": "dev-*"}
    ]
    assert created["imageScanningConfiguration"] == {"scanOnPush": True}
    assert created["encryptionConfiguration"] == {
        "encryptionType": "KMS",
        "kmsKey": f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/aws/ecr",
    }

    changed = ecr.put_image_tag_mutability(repositoryName="locked", imageTagMutability="MUTABLE")
    assert changed["imageTagMutability"] == "MUTABLE"
    assert "imageTagMutabilityExclusionFilters" not in changed
    scanning = ecr.put_image_scanning_configuration(
        repositoryName="locked", imageScanningConfiguration={"scanOnPush": False}
    )
    assert scanning["imageScanningConfiguration"] == {"scanOnPush": False}
    (described,) = ecr.describe_repositories(repositoryNames=["locked"])["repositories"]
    assert described["imageTagMutability"] == "MUTABLE"
    assert "imageTagMutabilityExclusionFilters" not in described
    assert described["imageScanningConfiguration"] == {"scanOnPush": False}
    assert described["encryptionConfiguration"]["encryptionType"] == "KMS"


BAD_CREATES: dict[str, tuple[dict[str, Any], str]] = {
    "upper case name": ({"repositoryName": "Web"}, "InvalidParameterException"),
    "name with ..": ({"repositoryName": "a..b"}, "InvalidParameterException"),
    "another registry": (
        {"repositoryName": "web", "registryId": "123456789012"},
        "InvalidParameterException",
    ),
    "exclusion setting without filters": (
        {"repositoryName": "web", "imageTagMutability": "MUTABLE_WITH_EXCLUSION"},
        "InvalidParameterException",
    ),
    "filters without an exclusion setting": (
        {
            "repositoryName": "web",
            "imageTagMutability": "IMMUTABLE",
            "imageTagMutabilityExclusionFilters": [{"filterType": "WILDCARD", "filter": "x*"}],
        },
        "InvalidParameterException",
    ),
    "filter outside its grammar": (
        {
            "repositoryName": "web",
            "imageTagMutability": "IMMUTABLE_WITH_EXCLUSION",
            "imageTagMutabilityExclusionFilters": [{"filterType": "WILDCARD", "filter": "a/b"}],
        },
        "InvalidParameterException",
    ),
    "kms key with AES256": (
        {
            "repositoryName": "web",
            "encryptionConfiguration": {"encryptionType": "AES256", "kmsKey": "k"},
        },
        "InvalidParameterException",
    ),
    "aws: tag": (
        {"repositoryName": "web", "tags": [{"Key": "aws:owner", "Value": "x"}]},
        "InvalidTagParameterException",
    ),
    "tag key too long": (
        {"repositoryName": "web", "tags": [{"Key": "k" * 129, "Value": "x"}]},
        "InvalidTagParameterException",
    ),
    "51 tags": (
        {"repositoryName": "web", "tags": [{"Key": f"k{i}", "Value": ""} for i in range(51)]},
        "TooManyTagsException",
    ),
}


@pytest.mark.parametrize("case", BAD_CREATES)
def test_create_rejects_with_ecr_error_and_stores_nothing(ecr: Any, case: str) -> None:
    params, code = BAD_CREATES[case]
    with pytest.raises(ClientError) as excinfo:
        ecr.create_repository(**params)
    assert error_code(excinfo) == code
    assert names(ecr) == []


def test_create_twice_is_refused_and_keeps_the_first(ecr: Any) -> None:
    ecr.create_repository(repositoryName="web", imageTagMutability="IMMUTABLE")
    with pytest.raises(ClientError) as excinfo:
        ecr.create_repository(repositoryName="web")
    assert error_code(excinfo) == "RepositoryAlreadyExistsException"
    (repository,) = ecr.describe_repositories()["repositories"]
    assert repository["imageTagMutability"] == "IMMUTABLE"


def test_describe_pages_through_every_repository(ecr: Any, server: LiveServer) -> None:
    for i in range(5):
        ecr.create_repository(repositoryName=f"repo-{i}")
    first = ecr.describe_repositories(maxResults=2)
    assert [r["repositoryName"] for r in first["repositories"]] == ["repo-0", "repo-1"]
    seen = [r["repositoryName"] for r in first["repositories"]]
    token = first["nextToken"]
    while token:
        page = ecr.describe_repositories(maxResults=2, nextToken=token)
        seen += [r["repositoryName"] for r in page["repositories"]]
        token = page.get("nextToken")
    assert seen == [f"repo-{i}" for i in range(5)]
    paginator = ecr.get_paginator("describe_repositories")
    pages = list(paginator.paginate(PaginationConfig={"PageSize": 3}))
    assert [len(p["repositories"]) for p in pages] == [3, 2]

    unchecked = server.client("ecr", parameter_validation=False)  # boto3 would refuse 0
    for params in ({"maxResults": 0}, {"maxResults": 1001}, {"nextToken": "garbage"}):
        with pytest.raises(ClientError) as excinfo:
            unchecked.describe_repositories(**params)
        assert error_code(excinfo) == "InvalidParameterException", params
    with pytest.raises(ClientError) as excinfo:
        ecr.describe_repositories(repositoryNames=["repo-0"], maxResults=1)
    assert error_code(excinfo) == "InvalidParameterException"
    with pytest.raises(ClientError) as excinfo:
        ecr.describe_repositories(repositoryNames=["repo-0", "ghost"])
    assert error_code(excinfo) == "RepositoryNotFoundException"
    assert "'ghost'" in excinfo.value.response["Error"]["Message"]
    # Another account's registry holds nothing this server knows of.
    assert ecr.describe_repositories(registryId="123456789012")["repositories"] == []


def test_missing_repository_is_reported_by_every_operation(ecr: Any) -> None:
    calls: list[Callable[[], Any]] = [
        lambda: ecr.delete_repository(repositoryName="ghost"),
        lambda: ecr.put_image_tag_mutability(repositoryName="ghost", imageTagMutability="MUTABLE"),
        lambda: ecr.put_image_scanning_configuration(
            repositoryName="ghost", imageScanningConfiguration={"scanOnPush": True}
        ),
        lambda: ecr.set_repository_policy(repositoryName="ghost", policyText=POLICY),
        lambda: ecr.get_repository_policy(repositoryName="ghost"),
        lambda: ecr.delete_repository_policy(repositoryName="ghost"),
        lambda: ecr.list_tags_for_resource(resourceArn=ARN + "ghost"),
    ]
    for call in calls:
        with pytest.raises(ClientError) as excinfo:
            call()
        assert error_code(excinfo) == "RepositoryNotFoundException"


def test_policy_story(ecr: Any) -> None:
    ecr.create_repository(repositoryName="web")
    with pytest.raises(ClientError) as excinfo:
        ecr.get_repository_policy(repositoryName="web")
    assert error_code(excinfo) == "RepositoryPolicyNotFoundException"

    set_result = ecr.set_repository_policy(repositoryName="web", policyText=POLICY)
    assert set_result == {
        "registryId": ACCOUNT,
        "repositoryName": "web",
        "policyText": POLICY,
        "ResponseMetadata": set_result["ResponseMetadata"],
    }
    assert ecr.get_repository_policy(repositoryName="web")["policyText"] == POLICY
    assert ecr.delete_repository_policy(repositoryName="web")["policyText"] == POLICY
    with pytest.raises(ClientError) as excinfo:
        ecr.delete_repository_policy(repositoryName="web")
    assert error_code(excinfo) == "RepositoryPolicyNotFoundException"


BAD_POLICIES = {
    "not JSON": "{nope",
    "a list": "[]",
    "no Version": json.dumps({"Statement": []}),
    "no Statement": json.dumps({"Version": "2012-10-17"}),
    "bad Effect": json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Maybe", "Principal": "*"}]}
    ),
    "no Action": json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*"}]}
    ),
}


@pytest.mark.parametrize("case", BAD_POLICIES)
def test_invalid_policy_is_refused_and_the_old_one_stays(ecr: Any, case: str) -> None:
    ecr.create_repository(repositoryName="web")
    ecr.set_repository_policy(repositoryName="web", policyText=POLICY)
    with pytest.raises(ClientError) as excinfo:
        ecr.set_repository_policy(repositoryName="web", policyText=BAD_POLICIES[case])
    assert error_code(excinfo) == "InvalidParameterException"
    assert "Invalid repository policy provided" in excinfo.value.response["Error"]["Message"]
    assert ecr.get_repository_policy(repositoryName="web")["policyText"] == POLICY


def test_tags_story(ecr: Any) -> None:
    arn = ecr.create_repository(repositoryName="web", tags=[{"Key": "team", "Value": "a"}])[
        "repository"
    ]["repositoryArn"]

    def tags() -> dict[str, str]:
        listed = ecr.list_tags_for_resource(resourceArn=arn)["tags"]
        return {t["Key"]: t["Value"] for t in listed}

    assert tags() == {"team": "a"}
    ecr.tag_resource(
        resourceArn=arn, tags=[{"Key": "team", "Value": "b"}, {"Key": "env", "Value": ""}]
    )
    assert tags() == {"team": "b", "env": ""}
    ecr.untag_resource(resourceArn=arn, tagKeys=["env", "never-there"])
    assert tags() == {"team": "b"}

    bad_calls: dict[str, Callable[[], Any]] = {
        "InvalidTagParameterException": lambda: ecr.tag_resource(
            resourceArn=arn, tags=[{"Key": "aws:x", "Value": "y"}]
        ),
        "TooManyTagsException": lambda: ecr.tag_resource(
            resourceArn=arn, tags=[{"Key": f"k{i}", "Value": ""} for i in range(50)]
        ),
        "InvalidParameterException": lambda: ecr.tag_resource(
            resourceArn="arn:aws:ecs:eu-west-1:000000000000:cluster/web",
            tags=[{"Key": "a", "Value": "b"}],
        ),
    }
    for code, call in bad_calls.items():
        with pytest.raises(ClientError) as excinfo:
            call()
        assert error_code(excinfo) == code
        assert tags() == {"team": "b"}
    with pytest.raises(ClientError) as excinfo:
        ecr.untag_resource(resourceArn=arn, tagKeys=["aws:x"])
    assert error_code(excinfo) == "InvalidTagParameterException"
    with pytest.raises(ClientError) as excinfo:
        ecr.tag_resource(resourceArn=ARN + "ghost", tags=[{"Key": "a", "Value": "b"}])
    assert error_code(excinfo) == "RepositoryNotFoundException"

    # A repository deleted and created again starts without the old tags.
    ecr.delete_repository(repositoryName="web")
    ecr.create_repository(repositoryName="web")
    assert tags() == {}


def test_describe_registry(ecr: Any) -> None:
    registry = ecr.describe_registry()
    assert registry["registryId"] == ACCOUNT
    assert registry["replicationConfiguration"] == {"rules": []}


def test_aws_cli_v1_creates_describes_and_deletes(server: LiveServer) -> None:
    server.reset()
    created = server.aws(
        "ecr", "create-repository", "--repository-name", "cli/app",
        "--image-tag-mutability", "IMMUTABLE",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    repository = json.loads(created.stdout)["repository"]
    assert repository["repositoryUri"] == f"127.0.0.1:{server.port}/cli/app"
    assert repository["imageTagMutability"] == "IMMUTABLE"

    described = server.aws("ecr", "describe-repositories")
    assert described.returncode == 0, described.stderr
    assert [r["repositoryName"] for r in json.loads(described.stdout)["repositories"]] == [
        "cli/app"
    ]
    missing = server.aws("ecr", "delete-repository", "--repository-name", "ghost")
    assert missing.returncode != 0
    assert "RepositoryNotFoundException" in missing.stderr
    deleted = server.aws("ecr", "delete-repository", "--repository-name", "cli/app")
    assert deleted.returncode == 0, deleted.stderr
