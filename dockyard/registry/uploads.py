"""Blob uploads: bytes stream to the storage driver in constant memory, hashed as they go.

Each upload's running sha256 lives in a process-local table next to the number of
bytes it has seen. When that number disagrees with the driver's (after a restart, or
when another replica served the previous chunk) the upload is re-hashed from storage,
so the table is only ever a cache. The digest is checked before ``commit``: a blob
with the wrong content never becomes visible.

One request at a time may write to an upload; a second one gets RANGE_INVALID, as an
out-of-order chunk would.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
import uuid
from collections.abc import AsyncIterable
from dataclasses import dataclass, replace
from typing import Any

from dockyard.registry.content import retry_on_conflict
from dockyard.registry.errors import RegistryError
from dockyard.registry.names import check_digest
from dockyard.registry.service import Registry
from dockyard.registry.storage.driver import UploadWriter
from dockyard.store.models import Repository, Upload

# Request bodies arrive in small pieces; writing and hashing them in 1 MiB batches,
# off the event loop, keeps the per-byte overhead low.
BATCH = 1 << 20
_UPLOAD_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass
class _Progress:
    hasher: Any  # hashlib's sha256 object (its type is private)
    size: int
    busy: bool = False


_progress: dict[str, _Progress] = {}
_lock = threading.Lock()


def start_upload(registry: Registry, repository: Repository, now: float) -> Upload:
    upload = Upload(str(uuid.uuid4()), repository.arn, now, 0)
    registry.storage.start_upload(upload.id)
    registry.store.create_upload(upload)
    with _lock:
        _progress[upload.id] = _Progress(hashlib.sha256(), 0)
    return upload


def get_upload(registry: Registry, repository: Repository, upload_id: str) -> Upload:
    """The upload, with the bytes received so far, if it belongs to ``repository``."""
    upload = registry.store.get_upload(upload_id) if _UPLOAD_ID.fullmatch(upload_id) else None
    size = registry.storage.upload_size(upload_id) if upload else None
    if upload is None or size is None or upload.repository_arn != repository.arn:
        raise RegistryError(
            "BLOB_UPLOAD_UNKNOWN",
            f"upload '{upload_id}' is not in progress in repository '{repository.name}'",
            {"uuid": upload_id},
        )
    return replace(upload, size=size)


def append(registry: Registry, upload_id: str, data: bytes, offset: int | None) -> int:
    """Add ``data`` at ``offset`` (None: at the end); returns the upload's new size."""
    if registry.store.get_upload(upload_id) is None:
        raise _unknown(upload_id)
    progress = _claim(registry, upload_id, offset)
    try:
        with registry.storage.append(upload_id) as writer:
            _write(writer, progress, data)
    except BaseException:
        _forget(upload_id)
        raise
    finally:
        _release(progress)
    registry.store.set_upload_size(upload_id, progress.size)
    return progress.size


async def append_stream(
    registry: Registry, upload_id: str, chunks: AsyncIterable[bytes], offset: int | None
) -> int:
    """``append`` for a request body: batches are written and hashed in a worker
    thread while the next one is received. Returns the upload's new size.
    """
    loop = asyncio.get_running_loop()
    progress = await loop.run_in_executor(None, _claim, registry, upload_id, offset)
    try:
        context = registry.storage.append(upload_id)
        writer = await loop.run_in_executor(None, context.__enter__)
        pending: asyncio.Future[None] | None = None
        try:
            batch: list[bytes] = []
            batched = 0
            async for chunk in chunks:
                batch.append(chunk)
                batched += len(chunk)
                if batched >= BATCH:
                    if pending is not None:
                        await pending
                    data = b"".join(batch)
                    batch, batched = [], 0
                    pending = loop.run_in_executor(None, _write, writer, progress, data)
            if pending is not None:
                await pending
                pending = None
            if batch:
                await loop.run_in_executor(None, _write, writer, progress, b"".join(batch))
        finally:
            if pending is not None:  # the body broke off: let the write in flight end
                await asyncio.wait([pending])
                if not pending.cancelled():
                    pending.exception()  # retrieved; the error that broke the body wins
            await loop.run_in_executor(None, context.__exit__, None, None, None)
    except BaseException:
        _forget(upload_id)
        raise
    finally:
        _release(progress)
    await loop.run_in_executor(None, registry.store.set_upload_size, upload_id, progress.size)
    return progress.size


def finish(
    registry: Registry, repository: Repository, upload_id: str, digest: str, now: float
) -> int:
    """Verify the upload is ``digest``, then make it a blob of ``repository``.

    A mismatch discards the upload (DIGEST_INVALID) and stores nothing. Returns the
    blob's size.
    """
    check_digest(digest)
    get_upload(registry, repository, upload_id)
    progress = _claim(registry, upload_id, None)
    try:
        algorithm = digest.partition(":")[0]
        if algorithm == "sha256":
            actual = "sha256:" + progress.hasher.copy().hexdigest()
        else:
            actual = f"{algorithm}:{_hash(registry, upload_id, algorithm)[0].hexdigest()}"
        if actual != digest:
            _discard(registry, upload_id)
            raise RegistryError(
                "DIGEST_INVALID",
                f"the uploaded content's digest is {actual}, not {digest}",
                {"expected": digest, "actual": actual},
            )
        registry.storage.commit(upload_id, digest)
        retry_on_conflict(lambda: registry.store.add_blob(digest, progress.size, now))
        retry_on_conflict(lambda: registry.store.link_blob(repository.arn, digest, now))
        registry.store.delete_upload(upload_id)
    finally:
        _release(progress)
        _forget(upload_id)
    return progress.size


def cancel(registry: Registry, repository: Repository, upload_id: str) -> None:
    get_upload(registry, repository, upload_id)
    _discard(registry, upload_id)


def discard(registry: Registry, upload_id: str) -> None:
    """Drop an upload and its hashing state (for cleanup of stale uploads)."""
    _discard(registry, upload_id)


def mount(
    registry: Registry,
    repository: Repository,
    digest: str,
    from_repository: Repository | None,
    now: float,
) -> bool:
    """Link a blob of ``from_repository`` into ``repository`` without copying it.

    False when there is nothing to mount (the client then uploads the blob). The
    caller checks that the client may pull from ``from_repository``.
    """
    check_digest(digest)
    if registry.store.blob_size(repository.arn, digest) is not None:
        return registry.storage.size(digest) is not None
    if from_repository is None or registry.store.blob_size(from_repository.arn, digest) is None:
        return False
    if registry.storage.size(digest) is None:
        return False
    retry_on_conflict(lambda: registry.store.link_blob(repository.arn, digest, now))
    return True


def _unknown(upload_id: str) -> RegistryError:
    return RegistryError(
        "BLOB_UPLOAD_UNKNOWN", f"upload '{upload_id}' is not in progress", {"uuid": upload_id}
    )


def _claim(registry: Registry, upload_id: str, offset: int | None) -> _Progress:
    """Take the upload for one request, with a hasher that has seen all its bytes."""
    size = registry.storage.upload_size(upload_id) if _UPLOAD_ID.fullmatch(upload_id) else None
    if size is None:
        _forget(upload_id)
        raise _unknown(upload_id)
    with _lock:
        progress = _progress.get(upload_id)
        if progress is not None and progress.busy:
            raise RegistryError(
                "RANGE_INVALID",
                "another request is writing to this upload",
                {"uuid": upload_id},
            )
        if offset is not None and offset != size:
            raise RegistryError(
                "RANGE_INVALID",
                f"the upload has {size} bytes, so the next chunk must start at {size}, "
                f"not {offset}",
                {"uuid": upload_id, "size": size, "offset": offset},
            )
        stale = progress is None or progress.size != size
        if progress is None or progress.size != size:
            progress = _Progress(None, size)
            _progress[upload_id] = progress
        progress.busy = True
    if stale:
        try:
            progress.hasher, progress.size = _hash(registry, upload_id, "sha256")
        except BaseException:
            _release(progress)
            _forget(upload_id)
            raise
    return progress


def _release(progress: _Progress) -> None:
    with _lock:
        progress.busy = False


def _forget(upload_id: str) -> None:
    with _lock:
        _progress.pop(upload_id, None)


def _write(writer: UploadWriter, progress: _Progress, data: bytes) -> None:
    writer.write(data)
    progress.hasher.update(data)
    progress.size += len(data)


def _hash(registry: Registry, upload_id: str, algorithm: str) -> tuple[Any, int]:
    hasher = hashlib.new(algorithm)
    size = 0
    for chunk in registry.storage.read_upload(upload_id):
        hasher.update(chunk)
        size += len(chunk)
    return hasher, size


def _discard(registry: Registry, upload_id: str) -> None:
    registry.storage.cancel(upload_id)
    registry.store.delete_upload(upload_id)
    _forget(upload_id)
