"""Blobs in memory: the driver for fast tests of the logic above storage.

It keeps the filesystem driver's contract, names included, so the conformance suite
in ``tests/unit/test_storage.py`` holds for both: bad names raise ValueError, unknown
uploads FileNotFoundError, and a commit of existing content keeps the first bytes and
renews their time, as a re-push renews a file's mtime.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1 << 20

# The same rules as FilesystemStorage, so a name one driver refuses the other does too.
_DIGEST = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{1,255}")
_UPLOAD_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")


@dataclass
class _Upload:
    data: bytearray
    modified: float


@dataclass(frozen=True)
class _Blob:
    data: bytes
    committed: float


class _Writer:
    """Appends straight into the upload, so its size is current after every write."""

    def __init__(self, upload: _Upload, lock: threading.Lock, clock: Callable[[], float]) -> None:
        self._upload = upload
        self._lock = lock
        self._clock = clock

    def write(self, data: bytes, /) -> int:
        with self._lock:
            # An upload cancelled meanwhile is out of the table: the bytes go nowhere,
            # as they would into an unlinked file.
            self._upload.data += data
            self._upload.modified = self._clock()
        return len(data)


class MemoryStorage:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._uploads: dict[str, _Upload] = {}
        self._blobs: dict[str, _Blob] = {}

    # Uploads

    def start_upload(self, upload_id: str) -> None:
        _check_upload_id(upload_id)
        with self._lock:
            if upload_id in self._uploads:
                raise FileExistsError(upload_id)
            self._uploads[upload_id] = _Upload(bytearray(), self._clock())

    @contextmanager
    def append(self, upload_id: str) -> Iterator[_Writer]:
        yield _Writer(self._upload(upload_id), self._lock, self._clock)

    def upload_size(self, upload_id: str) -> int | None:
        _check_upload_id(upload_id)
        with self._lock:
            upload = self._uploads.get(upload_id)
            return len(upload.data) if upload else None

    def read_upload(self, upload_id: str) -> Iterator[bytes]:
        upload = self._upload(upload_id)
        with self._lock:
            data = bytes(upload.data)
        return _chunks(data, 0, None)

    def commit(self, upload_id: str, digest: str) -> None:
        _check_upload_id(upload_id)
        _check_digest(digest)
        with self._lock:
            upload = self._uploads.pop(upload_id, None)
            if upload is None:
                raise FileNotFoundError(upload_id)
            existing = self._blobs.get(digest)
            data = existing.data if existing else bytes(upload.data)
            self._blobs[digest] = _Blob(data, self._clock())

    def cancel(self, upload_id: str) -> None:
        _check_upload_id(upload_id)
        with self._lock:
            self._uploads.pop(upload_id, None)

    def uploads(self) -> Iterator[tuple[str, float]]:
        with self._lock:
            listing = [(name, upload.modified) for name, upload in self._uploads.items()]
        return iter(listing)

    # Blobs

    def size(self, digest: str) -> int | None:
        _check_digest(digest)
        with self._lock:
            blob = self._blobs.get(digest)
        return len(blob.data) if blob else None

    def read(self, digest: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        _check_digest(digest)
        with self._lock:
            blob = self._blobs.get(digest)
        if blob is None:
            raise FileNotFoundError(digest)
        return _chunks(blob.data, start, end)

    def local_path(self, digest: str) -> Path | None:
        _check_digest(digest)
        return None

    def delete(self, digest: str) -> None:
        _check_digest(digest)
        with self._lock:
            self._blobs.pop(digest, None)

    def digests(self) -> Iterator[tuple[str, float]]:
        with self._lock:
            listing = [(digest, blob.committed) for digest, blob in self._blobs.items()]
        return iter(listing)

    def _upload(self, upload_id: str) -> _Upload:
        _check_upload_id(upload_id)
        with self._lock:
            upload = self._uploads.get(upload_id)
        if upload is None:
            raise FileNotFoundError(upload_id)
        return upload


def _check_upload_id(upload_id: str) -> None:
    if not _UPLOAD_ID.fullmatch(upload_id):
        raise ValueError(f"bad upload id {upload_id!r}")


def _check_digest(digest: str) -> None:
    if not _DIGEST.fullmatch(digest):
        raise ValueError(f"bad digest {digest!r}")


def _chunks(data: bytes, start: int, end: int | None) -> Iterator[bytes]:
    view = memoryview(data)[start:end]
    for offset in range(0, len(view), CHUNK):
        yield bytes(view[offset : offset + CHUNK])
