"""Garbage collection: unreferenced blobs, orphan blob files and stale uploads.

It runs while pushes go on, so nothing younger than the grace period is touched:
a push commits its layers, records them, and only then puts the manifest that
references them, and between those steps its blobs look unreferenced.

Three sweeps, each with its own reason to exist:

- blobs with a record that no manifest references (a deleted image's layers);
- blob files with no record (a push that crashed between commit and ``add_blob``,
  or bytes left by an earlier sweep, see below);
- uploads nobody finished, with or without a record (``delete_repository`` drops the
  records of its uploads but not their bytes).
"""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.registry.storage.driver import BlobStorage
from dockyard.store.registry import RegistryStore


@dataclass(frozen=True)
class GcReport:
    blobs_deleted: int = 0
    uploads_deleted: int = 0
    bytes_freed: int = 0


def collect(
    store: RegistryStore, storage: BlobStorage, now: float, grace: float = 3600.0
) -> GcReport:
    """Delete what nothing needs and nothing has touched for ``grace`` seconds."""
    cutoff = now - grace
    blobs, freed = _unreferenced_blobs(store, storage, cutoff)
    orphans, orphan_bytes = _orphan_blobs(store, storage, cutoff)
    uploads = _stale_uploads(store, storage, cutoff)
    return GcReport(blobs + orphans, uploads, freed + orphan_bytes)


def _unreferenced_blobs(
    store: RegistryStore, storage: BlobStorage, cutoff: float
) -> tuple[int, int]:
    # Records first, bytes second. ``forget_blob`` re-checks inside its write
    # transaction, so a manifest put before it wins and the blob stays. Once the
    # record is gone no push can reach the bytes through the store: HEAD says unknown,
    # a mount finds nothing, and a manifest naming the blob fails MANIFEST_BLOB_UNKNOWN,
    # so the client uploads again. The other order would leave a window where the
    # record promises bytes that are already gone.
    forgotten = [d for d in store.unreferenced_blobs(cutoff) if store.forget_blob(d, cutoff)]
    if not forgotten:
        return 0, 0
    # That re-upload may commit onto the very bytes we are about to delete (a commit
    # of existing content keeps them). The driver renews a blob's time on every
    # commit, so times read after forgetting show such a push, and its bytes stay;
    # they become an orphan for a later sweep if no record follows. A commit between
    # this listing and the delete is not seen: only a delete-if-older in the driver
    # could close that last window.
    committed = dict(storage.digests())
    deleted = freed = 0
    for digest in forgotten:
        if digest not in committed or committed[digest] >= cutoff:
            continue
        freed += storage.size(digest) or 0
        storage.delete(digest)
        deleted += 1
    return deleted, freed


def _orphan_blobs(store: RegistryStore, storage: BlobStorage, cutoff: float) -> tuple[int, int]:
    deleted = freed = 0
    for digest, committed in list(storage.digests()):
        # A push records its blob right after committing it, well inside the grace
        # period, so an old file with no record has no push coming for it.
        if committed >= cutoff or store.global_blob_size(digest) is not None:
            continue
        freed += storage.size(digest) or 0
        storage.delete(digest)
        deleted += 1
    return deleted, freed


def _stale_uploads(store: RegistryStore, storage: BlobStorage, cutoff: float) -> int:
    # Judged by the last write as well as the start: a slow client pushing a big
    # layer for longer than the grace period is still alive.
    written = dict(storage.uploads())
    deleted = 0
    for upload_id in store.stale_uploads(cutoff):
        if upload_id in written and written[upload_id] >= cutoff:
            continue
        store.delete_upload(upload_id)
        storage.cancel(upload_id)
        written.pop(upload_id, None)
        deleted += 1
    for upload_id, modified in written.items():
        if modified < cutoff and store.get_upload(upload_id) is None:
            storage.cancel(upload_id)
            deleted += 1
    return deleted
