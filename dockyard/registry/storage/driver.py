"""The storage driver seam: where blob bytes live.

A driver stores opaque bytes under a digest and holds in-progress uploads; it does
not hash, verify or know about repositories (the upload layer in
``dockyard/registry/uploads.py`` hashes as it streams and verifies before ``commit``).
Every driver passes the one conformance suite in ``tests/unit/test_storage.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol


class UploadWriter(Protocol):
    def write(self, data: bytes, /) -> object: ...


class BlobStorage(Protocol):
    # In-progress uploads, named by an id the caller chooses.

    def start_upload(self, upload_id: str) -> None:
        """Create an empty upload."""

    def append(self, upload_id: str) -> AbstractContextManager[UploadWriter]:
        """A writer that appends to the upload; data is durable once the block exits."""

    def upload_size(self, upload_id: str) -> int | None:
        """Bytes received so far, or None if there is no such upload."""

    def read_upload(self, upload_id: str) -> Iterator[bytes]:
        """The upload's bytes so far (to re-hash an upload after a restart)."""

    def commit(self, upload_id: str, digest: str) -> None:
        """Make the upload's bytes the blob ``digest``, atomically; the upload is gone.

        If the blob already exists (a concurrent push of the same content), the upload
        is discarded and the existing blob stays: both callers succeed.
        """

    def cancel(self, upload_id: str) -> None:
        """Drop an upload (no error if absent)."""

    def uploads(self) -> Iterator[tuple[str, float]]:
        """(upload id, last modified epoch seconds) of every upload, for cleanup."""

    # Committed blobs, content-addressed.

    def size(self, digest: str) -> int | None:
        """The blob's size, or None if absent."""

    def read(self, digest: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes [start, end) of the blob in chunks (end None: to the end)."""

    def local_path(self, digest: str) -> Path | None:
        """A file the server may sendfile() from, or None when the driver has none."""

    def delete(self, digest: str) -> None:
        """Remove the blob (no error if absent)."""

    def digests(self) -> Iterator[tuple[str, float]]:
        """(digest, created epoch seconds) of every stored blob, for garbage collection."""
