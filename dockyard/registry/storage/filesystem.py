"""Blobs on the local filesystem, content-addressed.

Layout under the root::

    blobs/sha256/ab/abcdef...    committed blobs, named by digest
    uploads/<id>                 in-progress uploads

A commit is an ``os.link`` of the finished upload to its digest path: atomic, and it
fails harmlessly when a concurrent push of the same content got there first.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 20

# The OCI digest grammar, ASCII only: nothing in a name can climb out of the root.
_DIGEST = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{1,255}")
_UPLOAD_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")


class FilesystemStorage:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._uploads = root / "uploads"
        self._blobs = root / "blobs"
        self._uploads.mkdir(parents=True, exist_ok=True)
        self._blobs.mkdir(parents=True, exist_ok=True)

    def _upload(self, upload_id: str) -> Path:
        if not _UPLOAD_ID.fullmatch(upload_id):
            raise ValueError(f"bad upload id {upload_id!r}")
        return self._uploads / upload_id

    def _blob(self, digest: str) -> Path:
        if not _DIGEST.fullmatch(digest):
            raise ValueError(f"bad digest {digest!r}")
        algorithm, _, encoded = digest.partition(":")
        return self._blobs / algorithm / encoded[:2] / encoded

    # Uploads

    def start_upload(self, upload_id: str) -> None:
        self._upload(upload_id).touch(exist_ok=False)

    @contextmanager
    def append(self, upload_id: str) -> Iterator[BinaryIO]:
        # No O_CREAT: an upload cancelled or committed meanwhile must not come back.
        fd = os.open(self._upload(upload_id), os.O_WRONLY | os.O_APPEND)
        with os.fdopen(fd, "ab", buffering=CHUNK) as file:
            yield file

    def upload_size(self, upload_id: str) -> int | None:
        try:
            return self._upload(upload_id).stat().st_size
        except FileNotFoundError:
            return None

    def read_upload(self, upload_id: str) -> Iterator[bytes]:
        return _chunks(self._upload(upload_id).open("rb"), 0, None)

    def commit(self, upload_id: str, digest: str) -> None:
        source, target = self._upload(upload_id), self._blob(digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        # The blob's time is its commit, not the upload's last write: GC's grace
        # period for blobs without a record counts from here.
        os.utime(source)
        _fsync(source)  # the bytes reach the disk before their name does
        while True:
            try:
                os.link(source, target)
                break
            except FileExistsError:
                pass
            try:
                os.utime(target)  # the same content is there: a re-push renews its time
                break
            except FileNotFoundError:
                continue  # deleted in between: link ours after all
        _fsync(target.parent)
        source.unlink()

    def cancel(self, upload_id: str) -> None:
        self._upload(upload_id).unlink(missing_ok=True)

    def uploads(self) -> Iterator[tuple[str, float]]:
        with os.scandir(self._uploads) as entries:
            for entry in entries:
                try:
                    yield entry.name, entry.stat().st_mtime
                except FileNotFoundError:
                    continue

    # Blobs

    def size(self, digest: str) -> int | None:
        try:
            return self._blob(digest).stat().st_size
        except FileNotFoundError:
            return None

    def read(self, digest: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        # Opened now, not on first iteration: once a read has begun, a concurrent
        # delete cannot cut it short.
        return _chunks(self._blob(digest).open("rb"), start, end)

    def local_path(self, digest: str) -> Path | None:
        path = self._blob(digest)
        return path if path.exists() else None

    def delete(self, digest: str) -> None:
        self._blob(digest).unlink(missing_ok=True)

    def digests(self) -> Iterator[tuple[str, float]]:
        with os.scandir(self._blobs) as algorithms:
            for algorithm in algorithms:
                with os.scandir(algorithm.path) as prefixes:
                    for prefix in prefixes:
                        with os.scandir(prefix.path) as entries:
                            for entry in entries:
                                try:
                                    yield f"{algorithm.name}:{entry.name}", entry.stat().st_mtime
                                except FileNotFoundError:
                                    continue


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _chunks(file: BinaryIO, start: int, end: int | None) -> Iterator[bytes]:
    with file:
        file.seek(start)
        remaining = None if end is None else end - start
        while remaining is None or remaining > 0:
            data = file.read(CHUNK if remaining is None else min(CHUNK, remaining))
            if not data:
                return
            if remaining is not None:
                remaining -= len(data)
            yield data
