"""Where ECR wire dicts become domain values and domain records become wire dicts.

Input here has already passed botocore-model validation (types, enums, lengths and
patterns are right); these functions add ECR's rules that the model cannot express.
A repository's settings live in ``Repository.document`` under ECR's own member names
(imageTagMutability, imageTagMutabilityExclusionFilters, imageScanningConfiguration,
encryptionConfiguration, policyText), so what is stored is what ECR echoes back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dockyard.api.errors import (
    AwsError,
    InvalidParameterException,
    InvalidTagParameterException,
    TooManyTagsException,
)
from dockyard.registry import names
from dockyard.registry.errors import RegistryError
from dockyard.store.models import Image, Repository

Wire = dict[str, Any]

MAX_TAGS = 50
_TAG_PUNCTUATION = set(" _.:/=+-@")
WITH_EXCLUSION = ("IMMUTABLE_WITH_EXCLUSION", "MUTABLE_WITH_EXCLUSION")

# Tags (ECR spells them Key/Value)


def tags_from_wire(items: Sequence[Mapping[str, str]]) -> dict[str, str]:
    """ECR's tag rules: key 1-128 and value 0-256 characters of letters, digits, spaces
    and ``_ . : / = + - @``; no ``aws:`` prefix; a key at most once."""
    tags: dict[str, str] = {}
    for i, item in enumerate(items):
        key, value = item["Key"], item["Value"]
        check_tag_key(key, f"tags[{i}].Key")
        if len(value) > 256 or not _tag_text(value):
            raise InvalidTagParameterException(
                f"tags[{i}].Value {value!r} is invalid: at most 256 letters, digits, spaces "
                "and _ . : / = + - @."
            )
        if key in tags:
            raise InvalidTagParameterException(f"tags[{i}].Key {key!r} is given twice.")
        tags[key] = value
    return tags


def check_tag_key(key: str, where: str) -> None:
    if not 1 <= len(key) <= 128 or not _tag_text(key):
        raise InvalidTagParameterException(
            f"{where} {key!r} is invalid: 1 to 128 letters, digits, spaces and _ . : / = + - @."
        )
    if key.lower().startswith("aws:"):
        raise InvalidTagParameterException(
            f"{where} {key!r}: the aws: prefix is reserved for AWS use."
        )


def check_tag_count(count: int) -> None:
    if count > MAX_TAGS:
        raise TooManyTagsException(
            f"A repository can have at most {MAX_TAGS} tags; this request would leave {count}."
        )


def _tag_text(text: str) -> bool:
    return all(c.isalnum() or c in _TAG_PUNCTUATION for c in text)


def tags_to_wire(tags: Mapping[str, str]) -> list[Wire]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


# Repository settings


def mutability_document(setting: str, filters: Sequence[Mapping[str, str]] | None) -> Wire:
    """imageTagMutability with its exclusion filters, checked as ECR checks them: the
    filters belong to the *_WITH_EXCLUSION settings, which need at least one."""
    if setting in WITH_EXCLUSION and not filters:
        raise InvalidParameterException(
            f"imageTagMutability {setting} needs imageTagMutabilityExclusionFilters: "
            "give 1 to 5 WILDCARD filters naming the tags that are excepted."
        )
    if setting not in WITH_EXCLUSION and filters:
        raise InvalidParameterException(
            f"imageTagMutabilityExclusionFilters can only be used with "
            f"IMMUTABLE_WITH_EXCLUSION or MUTABLE_WITH_EXCLUSION, not {setting}."
        )
    document: Wire = {"imageTagMutability": setting}
    if filters:
        patterns = [f["filter"] for f in filters]
        if len(set(patterns)) != len(patterns):
            raise InvalidParameterException("imageTagMutabilityExclusionFilters has duplicates.")
        document["imageTagMutabilityExclusionFilters"] = [
            {"filterType": f["filterType"], "filter": f["filter"]} for f in filters
        ]
    return document


def encryption_document(params: Mapping[str, Any] | None, region: str, account: str) -> Wire:
    """AES256 unless asked; KMS without a key uses the account's aws/ecr managed key."""
    if not params:
        return {"encryptionType": "AES256"}
    kind, key = params["encryptionType"], params.get("kmsKey")
    if kind == "AES256":
        if key:
            raise InvalidParameterException(
                "kmsKey can only be given with encryptionType KMS or KMS_DSSE."
            )
        return {"encryptionType": "AES256"}
    return {
        "encryptionType": kind,
        "kmsKey": key or f"arn:aws:kms:{region}:{account}:alias/aws/ecr",
    }


def repository_document(params: Mapping[str, Any], region: str, account: str) -> Wire:
    """The settings a CreateRepository request asks for, with ECR's defaults."""
    scanning = params.get("imageScanningConfiguration") or {}
    return {
        **mutability_document(
            params.get("imageTagMutability", "MUTABLE"),
            params.get("imageTagMutabilityExclusionFilters"),
        ),
        "imageScanningConfiguration": {"scanOnPush": bool(scanning.get("scanOnPush", False))},
        "encryptionConfiguration": encryption_document(
            params.get("encryptionConfiguration"), region, account
        ),
    }


def repository_to_wire(repository: Repository, uri: str) -> Wire:
    doc = repository.document
    wire: Wire = {
        "repositoryArn": repository.arn,
        "registryId": repository.account_id,
        "repositoryName": repository.name,
        "repositoryUri": uri,
        "createdAt": repository.created_at,
        "imageTagMutability": doc.get("imageTagMutability", "MUTABLE"),
        "imageScanningConfiguration": doc.get("imageScanningConfiguration", {"scanOnPush": False}),
        "encryptionConfiguration": doc.get("encryptionConfiguration", {"encryptionType": "AES256"}),
    }
    if doc.get("imageTagMutabilityExclusionFilters"):
        wire["imageTagMutabilityExclusionFilters"] = doc["imageTagMutabilityExclusionFilters"]
    return wire


def policy_from_wire(text: str) -> str:
    """The policy text as given, once it is an IAM policy document ECR would take."""

    def invalid(reason: str) -> AwsError:
        return InvalidParameterException(
            "Invalid parameter at 'PolicyText' failed to satisfy constraint: "
            f"'Invalid repository policy provided': {reason}"
        )

    try:
        policy = json.loads(text)
    except ValueError as exc:
        raise invalid(f"the text is not JSON ({exc}).") from None
    if not isinstance(policy, dict):
        raise invalid("the policy must be a JSON object.")
    if policy.get("Version") not in ("2012-10-17", "2008-10-17"):
        raise invalid('"Version" must be "2012-10-17" (or "2008-10-17").')
    statements = policy.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        raise invalid('"Statement" must be a statement object or a non-empty list of them.')
    for i, statement in enumerate(statements):
        if not isinstance(statement, dict):
            raise invalid(f"Statement[{i}] must be an object.")
        if statement.get("Effect") not in ("Allow", "Deny"):
            raise invalid(f'Statement[{i}].Effect must be "Allow" or "Deny".')
        if "Action" not in statement and "NotAction" not in statement:
            raise invalid(f"Statement[{i}] needs an Action (or NotAction).")
        if "Principal" not in statement and "NotPrincipal" not in statement:
            raise invalid(f"Statement[{i}] needs a Principal: a repository policy says who.")
    return text


# Images


@dataclass(frozen=True)
class ImageId:
    """An ImageIdentifier as the caller gave it: a digest, a tag, or both."""

    digest: str | None = None
    tag: str | None = None

    def to_wire(self) -> Wire:
        wire: Wire = {}
        if self.digest is not None:
            wire["imageDigest"] = self.digest
        if self.tag is not None:
            wire["imageTag"] = self.tag
        return wire


def image_ids_from_wire(items: Sequence[Mapping[str, str]]) -> list[ImageId]:
    return [ImageId(item.get("imageDigest"), item.get("imageTag")) for item in items]


def image_id_problem(image_id: ImageId) -> tuple[str, str] | None:
    """(failureCode, failureReason) when an identifier is malformed, else None."""
    if image_id.digest is None and image_id.tag is None:
        return (
            "MissingDigestAndTag",
            "Invalid request parameters: both tag and digest cannot be null",
        )
    try:
        if image_id.digest is not None:
            names.check_digest(image_id.digest)
    except RegistryError as error:
        return "InvalidImageDigest", f"Invalid request parameters: image digest: {error.message}"
    try:
        if image_id.tag is not None:
            names.check_tag(image_id.tag)
    except RegistryError as error:
        return "InvalidImageTag", f"Invalid request parameters: image tag: {error.message}"
    return None


def failure(image_id: ImageId, code: str, reason: str) -> Wire:
    return {"imageId": image_id.to_wire(), "failureCode": code, "failureReason": reason}


def image_detail_to_wire(image: Image, repository: Repository) -> Wire:
    wire: Wire = {
        "registryId": repository.account_id,
        "repositoryName": repository.name,
        "imageDigest": image.digest,
        "imageSizeInBytes": image.size,
        "imagePushedAt": image.pushed_at,
        "imageManifestMediaType": image.media_type,
        "imageStatus": "ACTIVE",
    }
    if image.tags:
        wire["imageTags"] = list(image.tags)
    if image.artifact_type:  # an image's config media type unless it declares one
        wire["artifactMediaType"] = image.artifact_type
    if image.last_pulled_at is not None:
        wire["lastRecordedPullTime"] = image.last_pulled_at
    if image.subject_digest:
        wire["subjectManifestDigest"] = image.subject_digest
    return wire


def image_to_wire(image: Image, repository: Repository, tag: str | None) -> Wire:
    """The Image shape of BatchGetImage and PutImage: the manifest's exact bytes."""
    return {
        "registryId": repository.account_id,
        "repositoryName": repository.name,
        "imageId": ImageId(image.digest, tag).to_wire(),
        "imageManifest": image.manifest.decode(),
        "imageManifestMediaType": image.media_type,
    }
