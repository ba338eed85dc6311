"""Garbage collection stories, on a real SQLite store and on every storage driver.

Storage times are wall-clock times, so each story picks the collector's ``now``
against them: ``LATER`` makes everything stored so far older than the grace period,
``SOON`` keeps it fresh. Record times are chosen freely through ``created_at``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import count
from pathlib import Path

import pytest
from sqlalchemy import Engine

from dockyard.registry.storage.driver import BlobStorage
from dockyard.registry.storage.filesystem import FilesystemStorage
from dockyard.registry.storage.gc import GcReport, collect
from dockyard.registry.storage.memory import MemoryStorage
from dockyard.store.models import Image, Upload
from dockyard.store.registry import RegistryStore
from dockyard.store.store import Store

GRACE = 3600.0
REPO = "arn:aws:ecr:eu-west-1:123456789012:repository/demo"
START = time.time()
LATER = START + 2 * GRACE  # a collection long after everything was stored
SOON = START + 60  # a collection just after
OLD = START - 2 * GRACE  # a record time older than the grace period at any now

_names = count()


@dataclass
class Registry:
    """A store and a driver, with factories that push the way the registry does."""

    store: RegistryStore
    storage: BlobStorage

    def push_blob(self, data: bytes | None = None, created_at: float = OLD) -> str:
        """Commit, then record and link: the upload layer's order."""
        data = data if data is not None else f"layer {next(_names)}".encode()
        digest = self.commit(data)
        self.store.add_blob(digest, len(data), created_at)
        self.store.link_blob(REPO, digest, created_at)
        return digest

    def commit(self, data: bytes) -> str:
        """Bytes on storage with no record: a push that crashed after its commit."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        upload_id = self.start_upload(data)
        self.storage.commit(upload_id, digest)
        return digest

    def start_upload(self, data: bytes = b"partial") -> str:
        upload_id = f"upload-{next(_names)}"
        self.storage.start_upload(upload_id)
        with self.storage.append(upload_id) as writer:
            writer.write(data)
        return upload_id

    def push_image(self, *layers: str, tag: str | None = "latest", at: float = OLD) -> str:
        manifest = f"manifest {next(_names)} of {layers}".encode()
        digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        image = Image(REPO, digest, "application/vnd.oci.image.manifest.v1+json", 0, at, manifest)
        self.store.put_image(image, [(layer, "blob") for layer in layers], tag)
        return digest

    def has_blob(self, digest: str) -> bool:
        """Recorded and stored; a record whose bytes are gone fails the test."""
        recorded = self.store.global_blob_size(digest) is not None
        stored = self.storage.size(digest) is not None
        assert stored or not recorded, f"{digest} is recorded but its bytes are gone"
        return recorded and stored

    def collect(self, now: float) -> GcReport:
        return collect(self.store, self.storage, now, GRACE)


@pytest.fixture(params=["filesystem", "memory"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStorage:
    if request.param == "filesystem":
        return FilesystemStorage(tmp_path / "registry")
    return MemoryStorage()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store.open(None, tmp_path)
    yield store
    store.close()


@pytest.fixture
def registry(store: Store, storage: BlobStorage) -> Registry:
    return Registry(store.registry, storage)


# Blobs


def test_a_referenced_blob_survives(registry: Registry) -> None:
    layer = registry.push_blob()
    registry.push_image(layer)
    assert registry.collect(LATER) == GcReport()
    assert registry.has_blob(layer)


def test_an_untagged_image_still_keeps_its_layers(registry: Registry) -> None:
    layer = registry.push_blob()
    registry.push_image(layer, tag=None)
    assert registry.collect(LATER) == GcReport()
    assert registry.has_blob(layer)


def test_an_old_unreferenced_blob_is_deleted(registry: Registry) -> None:
    kept = registry.push_blob()
    registry.push_image(kept)
    dropped = registry.push_blob(b"twelve bytes")
    assert registry.collect(LATER) == GcReport(blobs_deleted=1, bytes_freed=12)
    assert registry.storage.size(dropped) is None
    assert registry.store.global_blob_size(dropped) is None
    assert registry.store.blob_size(REPO, dropped) is None  # the link went too
    assert registry.has_blob(kept)


def test_the_layers_of_a_deleted_image_are_deleted(registry: Registry) -> None:
    layers = [registry.push_blob(b"a" * 10), registry.push_blob(b"b" * 20)]
    image = registry.push_image(*layers)
    registry.store.delete_image(REPO, image)
    assert registry.collect(LATER) == GcReport(blobs_deleted=2, bytes_freed=30)
    assert not any(registry.has_blob(layer) for layer in layers)


def test_a_fresh_unreferenced_blob_survives_the_grace_period(registry: Registry) -> None:
    # Pushed a minute before the collection: its manifest may still be on its way.
    layer = registry.push_blob(created_at=LATER - 60)
    assert registry.collect(LATER) == GcReport()
    assert registry.has_blob(layer)


class PushDuringCollection(RegistryStore):
    """The store, with a manifest put landing between GC's listing and its forget."""

    def __init__(self, engine: Engine, push: Callable[[str], None]) -> None:
        super().__init__(engine)
        self._push: Callable[[str], None] | None = push

    def forget_blob(self, digest: str, created_before: float) -> bool:
        push, self._push = self._push, None
        if push is not None:
            push(digest)
        return super().forget_blob(digest, created_before)


def test_a_manifest_put_during_collection_keeps_its_blob(store: Store, registry: Registry) -> None:
    layer = registry.push_blob()
    listed: list[str] = []

    def push(digest: str) -> None:
        listed.append(digest)
        registry.push_image(digest, at=LATER)

    racing = Registry(PushDuringCollection(store.engine, push), registry.storage)
    assert racing.collect(LATER) == GcReport()
    assert listed == [layer]  # it was a candidate, and the manifest won
    assert registry.has_blob(layer)


def test_bytes_re_committed_during_collection_stay(registry: Registry) -> None:
    # The record is old (add_blob keeps the first created_at) but the bytes were
    # just committed again by a push: the record may go, the bytes must not.
    layer = registry.push_blob(b"re-pushed", created_at=OLD)
    report = registry.collect(SOON)
    assert report == GcReport()
    assert registry.storage.size(layer) == len(b"re-pushed")
    # With no record coming, the bytes are an orphan for a later collection.
    assert registry.collect(LATER) == GcReport(blobs_deleted=1, bytes_freed=9)
    assert registry.storage.size(layer) is None


# Orphan blob files


def test_an_old_orphan_file_is_deleted(registry: Registry) -> None:
    orphan = registry.commit(b"crashed push")
    assert registry.collect(LATER) == GcReport(blobs_deleted=1, bytes_freed=12)
    assert registry.storage.size(orphan) is None


def test_a_fresh_orphan_file_survives(registry: Registry) -> None:
    # Committed, and its add_blob is a moment away.
    orphan = registry.commit(b"pushing now")
    assert registry.collect(SOON) == GcReport()
    assert registry.storage.size(orphan) == len(b"pushing now")


# Uploads


def test_a_stale_upload_is_deleted_and_a_fresh_one_kept(registry: Registry) -> None:
    stale, fresh = registry.start_upload(), registry.start_upload()
    registry.store.create_upload(Upload(stale, REPO, START, 7))
    registry.store.create_upload(Upload(fresh, REPO, LATER - 60, 7))
    assert registry.collect(LATER) == GcReport(uploads_deleted=1)
    assert registry.store.get_upload(stale) is None
    assert registry.storage.upload_size(stale) is None
    assert registry.store.get_upload(fresh) is not None
    assert registry.storage.upload_size(fresh) == 7


def test_a_long_upload_still_being_written_is_kept(registry: Registry) -> None:
    # Started long ago, written to a moment ago: a slow client with a big layer.
    upload_id = registry.start_upload()
    registry.store.create_upload(Upload(upload_id, REPO, OLD, 7))
    assert registry.collect(SOON) == GcReport()
    assert registry.storage.upload_size(upload_id) == 7


def test_upload_bytes_without_a_record_are_deleted(registry: Registry) -> None:
    # delete_repository drops upload records; the bytes are left to the collector.
    upload_id = registry.start_upload()
    assert registry.collect(LATER) == GcReport(uploads_deleted=1)
    assert registry.storage.upload_size(upload_id) is None


def test_an_upload_record_without_bytes_is_deleted(registry: Registry) -> None:
    registry.store.create_upload(Upload("lost", REPO, START, 0))
    assert registry.collect(LATER) == GcReport(uploads_deleted=1)
    assert registry.store.get_upload("lost") is None


# Everything at once


def test_the_report_counts_each_kind(registry: Registry) -> None:
    referenced = registry.push_blob(b"in use")
    registry.push_image(referenced)
    fresh = registry.push_blob(b"fresh", created_at=LATER - 60)
    unreferenced = [registry.push_blob(b"x" * 100), registry.push_blob(b"y" * 200)]
    orphan = registry.commit(b"z" * 300)
    stale = registry.start_upload()
    registry.store.create_upload(Upload(stale, REPO, START, 7))

    assert registry.collect(LATER) == GcReport(blobs_deleted=3, uploads_deleted=1, bytes_freed=600)
    assert registry.has_blob(referenced) and registry.has_blob(fresh)
    assert not any(registry.storage.size(d) for d in [*unreferenced, orphan])
    assert registry.collect(LATER) == GcReport()  # nothing left to do
