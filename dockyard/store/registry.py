"""The registry's records: repositories, images (manifests), tags, blob links, uploads.

Blob bytes live in the storage driver (``dockyard/registry/storage``); this store says
which repository may serve which blob, which manifests exist and what they refer to.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from sqlalchemy import Engine, Row, delete, exists, func, insert, select, update

from dockyard.store import db
from dockyard.store.models import Image, Page, Repository, Upload
from dockyard.store.schema import (
    blobs,
    image_references,
    image_tags,
    images,
    repositories,
    repository_blobs,
    uploads,
)


class TagConflict(Exception):
    """The tag points at another image and the repository's tags are immutable."""

    def __init__(self, tag: str, digest: str) -> None:
        super().__init__(tag)
        self.tag = tag
        self.digest = digest


class MissingBlobs(Exception):
    """Blobs a manifest needs have no record (any more)."""

    def __init__(self, digests: list[str]) -> None:
        super().__init__(", ".join(digests))
        self.digests = digests


class RegistryStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # Repositories

    def create_repository(self, repository: Repository) -> bool:
        """Insert; False when the name is taken in that account and region."""
        r = repositories.c
        with db.transaction(self.engine, write=True) as conn:
            taken = conn.scalar(
                select(func.count()).where(
                    r.account_id == repository.account_id,
                    r.region == repository.region,
                    r.name == repository.name,
                )
            )
            if taken:
                return False
            conn.execute(insert(repositories).values(_repository_row(repository)))
        return True

    def get_repository(self, account_id: str, region: str, name: str) -> Repository | None:
        r = repositories.c
        query = select(repositories).where(
            r.account_id == account_id, r.region == region, r.name == name
        )
        with db.transaction(self.engine) as conn:
            row = conn.execute(query).first()
        return _repository(row) if row else None

    def list_repositories(
        self, account_id: str, region: str, after: str | None, limit: int
    ) -> Page[Repository]:
        r = repositories.c
        query = select(repositories).where(r.account_id == account_id, r.region == region)
        if after is not None:
            query = query.where(r.name > after)
        query = query.order_by(r.name).limit(limit + 1)
        with db.transaction(self.engine) as conn:
            items = [_repository(row) for row in conn.execute(query)]
        if len(items) > limit:
            return Page(tuple(items[:limit]), items[limit - 1].name)
        return Page(tuple(items), None)

    def all_repositories(self) -> list[Repository]:
        """Every repository of every account and region (for background sweeps)."""
        with db.transaction(self.engine) as conn:
            rows = conn.execute(select(repositories).order_by(repositories.c.arn)).all()
        return [_repository(row) for row in rows]

    def update_repository(self, repository: Repository) -> None:
        with db.transaction(self.engine, write=True) as conn:
            conn.execute(
                update(repositories)
                .where(repositories.c.arn == repository.arn)
                .values(document=orjson.dumps(dict(repository.document)).decode())
            )

    def delete_repository(self, arn: str) -> None:
        """The repository and everything in it (blob bytes stay until GC)."""
        with db.transaction(self.engine, write=True) as conn:
            for table in (image_tags, image_references, images, repository_blobs, uploads):
                conn.execute(delete(table).where(table.c.repository_arn == arn))
            conn.execute(delete(repositories).where(repositories.c.arn == arn))

    def count_images(self, repository_arn: str) -> int:
        with db.transaction(self.engine) as conn:
            count = conn.scalar(
                select(func.count()).where(images.c.repository_arn == repository_arn)
            )
        return int(count or 0)

    # Images and tags

    def put_image(
        self,
        image: Image,
        references: Iterable[tuple[str, str]],
        tag: str | None,
        immutable_tag: bool = False,
        required_blobs: Iterable[str] = (),
    ) -> str | None:
        """Store a manifest (idempotent) and point ``tag`` at it.

        ``references`` are (child digest, "blob" | "manifest") edges. Returns the digest
        the tag pointed at before, if any. Raises TagConflict when ``immutable_tag`` and
        the tag already names another digest, and MissingBlobs when a ``required_blobs``
        record is gone (garbage collection got there first); nothing is stored then.
        """
        i, t = images.c, image_tags.c
        with db.transaction(self.engine, write=True) as conn:
            required = set(required_blobs)
            if required:
                # FOR SHARE: a concurrent forget_blob waits for this manifest's edges.
                present = set(
                    conn.scalars(
                        select(blobs.c.digest)
                        .where(blobs.c.digest.in_(required))
                        .with_for_update(read=True)
                    )
                )
                if required - present:
                    raise MissingBlobs(sorted(required - present))
            previous = None
            if tag is not None:
                previous = conn.scalar(
                    select(t.digest).where(t.repository_arn == image.repository_arn, t.tag == tag)
                )
                if immutable_tag and previous is not None and previous != image.digest:
                    raise TagConflict(tag, previous)
            known = conn.scalar(
                select(func.count()).where(
                    i.repository_arn == image.repository_arn, i.digest == image.digest
                )
            )
            if not known:
                conn.execute(insert(images).values(_image_row(image)))
                edges = {
                    (child, kind) for child, kind in references
                }  # a layer may repeat in a manifest
                if edges:
                    conn.execute(
                        insert(image_references),
                        [
                            {
                                "repository_arn": image.repository_arn,
                                "digest": image.digest,
                                "child_digest": child,
                                "kind": kind,
                            }
                            for child, kind in edges
                        ],
                    )
            if tag is not None and previous != image.digest:
                conn.execute(
                    delete(image_tags).where(t.repository_arn == image.repository_arn, t.tag == tag)
                )
                conn.execute(
                    insert(image_tags).values(
                        repository_arn=image.repository_arn,
                        tag=tag,
                        digest=image.digest,
                        tagged_at=image.pushed_at,
                    )
                )
        return str(previous) if previous is not None else None

    def get_image(self, repository_arn: str, digest: str) -> Image | None:
        i = images.c
        query = select(images).where(i.repository_arn == repository_arn, i.digest == digest)
        with db.transaction(self.engine) as conn:
            row = conn.execute(query).first()
            if row is None:
                return None
            tags = self._tags_of(conn, repository_arn, [digest]).get(digest, ())
        return _image(row, tags)

    def resolve_tag(self, repository_arn: str, tag: str) -> str | None:
        t = image_tags.c
        query = select(t.digest).where(t.repository_arn == repository_arn, t.tag == tag)
        with db.transaction(self.engine) as conn:
            digest = conn.scalar(query)
        return str(digest) if digest is not None else None

    def list_images(self, repository_arn: str, *, with_manifests: bool = False) -> list[Image]:
        """Every image of the repository, oldest push first, with its tags."""
        i = images.c
        columns = [c for c in images.c if with_manifests or c.name != "manifest"]
        query = (
            select(*columns)
            .where(i.repository_arn == repository_arn)
            .order_by(i.pushed_at, i.digest)
        )
        with db.transaction(self.engine) as conn:
            rows = conn.execute(query).all()
            tags = self._tags_of(conn, repository_arn, None)
        return [_image(row, tags.get(row.digest, ())) for row in rows]

    def list_tags(self, repository_arn: str, after: str | None, limit: int) -> Page[str]:
        t = image_tags.c
        query = select(t.tag).where(t.repository_arn == repository_arn)
        if after is not None:
            query = query.where(t.tag > after)
        query = query.order_by(t.tag).limit(limit + 1)
        with db.transaction(self.engine) as conn:
            names = [str(r[0]) for r in conn.execute(query)]
        if len(names) > limit:
            return Page(tuple(names[:limit]), names[limit - 1])
        return Page(tuple(names), None)

    def untag(self, repository_arn: str, tag: str) -> str | None:
        """Remove a tag; returns the digest it named."""
        t = image_tags.c
        where = (t.repository_arn == repository_arn, t.tag == tag)
        with db.transaction(self.engine, write=True) as conn:
            digest = conn.scalar(select(t.digest).where(*where))
            conn.execute(delete(image_tags).where(*where))
        return str(digest) if digest is not None else None

    def delete_image(self, repository_arn: str, digest: str) -> bool:
        """Delete a manifest and its tags; False when it was not there."""
        with db.transaction(self.engine, write=True) as conn:
            for table in (image_tags, image_references):
                conn.execute(
                    delete(table).where(
                        table.c.repository_arn == repository_arn, table.c.digest == digest
                    )
                )
            done = conn.execute(
                delete(images).where(
                    images.c.repository_arn == repository_arn, images.c.digest == digest
                )
            )
        return bool(done.rowcount)

    def mark_pulled(self, repository_arn: str, digest: str, now: float) -> None:
        i = images.c
        with db.transaction(self.engine, write=True) as conn:
            conn.execute(
                update(images)
                .where(i.repository_arn == repository_arn, i.digest == digest)
                .values(last_pulled_at=now)
            )

    def referrers(self, repository_arn: str, subject_digest: str) -> list[Image]:
        i = images.c
        query = select(images).where(
            i.repository_arn == repository_arn, i.subject_digest == subject_digest
        )
        with db.transaction(self.engine) as conn:
            return [_image(row, ()) for row in conn.execute(query)]

    def _tags_of(
        self, conn: Any, repository_arn: str, digests: list[str] | None
    ) -> dict[str, tuple[str, ...]]:
        t = image_tags.c
        query = select(t.digest, t.tag).where(t.repository_arn == repository_arn)
        if digests is not None:
            query = query.where(t.digest.in_(digests))
        found: dict[str, list[str]] = {}
        for digest, tag in conn.execute(query.order_by(t.tag)):
            found.setdefault(digest, []).append(tag)
        return {d: tuple(names) for d, names in found.items()}

    # Blobs

    def add_blob(self, digest: str, size: int, now: float, media_type: str | None = None) -> None:
        """Record a committed blob (idempotent).

        A re-push restarts the blob's grace period, so garbage collection cannot drop
        it before the manifest that will refer to it arrives.
        """
        with db.transaction(self.engine, write=True) as conn:
            done = conn.execute(
                update(blobs).where(blobs.c.digest == digest).values(created_at=now)
            )
            if not done.rowcount:
                conn.execute(
                    insert(blobs).values(
                        digest=digest, size=size, media_type=media_type, created_at=now
                    )
                )

    def link_blob(self, repository_arn: str, digest: str, now: float) -> None:
        """Let the repository serve the blob (after an upload or a cross-repo mount)."""
        rb = repository_blobs.c
        with db.transaction(self.engine, write=True) as conn:
            linked = conn.scalar(
                select(func.count()).where(rb.repository_arn == repository_arn, rb.digest == digest)
            )
            if not linked:
                conn.execute(
                    insert(repository_blobs).values(
                        repository_arn=repository_arn, digest=digest, linked_at=now
                    )
                )

    def unlink_blob(self, repository_arn: str, digest: str) -> bool:
        rb = repository_blobs.c
        with db.transaction(self.engine, write=True) as conn:
            done = conn.execute(
                delete(repository_blobs).where(
                    rb.repository_arn == repository_arn, rb.digest == digest
                )
            )
        return bool(done.rowcount)

    def blob_size(self, repository_arn: str, digest: str) -> int | None:
        """The blob's size if this repository may serve it, else None."""
        rb, b = repository_blobs.c, blobs.c
        query = (
            select(b.size)
            .select_from(repository_blobs.join(blobs, rb.digest == b.digest))
            .where(rb.repository_arn == repository_arn, rb.digest == digest)
        )
        with db.transaction(self.engine) as conn:
            size = conn.scalar(query)
        return int(size) if size is not None else None

    def global_blob_size(self, digest: str) -> int | None:
        with db.transaction(self.engine) as conn:
            size = conn.scalar(select(blobs.c.size).where(blobs.c.digest == digest))
        return int(size) if size is not None else None

    def unreferenced_blobs(self, created_before: float) -> list[str]:
        """Blobs no manifest refers to, older than the grace period's start.

        A blob younger than that may belong to a push whose manifest is still to come.
        """
        b, r = blobs.c, image_references.c
        query = select(b.digest).where(
            b.created_at < created_before,
            ~exists().where(r.child_digest == b.digest),
        )
        with db.transaction(self.engine) as conn:
            return [str(row[0]) for row in conn.execute(query)]

    def forget_blob(self, digest: str, created_before: float) -> bool:
        """Drop a blob's records if it is still unreferenced and old; True if dropped.

        Checked again inside the write transaction so a manifest put meanwhile wins.
        """
        b, r = blobs.c, image_references.c
        with db.transaction(self.engine, write=True) as conn:
            old = conn.scalar(
                select(b.digest)
                .where(b.digest == digest, b.created_at < created_before)
                .with_for_update()
            )
            # Checked after taking the row lock, so a manifest put meanwhile is seen.
            if old is None or conn.scalar(select(func.count()).where(r.child_digest == digest)):
                return False
            conn.execute(delete(repository_blobs).where(repository_blobs.c.digest == digest))
            conn.execute(delete(blobs).where(b.digest == digest))
        return True

    # Uploads

    def create_upload(self, upload: Upload) -> None:
        with db.transaction(self.engine, write=True) as conn:
            conn.execute(
                insert(uploads).values(
                    id=upload.id,
                    repository_arn=upload.repository_arn,
                    started_at=upload.started_at,
                    size=upload.size,
                )
            )

    def get_upload(self, upload_id: str) -> Upload | None:
        with db.transaction(self.engine) as conn:
            row = conn.execute(select(uploads).where(uploads.c.id == upload_id)).first()
        return Upload(row.id, row.repository_arn, row.started_at, row.size) if row else None

    def set_upload_size(self, upload_id: str, size: int) -> None:
        with db.transaction(self.engine, write=True) as conn:
            conn.execute(update(uploads).where(uploads.c.id == upload_id).values(size=size))

    def delete_upload(self, upload_id: str) -> None:
        with db.transaction(self.engine, write=True) as conn:
            conn.execute(delete(uploads).where(uploads.c.id == upload_id))

    def stale_uploads(self, started_before: float) -> list[str]:
        query = select(uploads.c.id).where(uploads.c.started_at < started_before)
        with db.transaction(self.engine) as conn:
            return [str(row[0]) for row in conn.execute(query)]


def _repository_row(r: Repository) -> dict[str, Any]:
    return {
        "arn": r.arn,
        "account_id": r.account_id,
        "region": r.region,
        "name": r.name,
        "created_at": r.created_at,
        "document": orjson.dumps(dict(r.document)).decode(),
    }


def _repository(row: Row[Any]) -> Repository:
    return Repository(
        arn=row.arn,
        account_id=row.account_id,
        region=row.region,
        name=row.name,
        created_at=row.created_at,
        document=orjson.loads(row.document),
    )


def _image_row(image: Image) -> dict[str, Any]:
    return {
        "repository_arn": image.repository_arn,
        "digest": image.digest,
        "media_type": image.media_type,
        "artifact_type": image.artifact_type,
        "subject_digest": image.subject_digest,
        "size": image.size,
        "pushed_at": image.pushed_at,
        "last_pulled_at": image.last_pulled_at,
        "manifest": image.manifest,
    }


def _image(row: Row[Any], tags: tuple[str, ...]) -> Image:
    mapping = row._mapping
    return Image(
        repository_arn=row.repository_arn,
        digest=row.digest,
        media_type=row.media_type,
        size=row.size,
        pushed_at=row.pushed_at,
        manifest=bytes(mapping["manifest"]) if "manifest" in mapping else b"",
        artifact_type=row.artifact_type,
        subject_digest=row.subject_digest,
        last_pulled_at=row.last_pulled_at,
        tags=tags,
    )
