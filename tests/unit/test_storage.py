"""The storage driver conformance suite: every test runs on every driver.

Drivers store opaque bytes; they do not hash, so a test may commit any bytes under any
well-formed digest. Where content matters, ``blob()`` makes a real sha256 digest.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dockyard.registry.storage.driver import BlobStorage
from dockyard.registry.storage.filesystem import FilesystemStorage
from dockyard.registry.storage.memory import MemoryStorage

MiB = 1 << 20


@pytest.fixture(params=["filesystem", "memory"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStorage:
    drivers: dict[str, Callable[[], BlobStorage]] = {
        "filesystem": lambda: FilesystemStorage(tmp_path / "registry"),
        "memory": MemoryStorage,
    }
    return drivers[request.param]()


# Factories


def blob(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def upload(storage: BlobStorage, upload_id: str, *parts: bytes) -> None:
    storage.start_upload(upload_id)
    for part in parts:
        with storage.append(upload_id) as writer:
            writer.write(part)


def put_blob(storage: BlobStorage, data: bytes, upload_id: str = "u1") -> str:
    digest = blob(data)
    upload(storage, upload_id, data)
    storage.commit(upload_id, digest)
    return digest


def pattern(index: int) -> bytes:
    """The index-th MiB of a large blob: varied, and cheap to make again."""
    return hashlib.sha256(index.to_bytes(8, "big")).digest() * (MiB // 32)


# Uploads


def test_an_upload_grows_across_append_blocks(storage: BlobStorage) -> None:
    storage.start_upload("u1")
    assert storage.upload_size("u1") == 0
    for part in (b"hello ", b"", b"wor", b"ld"):
        with storage.append("u1") as writer:
            writer.write(part)
    assert storage.upload_size("u1") == 11
    assert b"".join(storage.read_upload("u1")) == b"hello world"


def test_several_writes_in_one_block_land_in_order(storage: BlobStorage) -> None:
    storage.start_upload("u1")
    with storage.append("u1") as writer:
        for part in (b"a", b"bc", b"def"):
            writer.write(part)
    assert b"".join(storage.read_upload("u1")) == b"abcdef"


def test_uploads_are_listed_with_their_last_write(storage: BlobStorage) -> None:
    before = time.time()
    upload(storage, "u1", b"x")
    upload(storage, "u2")
    listed = dict(storage.uploads())
    assert sorted(listed) == ["u1", "u2"]
    assert all(before - 2 <= modified <= time.time() + 2 for modified in listed.values())


def test_a_cancelled_upload_is_gone(storage: BlobStorage) -> None:
    upload(storage, "u1", b"data")
    storage.cancel("u1")
    assert storage.upload_size("u1") is None
    assert list(storage.uploads()) == []
    storage.cancel("u1")  # idempotent


def test_an_upload_id_cannot_be_started_twice(storage: BlobStorage) -> None:
    storage.start_upload("u1")
    with pytest.raises(FileExistsError):
        storage.start_upload("u1")


@pytest.mark.parametrize(
    "operation",
    [
        pytest.param(lambda s: s.append("nope").__enter__(), id="append"),
        pytest.param(lambda s: list(s.read_upload("nope")), id="read_upload"),
        pytest.param(lambda s: s.commit("nope", blob(b"")), id="commit"),
    ],
)
def test_unknown_uploads_are_not_found(
    storage: BlobStorage, operation: Callable[[BlobStorage], object]
) -> None:
    assert storage.upload_size("nope") is None
    with pytest.raises(FileNotFoundError):
        operation(storage)
    assert storage.upload_size("nope") is None  # and nothing was created


def test_an_append_does_not_bring_back_a_cancelled_upload(storage: BlobStorage) -> None:
    upload(storage, "u1", b"data")
    storage.cancel("u1")
    with pytest.raises(FileNotFoundError), storage.append("u1") as writer:
        writer.write(b"more")
    assert storage.upload_size("u1") is None


# Commit


def test_a_commit_makes_the_blob_visible_under_its_digest(storage: BlobStorage) -> None:
    data = b"layer bytes"
    digest = blob(data)
    upload(storage, "u1", b"layer ", b"bytes")
    assert storage.size(digest) is None
    storage.commit("u1", digest)
    assert storage.size(digest) == len(data)
    assert b"".join(storage.read(digest)) == data
    assert storage.upload_size("u1") is None
    assert [d for d, _ in storage.digests()] == [digest]


def test_a_commit_is_all_or_nothing_to_a_reader(storage: BlobStorage) -> None:
    data = b"".join(pattern(i) for i in range(4))
    digest = blob(data)
    upload(storage, "u1", data)
    seen: list[int | None] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.append(storage.size(digest))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        storage.commit("u1", digest)
    finally:
        done.set()
        watcher.join()
    assert set(seen) <= {None, len(data)}
    assert storage.size(digest) == len(data)


def test_a_commit_of_existing_content_keeps_the_first_blob(storage: BlobStorage) -> None:
    digest = put_blob(storage, b"first", "u1")
    # Drivers do not hash: other bytes under the same digest show which copy stayed.
    upload(storage, "u2", b"second")
    storage.commit("u2", digest)
    assert b"".join(storage.read(digest)) == b"first"
    assert storage.upload_size("u2") is None
    assert [d for d, _ in storage.digests()] == [digest]


def test_a_re_commit_renews_the_blobs_time(storage: BlobStorage) -> None:
    digest = put_blob(storage, b"layer", "u1")
    [(listed, first)] = storage.digests()
    time.sleep(0.05)
    put_blob(storage, b"layer", "u2")
    [(relisted, second)] = storage.digests()
    assert listed == relisted == digest
    assert second > first


def test_concurrent_commits_of_the_same_content_all_succeed(storage: BlobStorage) -> None:
    data = pattern(0)
    digest = blob(data)
    threads = 8
    start = threading.Barrier(threads)
    failures: list[BaseException] = []

    def push(index: int) -> None:
        try:
            upload(storage, f"u{index}", data)
            start.wait()
            storage.commit(f"u{index}", digest)
        except BaseException as error:
            failures.append(error)

    workers = [threading.Thread(target=push, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert failures == []
    assert [d for d, _ in storage.digests()] == [digest]
    assert b"".join(storage.read(digest)) == data
    assert list(storage.uploads()) == []


# Reading and deleting blobs


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0, None, b"0123456789"),
        (3, None, b"3456789"),
        (3, 7, b"3456"),
        (0, 0, b""),
        (9, 10, b"9"),
        (8, 100, b"89"),
        (10, None, b""),
        (25, None, b""),
        (25, 30, b""),
        (7, 3, b""),
    ],
)
def test_reads_of_a_range(
    storage: BlobStorage, start: int, end: int | None, expected: bytes
) -> None:
    digest = put_blob(storage, b"0123456789")
    assert b"".join(storage.read(digest, start, end)) == expected


def test_a_read_comes_in_chunks_of_bounded_size(storage: BlobStorage) -> None:
    data = b"".join(pattern(i) for i in range(3)) + b"tail"
    digest = put_blob(storage, data)
    chunks = list(storage.read(digest, 5))
    assert b"".join(chunks) == data[5:]
    assert max(len(c) for c in chunks) <= MiB


def test_unknown_blobs(storage: BlobStorage) -> None:
    digest = blob(b"never stored")
    assert storage.size(digest) is None
    assert storage.local_path(digest) is None
    with pytest.raises(FileNotFoundError):
        list(storage.read(digest))


def test_blobs_are_listed_with_their_commit_time(storage: BlobStorage) -> None:
    before = time.time()
    digests = {put_blob(storage, data, f"u{i}") for i, data in enumerate([b"a", b"b", b"c"])}
    listed = dict(storage.digests())
    assert set(listed) == digests
    assert all(before - 2 <= committed <= time.time() + 2 for committed in listed.values())


def test_a_delete_is_idempotent(storage: BlobStorage) -> None:
    digest = put_blob(storage, b"bytes")
    kept = put_blob(storage, b"other", "u2")
    storage.delete(digest)
    storage.delete(digest)
    assert storage.size(digest) is None
    assert [d for d, _ in storage.digests()] == [kept]


def test_local_path_serves_the_blob_or_is_none(storage: BlobStorage) -> None:
    digest = put_blob(storage, b"bytes")
    path = storage.local_path(digest)
    if isinstance(storage, MemoryStorage):
        assert path is None
    else:
        assert path is not None and path.read_bytes() == b"bytes"


# Names


BAD_DIGESTS = [
    "",
    "sha256",
    "sha256:",
    ":abc",
    "../x",
    "sha256:../../etc",
    "sha256:..",
    "../../sha256:abcd",
    "sha256:ab/cd",
    "sha256/../..:abcd",
    "SHA256:abcd",
    "sha256:abc d",
    "sha256:abc\x00",
    "sha256:٣٣٣٣",  # digits to str.isalnum, but not a digest
]
BAD_UPLOAD_IDS = ["", ".", "..", "../x", "a/b", ".hidden", "a\x00", "é", "x" * 200]


@pytest.mark.parametrize("digest", BAD_DIGESTS)
@pytest.mark.parametrize(
    "operation",
    ["size", "read", "local_path", "delete", "commit"],
)
def test_bad_digests_are_refused(storage: BlobStorage, operation: str, digest: str) -> None:
    storage.start_upload("u1")
    calls: dict[str, Callable[[], object]] = {
        "size": lambda: storage.size(digest),
        "read": lambda: list(storage.read(digest)),
        "local_path": lambda: storage.local_path(digest),
        "delete": lambda: storage.delete(digest),
        "commit": lambda: storage.commit("u1", digest),
    }
    with pytest.raises(ValueError):
        calls[operation]()
    assert storage.upload_size("u1") == 0  # a refused commit keeps the upload


@pytest.mark.parametrize("upload_id", BAD_UPLOAD_IDS)
@pytest.mark.parametrize(
    "operation",
    ["start_upload", "append", "upload_size", "read_upload", "commit", "cancel"],
)
def test_bad_upload_ids_are_refused(storage: BlobStorage, operation: str, upload_id: str) -> None:
    calls: dict[str, Callable[[], object]] = {
        "start_upload": lambda: storage.start_upload(upload_id),
        "append": lambda: storage.append(upload_id).__enter__(),
        "upload_size": lambda: storage.upload_size(upload_id),
        "read_upload": lambda: list(storage.read_upload(upload_id)),
        "commit": lambda: storage.commit(upload_id, blob(b"")),
        "cancel": lambda: storage.cancel(upload_id),
    }
    with pytest.raises(ValueError):
        calls[operation]()


def test_nothing_is_written_outside_the_root(tmp_path: Path) -> None:
    storage = FilesystemStorage(tmp_path / "registry")
    for digest in BAD_DIGESTS:
        with pytest.raises(ValueError):
            storage.delete(digest)
    for upload_id in BAD_UPLOAD_IDS:
        with pytest.raises(ValueError):
            storage.start_upload(upload_id)
    assert [p.name for p in tmp_path.iterdir()] == ["registry"]


# A large blob, streamed both ways


def test_a_large_blob_streams_in_and_out(storage: BlobStorage) -> None:
    chunks = 64
    written = hashlib.sha256()
    storage.start_upload("big")
    for index in range(chunks):
        with storage.append("big") as writer:
            data = pattern(index)
            writer.write(data)
            written.update(data)
    digest = "sha256:" + written.hexdigest()
    assert storage.upload_size("big") == chunks * MiB
    storage.commit("big", digest)

    assert storage.size(digest) == chunks * MiB
    assert _sha256(storage.read(digest)) == digest
    tail = _sha256(storage.read(digest, (chunks - 1) * MiB))
    assert tail == blob(pattern(chunks - 1))


def _sha256(chunks: Iterator[bytes]) -> str:
    hasher = hashlib.sha256()
    for chunk in chunks:
        assert len(chunk) <= MiB  # streamed, never the whole blob at once
        hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()
