"""validate_input against the real ECS model: what passes, what AWS would reject, and how."""

from __future__ import annotations

from typing import Any

import botocore.session
import pytest

from dockyard.api.errors import AwsError, InvalidParameterException, SerializationException
from dockyard.api.validate import validate_input

ECS = botocore.session.get_session().get_service_model("ecs")


def task_definition(**container: Any) -> dict[str, Any]:
    """A minimal valid RegisterTaskDefinition body, with overrides for its one container."""
    return {
        "family": "web",
        "containerDefinitions": [{"name": "app", "image": "nginx", **container}],
    }


VALID = [
    pytest.param("CreateCluster", {}, id="empty-body-no-required-members"),
    pytest.param(
        "CreateCluster", {"clusterName": "c" * 1000}, id="clusterName-has-no-max-in-model"
    ),
    pytest.param("CreateCluster", {"colour": 7, "clusterName": "x"}, id="unknown-member-ignored"),
    pytest.param("CreateCluster", {"clusterName": None}, id="null-is-absent"),
    pytest.param(
        "CreateCluster",
        {"tags": [{"key": "team name:ü/1", "value": ""}]},
        id="tag-pattern-unicode-letters-and-spaces",
    ),
    pytest.param("CreateCluster", {"tags": [{"key": "k"}] * 50}, id="tags-at-max-50"),
    pytest.param("ListClusters", {"maxResults": 5000}, id="maxResults-has-no-range-in-model"),
    pytest.param("ListClusters", {"maxResults": -1}, id="maxResults-negative-also-unbounded"),
    pytest.param("DescribeClusters", {"clusters": ["a", "b"], "include": ["TAGS"]}, id="enum-list"),
    pytest.param("RegisterTaskDefinition", task_definition(), id="minimal-task-definition"),
    pytest.param("RegisterTaskDefinition", task_definition(memory=512.0), id="integral-float"),
    pytest.param(
        "RegisterTaskDefinition",
        task_definition(memory=2**31 - 1, dockerLabels={"a": "b"}, essential=False),
        id="int32-max-map-bool",
    ),
    pytest.param(
        "RegisterTaskDefinition",
        {**task_definition(), "networkMode": "awsvpc"},
        id="enum-member",
    ),
    pytest.param(
        "ListServiceDeployments",
        {"service": "s", "createdAt": {"before": "2024-05-01T12:00:00Z", "after": 1714564800.5}},
        id="timestamps-iso-and-epoch",
    ),
    pytest.param(
        "CreateService",
        {
            "serviceName": "s",
            "deploymentConfiguration": {"canaryConfiguration": {"canaryPercent": 5}},
        },
        id="double-accepts-int",
    ),
]


@pytest.mark.parametrize(("operation", "body"), VALID)
def test_valid_input_passes(operation: str, body: object) -> None:
    validate_input(ECS.operation_model(operation), body)


INVALID = [
    # Wrong JSON types: SerializationException at the first one, naming the path.
    pytest.param(
        "RegisterTaskDefinition",
        task_definition(memory="100"),
        SerializationException,
        'containerDefinitions[0].memory: expected an integer but got the string "100"',
        id="string-for-integer",
    ),
    pytest.param(
        "RegisterTaskDefinition",
        task_definition(memory=True),
        SerializationException,
        "containerDefinitions[0].memory: expected an integer but got the boolean true",
        id="bool-for-integer",
    ),
    pytest.param(
        "RegisterTaskDefinition",
        task_definition(memory=1.5),
        SerializationException,
        "containerDefinitions[0].memory: expected an integer but got the number 1.5",
        id="fraction-for-integer",
    ),
    pytest.param(
        "RegisterTaskDefinition",
        task_definition(memory=2**31),
        SerializationException,
        "containerDefinitions[0].memory: expected an integer but got the number 2147483648, "
        "which does not fit in 32 bits",
        id="integer-overflows-int32",
    ),
    pytest.param(
        "RegisterTaskDefinition",
        task_definition(essential=1),
        SerializationException,
        "containerDefinitions[0].essential: expected a boolean but got the number 1",
        id="int-for-boolean",
    ),
    pytest.param(
        "RegisterTaskDefinition",
        task_definition(image=5),
        SerializationException,
        "containerDefinitions[0].image: expected a string but got the number 5",
        id="number-for-string",
    ),
    pytest.param(
        "RegisterTaskDefinition",
        {"family": "web", "containerDefinitions": {"name": "app"}},
        SerializationException,
        "containerDefinitions: expected a list but got an object",
        id="object-for-list",
    ),
    pytest.param(
        "RegisterTaskDefinition",
        task_definition(portMappings=[["80"]]),
        SerializationException,
        "containerDefinitions[0].portMappings[0]: expected an object but got a list",
        id="list-for-structure",
    ),
    pytest.param(
        "RegisterTaskDefinition",
        task_definition(dockerLabels={"tier": 1}),
        SerializationException,
        "containerDefinitions[0].dockerLabels.tier: expected a string but got the number 1",
        id="map-value-path",
    ),
    pytest.param(
        "DescribeClusters",
        {"clusters": ["a", None]},
        SerializationException,
        "clusters[1]: expected a string but got null",
        id="null-list-element",
    ),
    pytest.param(
        "RegisterTaskDefinition",
        task_definition(repositoryCredentials="hunter2"),
        SerializationException,
        "containerDefinitions[0].repositoryCredentials: expected an object but got a string",
        id="sensitive-value-not-echoed",
    ),
    pytest.param(
        "ListServiceDeployments",
        {"service": "s", "createdAt": {"before": "yesterday"}},
        SerializationException,
        "createdAt.before: expected a timestamp (epoch seconds or an ISO 8601 string) "
        'but got the string "yesterday"',
        id="timestamp-not-iso",
    ),
    pytest.param(
        "ListClusters",
        ["not", "an", "object"],
        SerializationException,
        "request body: expected an object but got a list",
        id="body-not-object",
    ),
    # Constraints: collected into one InvalidParameterException.
    pytest.param(
        "DeleteCluster",
        {},
        InvalidParameterException,
        "1 validation error detected: Value null at 'cluster' failed to satisfy constraint: "
        "Member must not be null",
        id="required-missing",
    ),
    pytest.param(
        "DeleteCluster",
        {"cluster": None},
        InvalidParameterException,
        "1 validation error detected: Value null at 'cluster' failed to satisfy constraint: "
        "Member must not be null",
        id="required-null",
    ),
    pytest.param(
        "RegisterTaskDefinition",
        task_definition(secrets=[{"name": "DB_PASSWORD"}]),
        InvalidParameterException,
        "1 validation error detected: Value null at 'containerDefinitions[0].secrets[0].valueFrom' "
        "failed to satisfy constraint: Member must not be null",
        id="required-nested",
    ),
    pytest.param(
        "RegisterTaskDefinition",
        {**task_definition(), "networkMode": "XYZ"},
        InvalidParameterException,
        "1 validation error detected: Value 'XYZ' at 'networkMode' failed to satisfy constraint: "
        "Member must satisfy enum value set: [bridge, host, awsvpc, none]",
        id="enum-miss",
    ),
    pytest.param(
        "CreateCluster",
        {"tags": [{"key": "k" * 129}]},
        InvalidParameterException,
        f"1 validation error detected: Value '{'k' * 129}' at 'tags[0].key' failed to satisfy "
        "constraint: Member must have length less than or equal to 128",
        id="string-too-long",
    ),
    pytest.param(
        "CreateCluster",
        {"tags": [{"key": "a#b"}]},
        InvalidParameterException,
        "1 validation error detected: Value 'a#b' at 'tags[0].key' failed to satisfy constraint: "
        r"Member must satisfy regular expression pattern: ([\p{L}\p{Z}\p{N}_.:/=+\-@]*)",
        id="pattern-miss",
    ),
    pytest.param(
        "CreateCluster",
        {"tags": [{"key": "k"}] * 51},
        InvalidParameterException,
        "1 validation error detected: Value '[{key=k}, ",
        id="list-too-long",
    ),
    pytest.param(
        "CreateCapacityProvider",
        {
            "name": "cp",
            "autoScalingGroupProvider": {
                "autoScalingGroupArn": "arn",
                "managedScaling": {"targetCapacity": 0, "maximumScalingStepSize": 10001},
            },
        },
        InvalidParameterException,
        "2 validation errors detected: Value '0' at "
        "'autoScalingGroupProvider.managedScaling.targetCapacity' failed to satisfy constraint: "
        "Member must have value greater than or equal to 1; Value '10001' at "
        "'autoScalingGroupProvider.managedScaling.maximumScalingStepSize' failed to satisfy "
        "constraint: Member must have value less than or equal to 10000",
        id="integer-range-two-errors",
    ),
    pytest.param(
        "RegisterTaskDefinition",
        {"containerDefinitions": [], "networkMode": "XYZ", "tags": [{"key": ""}]},
        InvalidParameterException,
        "3 validation errors detected: Value null at 'family' failed to satisfy constraint: "
        "Member must not be null; Value 'XYZ' at 'networkMode' failed to satisfy constraint: "
        "Member must satisfy enum value set: [bridge, host, awsvpc, none]; Value '' at "
        "'tags[0].key' failed to satisfy constraint: "
        "Member must have length greater than or equal to 1",
        id="errors-collected-in-model-order",
    ),
]


@pytest.mark.parametrize(("operation", "body", "error", "message"), INVALID)
def test_invalid_input_is_rejected(
    operation: str, body: object, error: type[AwsError], message: str
) -> None:
    with pytest.raises(error) as caught:
        validate_input(ECS.operation_model(operation), body)
    assert caught.value.message.startswith(message)


def test_type_error_wins_over_collected_constraints() -> None:
    body = {"networkMode": "XYZ", "containerDefinitions": [{"memory": "100"}]}
    with pytest.raises(SerializationException):
        validate_input(ECS.operation_model("RegisterTaskDefinition"), body)


def test_sensitive_value_is_redacted_in_constraint_messages() -> None:
    # No sensitive ECS shape carries a constraint, so exercise the path through a
    # sensitive parent: a type error inside environment (sensitive list) echoes no value.
    body = task_definition(environment=[{"name": "PASSWORD", "value": 12345}])
    with pytest.raises(SerializationException) as caught:
        validate_input(ECS.operation_model("RegisterTaskDefinition"), body)
    assert "12345" not in caught.value.message
    assert caught.value.message.endswith("expected a string but got a number")
