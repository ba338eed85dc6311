"""The stored resources, as frozen dataclasses.

Documents that ECS only echoes back (a task definition's container definitions, a
cluster's configuration) stay JSON objects inside these records: the rules that
read them live in ``dockyard/ecs`` and run before anything is stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

Document = Mapping[str, Any]
T = TypeVar("T")


@dataclass(frozen=True)
class Cluster:
    arn: str
    account_id: str
    region: str
    name: str
    status: str  # ACTIVE | PROVISIONING | DEPROVISIONING | FAILED | INACTIVE
    created_at: float
    settings: tuple[tuple[str, str], ...] = (("containerInsights", "disabled"),)
    configuration: Document | None = None
    capacity_providers: tuple[str, ...] = ()
    default_strategy: tuple[Document, ...] = ()
    service_connect_namespace: str | None = None


@dataclass(frozen=True)
class ClusterCounts:
    """What DescribeClusters reports about a cluster's contents."""

    registered_instances: int = 0
    running_tasks: int = 0
    pending_tasks: int = 0
    active_services: int = 0
    draining_services: int = 0  # deleted, still stopping their tasks


@dataclass(frozen=True)
class TaskDefinition:
    arn: str
    account_id: str
    region: str
    family: str
    revision: int
    status: str  # ACTIVE | INACTIVE | DELETE_IN_PROGRESS
    document: Document  # the normalised RegisterTaskDefinition request, tags removed
    registered_at: float
    registered_by: str
    deregistered_at: float | None = None


@dataclass(frozen=True)
class ContainerInstance:
    arn: str
    account_id: str
    region: str
    cluster_arn: str
    ec2_instance_id: str
    status: str  # ACTIVE | DRAINING | REGISTERING | DEREGISTERING | INACTIVE ...
    registered_at: float
    document: Document = field(default_factory=dict)  # resources, versionInfo, ...
    agent_seen_at: float | None = None  # the agent's last poll or registration
    assignments_version: int = 0  # rises whenever the tasks it should hold change


@dataclass(frozen=True)
class Resources:
    """CPU units, MiB of memory, host ports and GPUs: what a task holds on its instance,
    or what an instance has left (its ``ports`` then being the ports already taken,
    its ``gpus`` the IDs of the GPUs still free). A task asks for ``gpu_count`` GPUs
    and, once placed, holds the ``gpus`` the store gave it."""

    cpu: int = 0
    memory: int = 0
    ports: frozenset[int] = frozenset()  # tcp
    ports_udp: frozenset[int] = frozenset()
    gpus: frozenset[str] = frozenset()
    gpu_count: int = 0


@dataclass(frozen=True)
class Task:
    arn: str
    cluster_arn: str
    task_definition_arn: str
    container_instance_arn: str | None
    family: str
    group: str
    started_by: str | None
    launch_type: str  # EC2 | EXTERNAL
    last_status: str  # PROVISIONING ... STOPPED, only ever forward
    desired_status: str  # RUNNING | STOPPED
    created_at: float
    resources: Resources = Resources()  # held on the instance until the task is STOPPED
    picked_up_at: float | None = None  # when an agent first received or reported it
    # containers, overrides, cpu, memory, version, availabilityZone, stopCode,
    # stoppedReason and the lifecycle timestamps, in their wire names.
    document: Document = field(default_factory=dict)


@dataclass(frozen=True)
class Service:
    """An ECS service. ``document`` is its configuration in wire names (taskDefinition,
    desiredCount, launchType, schedulingStrategy, deploymentConfiguration,
    placementConstraints, placementStrategy, ...); ``state`` is what its reconciler
    keeps between runs; ``version`` rises with every write."""

    arn: str
    account_id: str
    region: str
    cluster_arn: str
    name: str
    status: str  # ACTIVE | DRAINING | INACTIVE
    created_at: float
    updated_at: float
    document: Document = field(default_factory=dict)
    state: Document = field(default_factory=dict)
    version: int = 0


@dataclass(frozen=True)
class ServiceDeployment:
    """One deployment of a service (ECS's ``Deployment``); ``document`` holds the
    service revision it deploys and the wire fields the columns do not."""

    service_arn: str
    id: str  # ecs-svc/NNNNNNNNNNNNNNNNNNN
    status: str  # PRIMARY | ACTIVE | INACTIVE
    task_definition_arn: str
    desired_count: int
    rollout_state: str  # IN_PROGRESS | COMPLETED | FAILED
    rollout_reason: str
    failed_tasks: int
    created_at: float
    updated_at: float
    document: Document = field(default_factory=dict)


@dataclass(frozen=True)
class ServiceEvent:
    id: str
    service_arn: str
    created_at: float
    message: str


@dataclass(frozen=True)
class Attribute:
    """An ECS attribute on a target (today: container instances)."""

    cluster_arn: str
    target_type: str
    target_id: str  # the target's ARN
    name: str
    value: str | None = None


@dataclass(frozen=True)
class AccountSetting:
    name: str
    value: str
    principal_arn: str
    type: str = "user"  # user | aws_managed


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing; ``next_key`` is the sort key to continue after, if any."""

    items: tuple[T, ...]
    next_key: str | None


@dataclass(frozen=True)
class Repository:
    arn: str
    account_id: str
    region: str
    name: str
    created_at: float
    # imageTagMutability, imageTagMutabilityExclusionFilters, imageScanningConfiguration,
    # encryptionConfiguration, policyText, lifecyclePolicyText: as ECR echoes them.
    document: Document = field(default_factory=dict)


@dataclass(frozen=True)
class Image:
    """One manifest in one repository (an image, an index or an artifact)."""

    repository_arn: str
    digest: str
    media_type: str
    size: int
    pushed_at: float
    manifest: bytes
    artifact_type: str | None = None
    subject_digest: str | None = None
    last_pulled_at: float | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Upload:
    id: str
    repository_arn: str
    started_at: float
    size: int
