"""The OCI distribution API (spec v1.1) at ``/v2/``, plus the token endpoint.

Repository names contain slashes, so one route takes every path under ``/v2/`` and
``_ENDPOINTS`` finds the operation from the path's tail. A request is authenticated
(ECR token by Basic or Bearer), authorized, and its repository resolved in the
account and region of its token before the handler runs; the store is synchronous,
so handlers do their store work in the thread pool and only stream bodies here.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import Route

from dockyard.registry import content, manifests, uploads
from dockyard.registry.auth import RegistryCaller, authorize
from dockyard.registry.errors import RegistryError
from dockyard.registry.names import check_digest, check_name, is_digest
from dockyard.registry.service import Registry
from dockyard.store.models import Repository

log = logging.getLogger("dockyard.registry")

API_VERSION = ("Docker-Distribution-API-Version", "registry/2.0")

# (path tail, operation); upload paths come before the blob path they would also match.
_ENDPOINTS = [
    (re.compile(r"(?P<name>.+)/blobs/uploads/?"), "uploads"),
    (re.compile(r"(?P<name>.+)/blobs/uploads/(?P<upload_id>[^/]+)"), "upload"),
    (re.compile(r"(?P<name>.+)/blobs/(?P<digest>[^/]+)"), "blob"),
    (re.compile(r"(?P<name>.+)/manifests/(?P<reference>[^/]+)"), "manifest"),
    (re.compile(r"(?P<name>.+)/tags/list"), "tags"),
    (re.compile(r"(?P<name>.+)/referrers/(?P<digest>[^/]+)"), "referrers"),
]
_ACTIONS = {"GET": "pull", "HEAD": "pull", "DELETE": "delete"}  # anything else: push
_CONTENT_RANGE = re.compile(r"(?:bytes[ =])?(\d+)-(\d+)(?:/(?:\d+|\*))?")
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")

Handler = Callable[..., Awaitable[Response]]


class BlobFile(FileResponse):
    # Larger reads than starlette's 64 KiB: fewer thread hand-offs per GiB served.
    chunk_size = 1 << 20


class V2:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.handlers: dict[tuple[str, str], Handler] = {
            ("uploads", "POST"): self.start_upload,
            ("upload", "GET"): self.upload_status,
            ("upload", "PATCH"): self.patch_upload,
            ("upload", "PUT"): self.put_upload,
            ("upload", "DELETE"): self.cancel_upload,
            ("blob", "GET"): self.get_blob,
            ("blob", "HEAD"): self.get_blob,
            ("blob", "DELETE"): self.delete_blob,
            ("manifest", "GET"): self.get_manifest,
            ("manifest", "HEAD"): self.get_manifest,
            ("manifest", "PUT"): self.put_manifest,
            ("manifest", "DELETE"): self.delete_manifest,
            ("tags", "GET"): self.list_tags,
            ("referrers", "GET"): self.referrers,
        }

    def routes(self) -> list[Route]:
        return [
            Route("/v2/", self.version_check, methods=["GET", "HEAD"]),
            Route("/v2/token", self.token, methods=["GET"]),
            Route("/v2/{path:path}", self.dispatch, methods=list(_METHODS)),
        ]

    # Authentication

    async def version_check(self, request: Request) -> Response:
        try:
            self.registry.tokens.authenticate(request.headers.get("authorization"), time.time())
        except RegistryError as error:
            return self.error(request, error)
        return _with_version(Response(b"{}", media_type="application/json"))

    async def token(self, request: Request) -> Response:
        """Trade the ECR token (Basic ``AWS:token``) for a Bearer token."""
        now = time.time()
        try:
            caller = self.registry.tokens.authenticate(request.headers.get("authorization"), now)
        except RegistryError as error:
            return _with_version(
                _error_response(error, {"WWW-Authenticate": 'Basic realm="Dockyard registry"'})
            )
        token, expires_at = self.registry.tokens.issue(caller, now)
        issued_at = datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z")
        body = {
            "token": token,
            "access_token": token,
            "expires_in": int(expires_at - now),
            "issued_at": issued_at,
        }
        return _with_version(Response(orjson.dumps(body), media_type="application/json"))

    def challenge(self, request: Request, scope: str | None = None) -> str:
        address = self.registry.address
        value = f'Bearer realm="{request.url.scheme}://{address}/v2/token",service="{address}"'
        return value + (f',scope="{scope}"' if scope else "")

    def error(self, request: Request, error: RegistryError, scope: str | None = None) -> Response:
        headers = {}
        if error.status == 401:
            headers["WWW-Authenticate"] = self.challenge(request, scope)
        return _with_version(_error_response(error, headers))

    # Dispatch

    async def dispatch(self, request: Request) -> Response:
        path, method = request.path_params["path"], request.method
        scope = None
        try:
            operation, arguments = _endpoint(path)
            handler = self.handlers.get((operation, method))
            if handler is None:
                raise RegistryError("UNSUPPORTED", f"{method} is not supported on this path")
            name = arguments.pop("name")
            action = _ACTIONS.get(method, "push")
            scope = f"repository:{name}:{'pull' if action == 'pull' else 'pull,push'}"
            caller = self.caller(request, operation == "blob" and action == "pull")
            check_name(name)
            authorize(caller, action, name)
            repository = await run_in_threadpool(
                content.find_repository, self.registry, caller.account_id, caller.region, name
            )
            response = await handler(request, caller, repository, **arguments)
        except RegistryError as error:
            return self.error(request, error, scope)
        except _Respond as respond:
            return _with_version(respond.response)
        except ClientDisconnect:
            gone = RegistryError("BLOB_UPLOAD_INVALID", "the client went away mid-request")
            return self.error(request, gone)
        except Exception:
            log.exception("%s /v2/%s failed", method, path)
            body = {"errors": [{"code": "UNKNOWN", "message": "internal server error"}]}
            return _with_version(Response(orjson.dumps(body), 500, media_type="application/json"))
        return _with_version(response)

    def caller(self, request: Request, query_token: bool) -> RegistryCaller:
        """Who is asking; blob downloads may carry the token in ``?token=``
        (the URLs GetDownloadUrlForLayer hands out)."""
        now = time.time()
        token = request.query_params.get("token")
        if query_token and token and "authorization" not in request.headers:
            return self.registry.tokens.verify(token, now)
        return self.registry.tokens.authenticate(request.headers.get("authorization"), now)

    # Manifests

    async def get_manifest(
        self, request: Request, _caller: RegistryCaller, repository: Repository, reference: str
    ) -> Response:
        head = request.method == "HEAD"

        def fetch() -> Any:
            image = content.get_manifest(self.registry, repository, reference)
            if not head:
                self.registry.store.mark_pulled(repository.arn, image.digest, time.time())
            return image

        image = await run_in_threadpool(fetch)
        headers = {
            "Docker-Content-Digest": image.digest,
            "ETag": f'"{image.digest}"',
            "Content-Length": str(len(image.manifest)),
        }
        body = b"" if head else image.manifest
        return Response(body, headers=headers, media_type=image.media_type)

    async def put_manifest(
        self, request: Request, _caller: RegistryCaller, repository: Repository, reference: str
    ) -> Response:
        body = await _read_manifest(request)
        image = await run_in_threadpool(
            content.put_manifest,
            self.registry,
            repository,
            reference,
            body,
            request.headers.get("content-type"),
            time.time(),
        )
        headers = {
            "Location": f"/v2/{repository.name}/manifests/{image.digest}",
            "Docker-Content-Digest": image.digest,
        }
        if image.subject_digest:
            headers["OCI-Subject"] = image.subject_digest
        return Response(status_code=201, headers=headers)

    async def delete_manifest(
        self, _request: Request, _caller: RegistryCaller, repository: Repository, reference: str
    ) -> Response:
        remove = content.delete_manifest if is_digest(reference) else content.untag
        await run_in_threadpool(remove, self.registry, repository, reference)
        return Response(status_code=202)

    # Blobs

    async def get_blob(
        self, request: Request, _caller: RegistryCaller, repository: Repository, digest: str
    ) -> Response:
        check_digest(digest)
        storage = self.registry.storage

        def locate() -> tuple[int | None, Path | None, os.stat_result | None]:
            if self.registry.store.blob_size(repository.arn, digest) is None:
                return None, None, None
            path = storage.local_path(digest)
            try:
                return storage.size(digest), path, os.stat(path) if path else None
            except FileNotFoundError:  # collected meanwhile
                return None, None, None

        size, path, stat = await run_in_threadpool(locate)
        if size is None:
            raise RegistryError(
                "BLOB_UNKNOWN",
                f"blob {digest} is not in repository '{repository.name}'",
                {"digest": digest},
            )
        headers = {"Docker-Content-Digest": digest, "ETag": f'"{digest}"'}
        span = _byte_range(request.headers.get("range"), size)
        if path is not None and stat is not None:
            # starlette serves the same Range we validated, straight from the file.
            return BlobFile(path, headers=headers, media_type=_OCTETS, stat_result=stat)
        start, end, status = 0, size, 200
        if span is not None:
            (start, end), status = span, 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        headers["Content-Length"] = str(end - start)
        headers["Accept-Ranges"] = "bytes"
        if request.method == "HEAD":
            return Response(b"", status, headers, _OCTETS)
        chunks: Iterator[bytes] = storage.read(digest, start, end)
        return StreamingResponse(chunks, status, headers, _OCTETS)

    async def delete_blob(
        self, _request: Request, _caller: RegistryCaller, repository: Repository, digest: str
    ) -> Response:
        check_digest(digest)
        if not await run_in_threadpool(self.registry.store.unlink_blob, repository.arn, digest):
            raise RegistryError(
                "BLOB_UNKNOWN",
                f"blob {digest} is not in repository '{repository.name}'",
                {"digest": digest},
            )
        return Response(status_code=202)

    # Uploads

    async def start_upload(
        self, request: Request, caller: RegistryCaller, repository: Repository
    ) -> Response:
        query, now = request.query_params, time.time()
        if "mount" in query:
            mounted = check_digest(query["mount"])
            source = query.get("from")
            if await run_in_threadpool(self.mount, caller, repository, mounted, source, now):
                return _blob_created(repository, mounted)
        digest = check_digest(query["digest"]) if "digest" in query else None
        upload = await run_in_threadpool(uploads.start_upload, self.registry, repository, now)
        if digest is None:
            return _upload_accepted(repository, upload.id, 0)
        try:  # the whole blob in this one request
            await uploads.append_stream(self.registry, upload.id, request.stream(), None)
            await run_in_threadpool(
                uploads.finish, self.registry, repository, upload.id, digest, time.time()
            )
        except BaseException:
            await run_in_threadpool(uploads.discard, self.registry, upload.id)
            raise
        return _blob_created(repository, digest)

    def mount(
        self,
        caller: RegistryCaller,
        repository: Repository,
        digest: str,
        source_name: str | None,
        now: float,
    ) -> bool:
        source = None
        if source_name:
            try:
                source = content.find_repository(
                    self.registry, caller.account_id, caller.region, source_name
                )
                authorize(caller, "pull", source_name)
            except RegistryError:
                source = None  # no mount: the client uploads the blob instead
        return uploads.mount(self.registry, repository, digest, source, now)

    async def upload_status(
        self, _request: Request, _caller: RegistryCaller, repository: Repository, upload_id: str
    ) -> Response:
        upload = await run_in_threadpool(uploads.get_upload, self.registry, repository, upload_id)
        return _upload_accepted(repository, upload.id, upload.size, status=204)

    async def patch_upload(
        self, request: Request, _caller: RegistryCaller, repository: Repository, upload_id: str
    ) -> Response:
        size = await self.receive_chunk(request, repository, upload_id)
        return _upload_accepted(repository, upload_id, size)

    async def put_upload(
        self, request: Request, _caller: RegistryCaller, repository: Repository, upload_id: str
    ) -> Response:
        if "digest" not in request.query_params:
            raise RegistryError("DIGEST_INVALID", "the digest query parameter is required")
        digest = check_digest(request.query_params["digest"])
        if _has_body(request):
            await self.receive_chunk(request, repository, upload_id)
        else:
            await run_in_threadpool(uploads.get_upload, self.registry, repository, upload_id)
        await run_in_threadpool(
            uploads.finish, self.registry, repository, upload_id, digest, time.time()
        )
        return _blob_created(repository, digest)

    async def cancel_upload(
        self, _request: Request, _caller: RegistryCaller, repository: Repository, upload_id: str
    ) -> Response:
        await run_in_threadpool(uploads.cancel, self.registry, repository, upload_id)
        return Response(status_code=204)

    async def receive_chunk(self, request: Request, repository: Repository, upload_id: str) -> int:
        """Append the body; a chunk that does not start where the upload ends gets 416
        with the upload's current Range, so the client can resume from there."""
        upload = await run_in_threadpool(uploads.get_upload, self.registry, repository, upload_id)
        offset = _chunk_offset(request)
        try:
            return await uploads.append_stream(self.registry, upload_id, request.stream(), offset)
        except RegistryError as error:
            if error.code != "RANGE_INVALID":
                raise
            response = self.error(request, error)
            response.headers.update(_upload_headers(repository, upload_id, upload.size))
            raise _Respond(response) from None

    # Content discovery

    async def list_tags(
        self, request: Request, _caller: RegistryCaller, repository: Repository
    ) -> Response:
        raw_n, last = request.query_params.get("n"), request.query_params.get("last")
        if raw_n is not None and not raw_n.isdigit():
            raise RegistryError("PAGINATION_NUMBER_INVALID", "n must be a non-negative integer")
        n = int(raw_n) if raw_n is not None else None
        tags, next_key = await run_in_threadpool(
            content.list_tags, self.registry, repository, n, last
        )
        response = Response(
            orjson.dumps({"name": repository.name, "tags": tags}), media_type="application/json"
        )
        if next_key is not None:
            link = f"/v2/{repository.name}/tags/list?n={len(tags)}&last={next_key}"
            response.headers["Link"] = f'<{link}>; rel="next"'
        return response

    async def referrers(
        self, request: Request, _caller: RegistryCaller, repository: Repository, digest: str
    ) -> Response:
        artifact_type = request.query_params.get("artifactType") or None
        body = await run_in_threadpool(
            content.referrers_index, self.registry, repository, digest, artifact_type
        )
        response = Response(body, media_type=manifests.OCI_INDEX)
        if artifact_type is not None:
            response.headers["OCI-Filters-Applied"] = "artifactType"
        return response


class _Respond(Exception):
    """A handler's finished error response, with headers the generic one lacks."""

    def __init__(self, response: Response) -> None:
        self.response = response


_OCTETS = "application/octet-stream"
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _endpoint(path: str) -> tuple[str, dict[str, str]]:
    """The operation a path under /v2/ names, and its parts (name, digest, ...)."""
    for pattern, operation in _ENDPOINTS:
        match = pattern.fullmatch(path)
        if match:
            return operation, match.groupdict()
    raise RegistryError("UNSUPPORTED", f"no registry API at /v2/{path}", status=404)


def _with_version(response: Response) -> Response:
    response.headers[API_VERSION[0]] = API_VERSION[1]
    return response


def _error_response(error: RegistryError, headers: dict[str, str]) -> Response:
    return Response(
        orjson.dumps(error.body()), error.status, headers, media_type="application/json"
    )


def _blob_created(repository: Repository, digest: str) -> Response:
    headers = {"Location": f"/v2/{repository.name}/blobs/{digest}", "Docker-Content-Digest": digest}
    return Response(status_code=201, headers=headers)


def _upload_headers(repository: Repository, upload_id: str, size: int) -> dict[str, str]:
    return {
        "Location": f"/v2/{repository.name}/blobs/uploads/{upload_id}",
        "Docker-Upload-UUID": upload_id,
        "Range": f"0-{max(size - 1, 0)}",
    }


def _upload_accepted(
    repository: Repository, upload_id: str, size: int, status: int = 202
) -> Response:
    return Response(status_code=status, headers=_upload_headers(repository, upload_id, size))


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    return (length is not None and length != "0") or "transfer-encoding" in request.headers


def _chunk_offset(request: Request) -> int | None:
    """Where a PATCH chunk starts, from its Content-Range (None: append at the end)."""
    value = request.headers.get("content-range")
    if value is None:
        return None
    match = _CONTENT_RANGE.fullmatch(value.strip())
    if match is None:
        raise RegistryError(
            "BLOB_UPLOAD_INVALID",
            "Content-Range must be <start>-<end>",
            {"Content-Range": value},
        )
    start, end = int(match[1]), int(match[2])
    length = request.headers.get("content-length")
    if end < start or (length is not None and length.isdigit() and int(length) != end - start + 1):
        raise RegistryError(
            "RANGE_INVALID",
            f"Content-Range {value} does not describe a body of {length} bytes",
            {"Content-Range": value, "Content-Length": length},
        )
    return start


def _byte_range(value: str | None, size: int) -> tuple[int, int] | None:
    """The [start, end) a GET's single ``Range`` asks for; None for the whole blob.

    Several ranges are left to starlette's FileResponse (multipart).
    """
    if value is None or "," in value:
        return None
    match = _RANGE.fullmatch(value.strip().replace(" ", ""))
    start: int | None = None
    if match and (match[1] or match[2]):
        if match[1]:
            start = int(match[1])
            end = min(int(match[2]) + 1, size) if match[2] else size
            if match[2] and int(match[2]) < start:
                start = None
        else:
            start, end = max(size - int(match[2]), 0), size
    if start is None or start >= size:
        raise _Respond(
            _with_version(
                _error_response(
                    RegistryError(
                        "RANGE_INVALID",
                        f"Range {value} is not satisfiable for a blob of {size} bytes",
                        {"Range": value, "size": size},
                    ),
                    {"Content-Range": f"bytes */{size}"},
                )
            )
        )
    return start, end


async def _read_manifest(request: Request) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed 4 MiB."""
    limit = manifests.MAX_MANIFEST_BYTES
    length = request.headers.get("content-length")
    too_large = RegistryError(
        "MANIFEST_INVALID", f"manifest is over the limit of {limit} bytes", status=413
    )
    if length is not None and length.isdigit() and int(length) > limit:
        raise too_large
    parts, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise too_large
        parts.append(chunk)
    return b"".join(parts)


def routes(registry: Registry) -> list[Route]:
    return V2(registry).routes()
