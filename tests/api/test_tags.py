"""Tags on clusters, task definitions and container instances, by ARN."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.live import REGION, LiveServer

ACCOUNT = "000000000000"
PREFIX = f"arn:aws:ecs:{REGION}:{ACCOUNT}:"


def error_code(excinfo: pytest.ExceptionInfo[ClientError]) -> str:
    return str(excinfo.value.response["Error"]["Code"])


def tags(ecs: Any, arn: str) -> dict[str, str]:
    return {t["key"]: t["value"] for t in ecs.list_tags_for_resource(resourceArn=arn)["tags"]}


def wire(**pairs: str) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in pairs.items()]


# Factories: each makes one taggable resource with the tag team=a and returns its ARN.


def a_cluster(ecs: Any) -> str:
    return str(
        ecs.create_cluster(clusterName="tagged", tags=wire(team="a"))["cluster"]["clusterArn"]
    )


def a_task_definition(ecs: Any) -> str:
    definition = ecs.register_task_definition(
        family="web",
        containerDefinitions=[{"name": "web", "image": "busybox", "memory": 64}],
        tags=wire(team="a"),
    )
    return str(definition["taskDefinition"]["taskDefinitionArn"])


def a_container_instance(ecs: Any) -> str:
    ecs.create_cluster(clusterName="hosts")
    registered = ecs.register_container_instance(cluster="hosts", tags=wire(team="a"))
    return str(registered["containerInstance"]["containerInstanceArn"])


FACTORIES: dict[str, Callable[[Any], str]] = {
    "cluster": a_cluster,
    "task-definition": a_task_definition,
    "container-instance": a_container_instance,
}


@pytest.mark.parametrize("kind", FACTORIES)
def test_tag_overwrite_untag_story(ecs: Any, kind: str) -> None:
    arn = FACTORIES[kind](ecs)
    assert tags(ecs, arn) == {"team": "a"}

    ecs.tag_resource(resourceArn=arn, tags=wire(team="b", env="prod", empty=""))
    assert tags(ecs, arn) == {"team": "b", "env": "prod", "empty": ""}

    ecs.untag_resource(resourceArn=arn, tagKeys=["env", "never-there"])
    assert tags(ecs, arn) == {"team": "b", "empty": ""}

    ecs.untag_resource(resourceArn=arn, tagKeys=["team", "empty"])
    assert tags(ecs, arn) == {}


def test_tags_show_where_each_resource_is_described(ecs: Any) -> None:
    cluster, definition, instance = (make(ecs) for make in FACTORIES.values())
    for arn in (cluster, definition, instance):
        ecs.tag_resource(resourceArn=arn, tags=wire(owner="ops"))
    expected = [{"key": "owner", "value": "ops"}, {"key": "team", "value": "a"}]

    described = ecs.describe_clusters(clusters=[cluster], include=["TAGS"])["clusters"][0]
    assert described["tags"] == expected
    assert ecs.describe_task_definition(taskDefinition=definition, include=["TAGS"])["tags"] == (
        expected
    )
    hosts = ecs.describe_container_instances(
        cluster="hosts", containerInstances=[instance], include=["TAGS"]
    )["containerInstances"]
    assert hosts[0]["tags"] == expected


def test_at_most_50_tags_after_merging(ecs: Any) -> None:
    arn = a_cluster(ecs)
    ecs.tag_resource(resourceArn=arn, tags=[{"key": f"k{i}", "value": "v"} for i in range(49)])
    assert len(tags(ecs, arn)) == 50
    # Overwriting existing keys keeps the count at 50: allowed.
    ecs.tag_resource(resourceArn=arn, tags=wire(k0="new", team="b"))
    before = tags(ecs, arn)
    with pytest.raises(ClientError) as excinfo:
        ecs.tag_resource(resourceArn=arn, tags=wire(one_too_many="x"))
    assert error_code(excinfo) == "LimitExceededException"
    assert tags(ecs, arn) == before


BAD_TAGS = [
    ("aws-prefix", wire(**{"aws:owner": "me"}), "InvalidParameterException"),
    ("aws-prefix-any-case", wire(**{"AWS:owner": "me"}), "InvalidParameterException"),
    ("empty-key", wire(**{"": "x"}), "InvalidParameterException"),
    ("key-too-long", wire(**{"k" * 129: "x"}), "InvalidParameterException"),
    ("value-too-long", wire(k="v" * 257), "InvalidParameterException"),
    (
        "over-50-in-one-call",
        [{"key": f"k{i}", "value": ""} for i in range(51)],
        "InvalidParameterException",
    ),
]


@pytest.mark.parametrize(("new", "code"), [c[1:] for c in BAD_TAGS], ids=[c[0] for c in BAD_TAGS])
def test_bad_tags_are_refused(
    server: LiveServer, ecs: Any, new: list[dict[str, str]], code: str
) -> None:
    arn = a_cluster(ecs)
    unchecked = server.client("ecs", parameter_validation=False)  # the server must refuse
    with pytest.raises(ClientError) as excinfo:
        unchecked.tag_resource(resourceArn=arn, tags=new)
    assert error_code(excinfo) == code
    assert tags(ecs, arn) == {"team": "a"}


def test_aws_prefixed_keys_cannot_be_untagged(ecs: Any) -> None:
    arn = a_cluster(ecs)
    with pytest.raises(ClientError) as excinfo:
        ecs.untag_resource(resourceArn=arn, tagKeys=["team", "aws:cloudformation:stack-name"])
    assert error_code(excinfo) == "InvalidParameterException"
    assert tags(ecs, arn) == {"team": "a"}


OTHER_ACCOUNT = f"arn:aws:ecs:{REGION}:111111111111:"
OTHER_REGION = f"arn:aws:ecs:us-east-1:{ACCOUNT}:"
INSTANCE_ID = "0123456789abcdef0123456789abcdef"

NOT_FOUND = "ResourceNotFoundException"
INVALID = "InvalidParameterException"
# (case, ARN, error from TagResource/UntagResource, error from ListTagsForResource when
# it differs: ListTagsForResource does not declare ResourceNotFoundException)
MISSING = [
    ("no-such-cluster", PREFIX + "cluster/ghost", "ClusterNotFoundException", None),
    ("cluster-other-account", OTHER_ACCOUNT + "cluster/tagged", "ClusterNotFoundException", None),
    ("cluster-other-region", OTHER_REGION + "cluster/tagged", "ClusterNotFoundException", None),
    ("no-such-revision", PREFIX + "task-definition/web:9", NOT_FOUND, INVALID),
    ("no-revision-given", PREFIX + "task-definition/web", NOT_FOUND, INVALID),
    ("taskdef-other-region", OTHER_REGION + "task-definition/web:1", NOT_FOUND, INVALID),
    ("no-such-instance", PREFIX + f"container-instance/hosts/{INSTANCE_ID}", NOT_FOUND, INVALID),
    ("not-an-arn", "tagged", INVALID, None),
    ("not-ecs", f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/x", INVALID, None),
    ("untaggable-kind", PREFIX + "task-set/a/b/c", INVALID, None),
]


@pytest.mark.parametrize(
    ("arn", "code", "list_code"), [c[1:] for c in MISSING], ids=[c[0] for c in MISSING]
)
def test_resources_that_cannot_be_found(
    ecs: Any, arn: str, code: str, list_code: str | None
) -> None:
    existing = [make(ecs) for make in FACTORIES.values()]
    calls: list[tuple[Callable[..., Any], dict[str, Any], str]] = [
        (ecs.tag_resource, {"tags": wire(x="y")}, code),
        (ecs.untag_resource, {"tagKeys": ["team"]}, code),
        (ecs.list_tags_for_resource, {}, list_code or code),
    ]
    for call, params, expected in calls:
        with pytest.raises(ClientError) as excinfo:
            call(resourceArn=arn, **params)
        assert error_code(excinfo) == expected, call
    for resource in existing:
        assert tags(ecs, resource) == {"team": "a"}


def test_deleted_cluster_and_deregistered_instance_are_not_found(ecs: Any) -> None:
    cluster = a_cluster(ecs)
    instance = a_container_instance(ecs)
    ecs.delete_cluster(cluster="tagged")
    ecs.deregister_container_instance(cluster="hosts", containerInstance=instance)
    with pytest.raises(ClientError) as excinfo:
        ecs.tag_resource(resourceArn=cluster, tags=wire(x="y"))
    assert error_code(excinfo) == "ClusterNotFoundException"
    with pytest.raises(ClientError) as excinfo:
        ecs.tag_resource(resourceArn=instance, tags=wire(x="y"))
    assert error_code(excinfo) == "ResourceNotFoundException"


def test_inactive_task_definition_can_still_be_tagged(ecs: Any) -> None:
    arn = a_task_definition(ecs)
    ecs.deregister_task_definition(taskDefinition=arn)
    ecs.tag_resource(resourceArn=arn, tags=wire(retired="yes"))
    assert tags(ecs, arn) == {"team": "a", "retired": "yes"}


def test_aws_cli_tag_list_untag(server: LiveServer, ecs: Any) -> None:
    arn = a_cluster(ecs)
    tagged = server.aws("ecs", "tag-resource", "--resource-arn", arn, "--tags", "key=env,value=dev")
    assert tagged.returncode == 0, tagged.stderr
    listed = server.aws("ecs", "list-tags-for-resource", "--resource-arn", arn)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["tags"] == wire(env="dev", team="a")
    untagged = server.aws("ecs", "untag-resource", "--resource-arn", arn, "--tag-keys", "env")
    assert untagged.returncode == 0, untagged.stderr
    assert tags(ecs, arn) == {"team": "a"}
    missing = server.aws("ecs", "list-tags-for-resource", "--resource-arn", PREFIX + "cluster/no")
    assert missing.returncode != 0
    assert "ClusterNotFoundException" in missing.stderr
