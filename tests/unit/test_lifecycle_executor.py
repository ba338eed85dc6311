"""The lifecycle executor (dockyard.ecr.lifecycle_api) on a real in-memory store.

What the periodic task relies on: it finds every repository with a policy in every
account and region, really deletes what the policy expires, is idempotent, records
when it ran, spares young untagged images, and skips a policy it cannot read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.api.identity import Identities
from dockyard.ecr.lifecycle import DAY
from dockyard.ecr.lifecycle_api import (
    EVALUATED_AT,
    POLICY,
    UNTAGGED_GRACE,
    apply_lifecycle_policies,
    apply_to_repository,
)
from dockyard.registry.auth import Tokens
from dockyard.registry.service import Registry
from dockyard.registry.storage.filesystem import FilesystemStorage
from dockyard.store import db
from dockyard.store.models import Image, Repository
from dockyard.store.store import Store

NOW = 1_750_000_000.0
ACCOUNT, OTHER_ACCOUNT = "000000000000", "111111111111"


def untagged_keep(count: int) -> str:
    selection = {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": count}
    rule = {"rulePriority": 1, "selection": selection, "action": {"type": "expire"}}
    return json.dumps({"rules": [rule]})


KEEP_ONE_V = json.dumps(
    {
        "rules": [
            {
                "rulePriority": 1,
                "selection": {
                    "tagStatus": "tagged",
                    "tagPrefixList": ["v"],
                    "countType": "imageCountMoreThan",
                    "countNumber": 1,
                },
                "action": {"type": "expire"},
            }
        ]
    }
)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    store = Store(db.open_engine("sqlite://"))
    db.migrate(store.engine)
    yield Registry(
        store=store.registry,
        storage=FilesystemStorage(tmp_path / "blobs"),
        tokens=Tokens(b"k" * 32, Identities([])),
        address="127.0.0.1:5000",
    )
    store.close()


def repository(
    registry: Registry,
    name: str,
    policy: str | None,
    account: str = ACCOUNT,
    region: str = "eu-west-1",
) -> Repository:
    arn = f"arn:aws:ecr:{region}:{account}:repository/{name}"
    document = {POLICY: policy} if policy else {}
    repo = Repository(arn, account, region, name, NOW - 100 * DAY, document)
    assert registry.store.create_repository(repo)
    return repo


def image(registry: Registry, repo: Repository, name: str, days_ago: float, tag: str | None) -> str:
    digest = "sha256:" + name.encode().hex().ljust(64, "0")
    media_type = "application/vnd.oci.image.manifest.v1+json"
    pushed = Image(repo.arn, digest, media_type, 10, NOW - days_ago * DAY, b"{}")
    registry.store.put_image(pushed, [], tag)
    return digest


def left(registry: Registry, repo: Repository) -> set[str]:
    return {i.digest for i in registry.store.list_images(repo.arn)}


def test_every_repository_with_a_policy_in_every_account_and_region(registry: Registry) -> None:
    here = repository(registry, "here", KEEP_ONE_V)
    there = repository(registry, "there", KEEP_ONE_V, OTHER_ACCOUNT, "us-east-2")
    bare = repository(registry, "bare", None)
    kept = {}
    for repo in (here, there, bare):
        image(registry, repo, f"{repo.name}1", 3, "v1")
        kept[repo.name] = image(registry, repo, f"{repo.name}2", 2, "v2")

    assert apply_lifecycle_policies(registry, NOW) == 2
    assert left(registry, here) == {kept["here"]}
    assert left(registry, there) == {kept["there"]}
    assert len(left(registry, bare)) == 2

    assert apply_lifecycle_policies(registry, NOW + 60) == 0  # idempotent
    stored = registry.store.get_repository(ACCOUNT, "eu-west-1", "here")
    assert stored is not None and stored.document[EVALUATED_AT] == NOW + 60
    unpoliced = registry.store.get_repository(ACCOUNT, "eu-west-1", "bare")
    assert unpoliced is not None and EVALUATED_AT not in unpoliced.document


def test_young_untagged_images_wait_for_a_later_run(registry: Registry) -> None:
    repo = repository(registry, "app", untagged_keep(1))
    old = image(registry, repo, "old", 10, None)
    young = image(registry, repo, "young", 0.01, None)
    newest = image(registry, repo, "newest", 0.001, None)

    assert apply_to_repository(registry, repo, NOW) == 1  # old goes, young must wait
    assert left(registry, repo) == {young, newest}
    assert apply_to_repository(registry, repo, NOW + UNTAGGED_GRACE) == 1
    assert left(registry, repo) == {newest}
    assert old not in left(registry, repo)


def test_no_grace_when_asked_for_none(registry: Registry) -> None:
    repo = repository(registry, "app", untagged_keep(1))
    image(registry, repo, "a", 0.002, None)
    newest = image(registry, repo, "b", 0.001, None)
    assert apply_to_repository(registry, repo, NOW, untagged_grace=0) == 1
    assert left(registry, repo) == {newest}


def test_a_policy_that_no_longer_parses_is_skipped(
    registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    broken = repository(registry, "broken", '{"rules": []}')
    good = repository(registry, "good", KEEP_ONE_V)
    for repo in (broken, good):
        image(registry, repo, f"{repo.name}1", 3, "v1")
        image(registry, repo, f"{repo.name}2", 2, "v2")
    assert apply_lifecycle_policies(registry, NOW) == 1
    assert len(left(registry, broken)) == 2
    assert "skipping the lifecycle policy" in caplog.text
