"""Blobs on the local filesystem, content-addressed.

Layout under the root::

    blobs/sha256/ab/abcdef...    committed blobs, named by digest
    uploads/<id>                 in-progress uploads

A commit is an ``os.link`` of the finished upload to its digest path: atomic, and it
fails harmlessly when a concurrent push of the same content got there first.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 20


class FilesystemStorage:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._uploads = root / "uploads"
        self._blobs = root / "blobs"
        self._uploads.mkdir(parents=True, exist_ok=True)
        self._blobs.mkdir(parents=True, exist_ok=True)

    def _upload(self, upload_id: str) -> Path:
        if not upload_id or "/" in upload_id or upload_id.startswith("."):
            raise ValueError(f"bad upload id {upload_id!r}")
        return self._uploads / upload_id

    def _blob(self, digest: str) -> Path:
        algorithm, _, encoded = digest.partition(":")
        if not algorithm.isalnum() or not encoded.isalnum() or len(encoded) < 2:
            raise ValueError(f"bad digest {digest!r}")
        return self._blobs / algorithm / encoded[:2] / encoded

    # Uploads

    def start_upload(self, upload_id: str) -> None:
        self._upload(upload_id).touch(exist_ok=False)

    @contextmanager
    def append(self, upload_id: str) -> Iterator[BinaryIO]:
        path = self._upload(upload_id)
        if not path.exists():
            raise FileNotFoundError(upload_id)
        with path.open("ab", buffering=CHUNK) as file:
            yield file

    def upload_size(self, upload_id: str) -> int | None:
        try:
            return self._upload(upload_id).stat().st_size
        except FileNotFoundError:
            return None

    def read_upload(self, upload_id: str) -> Iterator[bytes]:
        return _chunks(self._upload(upload_id), 0, None)

    def commit(self, upload_id: str, digest: str) -> None:
        source, target = self._upload(upload_id), self._blob(digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # the same content is already there
            os.link(source, target)
        source.unlink()

    def cancel(self, upload_id: str) -> None:
        self._upload(upload_id).unlink(missing_ok=True)

    def uploads(self) -> Iterator[tuple[str, float]]:
        for entry in os.scandir(self._uploads):
            try:
                yield entry.name, entry.stat().st_mtime
            except FileNotFoundError:
                continue

    # Blobs

    def size(self, digest: str) -> int | None:
        try:
            return self._blob(digest).stat().st_size
        except (FileNotFoundError, ValueError):
            return None

    def read(self, digest: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        return _chunks(self._blob(digest), start, end)

    def local_path(self, digest: str) -> Path | None:
        path = self._blob(digest)
        return path if path.exists() else None

    def delete(self, digest: str) -> None:
        self._blob(digest).unlink(missing_ok=True)

    def digests(self) -> Iterator[tuple[str, float]]:
        for algorithm in os.scandir(self._blobs):
            for prefix in os.scandir(algorithm.path):
                for entry in os.scandir(prefix.path):
                    try:
                        yield f"{algorithm.name}:{entry.name}", entry.stat().st_mtime
                    except FileNotFoundError:
                        continue


def _chunks(path: Path, start: int, end: int | None) -> Iterator[bytes]:
    with path.open("rb") as file:
        file.seek(start)
        remaining = None if end is None else end - start
        while remaining is None or remaining > 0:
            data = file.read(CHUNK if remaining is None else min(CHUNK, remaining))
            if not data:
                return
            if remaining is not None:
                remaining -= len(data)
            yield data
