"""The OCI distribution API over raw HTTP against a live server.

Each test pushes and pulls small images the way docker, skopeo and oras do: blob
uploads (monolithic, chunked, single POST, mounted), manifests by tag and digest,
tag listing, referrers, deletes, and the errors the spec names for bad input.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import orjson
import pytest

from dockyard.api.identity import DEFAULT_IDENTITY, Identities
from dockyard.config import DEFAULT_ACCOUNT_ID
from dockyard.registry.auth import TOKEN_LIFETIME, RegistryCaller, Tokens, load_or_create_key
from dockyard.store.models import Repository
from dockyard.store.registry import RegistryStore
from dockyard.store.store import Store
from tests.live import REGION, LiveServer

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
EMPTY = "application/vnd.oci.empty.v1+json"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def errors(response: httpx.Response) -> list[dict[str, Any]]:
    body: list[dict[str, Any]] = response.json()["errors"]
    return body


def code(response: httpx.Response) -> str:
    return str(errors(response)[0]["code"])


class Registry:
    """A raw HTTP client for /v2/ holding an ECR token, plus repository set-up."""

    def __init__(self, server: LiveServer, store: RegistryStore) -> None:
        self.server = server
        self.store = store
        self.tokens = Tokens(load_or_create_key(server.data_dir), Identities([DEFAULT_IDENTITY]))
        self.token = self.issue(time.time())
        self.http = httpx.Client(
            base_url=server.endpoint, headers={"Authorization": self.basic(self.token)}
        )

    def issue(self, now: float) -> str:
        caller = RegistryCaller(DEFAULT_IDENTITY, DEFAULT_ACCOUNT_ID, REGION)
        return self.tokens.issue(caller, now)[0]

    @staticmethod
    def basic(token: str, user: str = "AWS") -> str:
        return "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()

    def create(self, name: str, **document: Any) -> None:
        arn = f"arn:aws:ecr:{REGION}:{DEFAULT_ACCOUNT_ID}:repository/{name}"
        repository = Repository(arn, DEFAULT_ACCOUNT_ID, REGION, name, time.time(), document)
        assert self.store.create_repository(repository)

    def push_blob(self, name: str, data: bytes) -> str:
        digest = sha256(data)
        response = self.http.post(
            f"/v2/{name}/blobs/uploads/", params={"digest": digest}, content=data
        )
        assert response.status_code == 201, response.text
        return digest

    def push_manifest(
        self, name: str, reference: str, document: Any, media_type: str = OCI_MANIFEST
    ) -> httpx.Response:
        body = document if isinstance(document, bytes) else orjson.dumps(document)
        return self.http.put(
            f"/v2/{name}/manifests/{reference}", content=body, headers={"Content-Type": media_type}
        )

    def push_image(
        self, name: str, tag: str, layers: list[bytes], **extra: Any
    ) -> tuple[str, bytes]:
        """Push config + layers and an OCI manifest; returns (digest, manifest bytes)."""
        config = orjson.dumps({"architecture": "amd64", "os": "linux", "tag": tag})
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, config, self.push_blob(name, config)),
            "layers": [
                descriptor(OCI_LAYER, layer, self.push_blob(name, layer)) for layer in layers
            ],
            **extra,
        }
        body = orjson.dumps(manifest)
        response = self.push_manifest(name, tag, body)
        assert response.status_code == 201, response.text
        return sha256(body), body


def descriptor(media_type: str, data: bytes, digest: str | None = None) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest or sha256(data), "size": len(data)}


@pytest.fixture(scope="session")
def server_store(server: LiveServer) -> Iterator[RegistryStore]:
    """The live server's database, opened from the test to create repositories."""
    store = Store.open(server.database_url, server.data_dir)
    yield store.registry
    store.close()


@pytest.fixture
def registry(server: LiveServer, server_store: RegistryStore) -> Iterator[Registry]:
    server.reset()
    client = Registry(server, server_store)
    client.create("app")
    yield client
    client.http.close()


# Authentication


def test_version_check_challenges_without_credentials(registry: Registry) -> None:
    anonymous = httpx.get(registry.server.endpoint + "/v2/")
    assert anonymous.status_code == 401
    address = f"127.0.0.1:{registry.server.port}"
    assert anonymous.headers["WWW-Authenticate"] == (
        f'Bearer realm="http://{address}/v2/token",service="{address}"'
    )
    assert anonymous.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert code(anonymous) == "UNAUTHORIZED"

    signed_in = registry.http.get("/v2/")
    assert (signed_in.status_code, signed_in.json()) == (200, {})
    assert signed_in.headers["Docker-Distribution-API-Version"] == "registry/2.0"


def test_token_endpoint_trades_basic_for_bearer(registry: Registry) -> None:
    response = registry.http.get(
        "/v2/token", params={"service": "x", "scope": "repository:app:pull"}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token"] == body["access_token"]
    assert 0 < body["expires_in"] <= TOKEN_LIFETIME
    assert body["issued_at"].endswith("Z")

    bearer = {"Authorization": "Bearer " + body["token"]}
    assert httpx.get(registry.server.endpoint + "/v2/", headers=bearer).status_code == 200
    tags = httpx.get(registry.server.endpoint + "/v2/app/tags/list", headers=bearer)
    assert tags.status_code == 200


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Basic " + base64.b64encode(b"AWS:not-a-token").decode(),
        "Bearer not-a-token",
        "Basic !!!",
        "Digest abc",
    ],
    ids=["none", "bad basic", "bad bearer", "malformed basic", "other scheme"],
)
def test_bad_credentials_get_401_with_the_spec_body(
    registry: Registry, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    for path in ("/v2/", "/v2/app/tags/list", "/v2/token"):
        response = httpx.get(registry.server.endpoint + path, headers=headers)
        assert response.status_code == 401, path
        assert code(response) == "UNAUTHORIZED"
        assert "WWW-Authenticate" in response.headers
    scoped = httpx.get(registry.server.endpoint + "/v2/app/manifests/latest", headers=headers)
    assert 'scope="repository:app:pull"' in scoped.headers["WWW-Authenticate"]


def test_wrong_user_and_expired_token_get_401(registry: Registry) -> None:
    wrong_user = {"Authorization": registry.basic(registry.token, user="admin")}
    response = httpx.get(registry.server.endpoint + "/v2/", headers=wrong_user)
    assert (response.status_code, code(response)) == (401, "UNAUTHORIZED")

    expired = registry.issue(time.time() - TOKEN_LIFETIME - 60)
    response = httpx.get(
        registry.server.endpoint + "/v2/app/tags/list",
        headers={"Authorization": registry.basic(expired)},
    )
    assert (response.status_code, code(response)) == (401, "UNAUTHORIZED")
    assert "expired" in errors(response)[0]["message"]


def test_blob_download_accepts_the_token_in_the_query(registry: Registry) -> None:
    digest = registry.push_blob("app", b"layer bytes")
    url = f"{registry.server.endpoint}/v2/app/blobs/{digest}"
    assert httpx.get(url).status_code == 401
    response = httpx.get(url, params={"token": registry.token})
    assert (response.status_code, response.content) == (200, b"layer bytes")
    assert httpx.get(url, params={"token": "forged"}).status_code == 401


# Push and pull


def test_monolithic_push_then_pull_by_tag_and_digest(registry: Registry) -> None:
    http = registry.http
    started = http.post("/v2/app/blobs/uploads/")
    assert started.status_code == 202
    location = started.headers["Location"]
    assert location == f"/v2/app/blobs/uploads/{started.headers['Docker-Upload-UUID']}"
    assert started.headers["Range"] == "0-0"

    layer = b"hello layer" * 1000
    finished = http.put(location, params={"digest": sha256(layer)}, content=layer)
    assert finished.status_code == 201, finished.text
    assert finished.headers["Location"] == f"/v2/app/blobs/{sha256(layer)}"
    assert finished.headers["Docker-Content-Digest"] == sha256(layer)

    head = http.head(f"/v2/app/blobs/{sha256(layer)}")
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len(layer))
    assert head.headers["Docker-Content-Digest"] == sha256(layer)
    assert http.get(f"/v2/app/blobs/{sha256(layer)}").content == layer

    config = b'{"architecture":"amd64","os":"linux"}'
    manifest = orjson.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": descriptor(
                "application/vnd.docker.container.image.v1+json",
                config,
                registry.push_blob("app", config),
            ),
            "layers": [descriptor("application/vnd.docker.image.rootfs.diff.tar.gzip", layer)],
        }
    )
    put = registry.push_manifest("app", "v1", manifest, DOCKER_MANIFEST)
    assert put.status_code == 201, put.text
    assert put.headers["Location"] == f"/v2/app/manifests/{sha256(manifest)}"
    assert put.headers["Docker-Content-Digest"] == sha256(manifest)
    assert "OCI-Subject" not in put.headers

    for reference in ("v1", sha256(manifest)):
        got = http.get(f"/v2/app/manifests/{reference}", headers={"Accept": DOCKER_MANIFEST})
        assert got.status_code == 200
        assert got.content == manifest
        assert got.headers["Content-Type"] == DOCKER_MANIFEST
        assert got.headers["Docker-Content-Digest"] == sha256(manifest)
        head = http.head(f"/v2/app/manifests/{reference}")
        assert head.status_code == 200
        assert head.headers["Content-Length"] == str(len(manifest))
        assert head.headers["Docker-Content-Digest"] == sha256(manifest)
        assert head.headers["Docker-Distribution-API-Version"] == "registry/2.0"

    image = registry.store.get_image(
        f"arn:aws:ecr:{REGION}:{DEFAULT_ACCOUNT_ID}:repository/app", sha256(manifest)
    )
    assert image is not None
    assert (image.size, image.tags, image.artifact_type) == (
        len(layer),
        ("v1",),
        "application/vnd.docker.container.image.v1+json",
    )
    assert image.last_pulled_at is not None


def test_chunked_upload_with_content_range(registry: Registry) -> None:
    http = registry.http
    location = http.post("/v2/app/blobs/uploads/").headers["Location"]
    first, second = b"a" * 1000, b"b" * 500

    response = http.patch(
        location,
        content=first,
        headers={"Content-Range": "0-999", "Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 202, response.text
    assert response.headers["Range"] == "0-999"
    assert response.headers["Location"] == location

    out_of_order = http.patch(location, content=second, headers={"Content-Range": "2000-2499"})
    assert out_of_order.status_code == 416
    assert code(out_of_order) == "RANGE_INVALID"
    assert out_of_order.headers["Range"] == "0-999"

    repeated = http.patch(location, content=first, headers={"Content-Range": "0-999"})
    assert repeated.status_code == 416

    status = http.get(location)
    assert (status.status_code, status.headers["Range"]) == (204, "0-999")

    response = http.patch(location, content=second, headers={"Content-Range": "1000-1499"})
    assert (response.status_code, response.headers["Range"]) == (202, "0-1499")

    blob = first + second
    done = http.put(location, params={"digest": sha256(blob)})
    assert done.status_code == 201, done.text
    assert http.get(f"/v2/app/blobs/{sha256(blob)}").content == blob


def test_streaming_patch_without_content_range(registry: Registry) -> None:
    """A docker-style PATCH: the whole blob, chunked transfer, no Content-Range."""
    blob = bytes(range(256)) * (12 * 1024 + 7)  # ~3 MiB: several write batches

    def body() -> Iterator[bytes]:
        for i in range(0, len(blob), 100_000):
            yield blob[i : i + 100_000]

    http = registry.http
    location = http.post("/v2/app/blobs/uploads/").headers["Location"]
    response = http.patch(location, content=body())
    assert response.status_code == 202, response.text
    assert response.headers["Range"] == f"0-{len(blob) - 1}"
    # The final PUT may carry the last bytes; the digest names the whole upload.
    whole = blob + b"tail"
    final = http.put(location, params={"digest": sha256(whole)}, content=b"tail")
    assert final.status_code == 201, final.text
    assert http.get(f"/v2/app/blobs/{sha256(whole)}").content == whole


def test_upload_resumes_after_a_restart(registry: Registry) -> None:
    """The running hash is a cache: after a restart the upload is re-hashed from disk."""
    http = registry.http
    location = http.post("/v2/app/blobs/uploads/").headers["Location"]
    first, second = b"before restart " * 1000, b"after restart"
    assert http.patch(location, content=first).status_code == 202
    registry.server.restart()
    status = http.get(location)
    assert (status.status_code, status.headers["Range"]) == (204, f"0-{len(first) - 1}")
    response = http.patch(
        location,
        content=second,
        headers={"Content-Range": f"{len(first)}-{len(first) + len(second) - 1}"},
    )
    assert response.status_code == 202, response.text
    done = http.put(location, params={"digest": sha256(first + second)})
    assert done.status_code == 201, done.text


def test_concurrent_pushes_of_the_same_blob_all_succeed(registry: Registry) -> None:
    registry.create("second")
    data = b"popular base layer" * 50_000
    digest = sha256(data)

    def push(name: str) -> int:
        with httpx.Client(base_url=registry.server.endpoint, headers=registry.http.headers) as c:
            location = c.post(f"/v2/{name}/blobs/uploads/").headers["Location"]
            assert c.patch(location, content=data).status_code == 202
            return c.put(location, params={"digest": digest}).status_code

    with ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(push, ["app", "second"] * 3))
    assert codes == [201] * 6
    for name in ("app", "second"):
        assert registry.http.get(f"/v2/{name}/blobs/{digest}").content == data


def test_single_post_with_digest(registry: Registry) -> None:
    data = b"one request"
    response = registry.http.post(
        "/v2/app/blobs/uploads/", params={"digest": sha256(data)}, content=data
    )
    assert response.status_code == 201
    assert response.headers["Location"] == f"/v2/app/blobs/{sha256(data)}"
    assert registry.http.get(response.headers["Location"]).content == data


def test_cross_repository_mount(registry: Registry) -> None:
    registry.create("other/team")
    data = b"shared base layer"
    digest = registry.push_blob("app", data)
    assert registry.http.head(f"/v2/other/team/blobs/{digest}").status_code == 404

    mounted = registry.http.post(
        "/v2/other/team/blobs/uploads/", params={"mount": digest, "from": "app"}
    )
    assert mounted.status_code == 201
    assert mounted.headers["Location"] == f"/v2/other/team/blobs/{digest}"
    assert mounted.headers["Docker-Content-Digest"] == digest
    assert registry.http.get(f"/v2/other/team/blobs/{digest}").content == data

    for source in ("missing", "Not..Valid"):
        fallback = registry.http.post(
            "/v2/other/team/blobs/uploads/", params={"mount": sha256(b"x"), "from": source}
        )
        assert fallback.status_code == 202
        assert fallback.headers["Location"].startswith("/v2/other/team/blobs/uploads/")


def test_blob_range_reads(registry: Registry) -> None:
    data = bytes(range(256)) * 4
    url = f"/v2/app/blobs/{registry.push_blob('app', data)}"
    cases = {
        "bytes=0-9": (0, 10),
        "bytes=1000-": (1000, 1024),
        "bytes=-24": (1000, 1024),
        "bytes=1020-5000": (1020, 1024),
    }
    for header, (start, end) in cases.items():
        response = registry.http.get(url, headers={"Range": header})
        assert response.status_code == 206, header
        assert response.content == data[start:end]
        assert response.headers["Content-Range"] == f"bytes {start}-{end - 1}/1024"

    for header in ("bytes=1024-", "bytes=5-2", "bytes=-0", "pages=1-2"):
        response = registry.http.get(url, headers={"Range": header})
        assert response.status_code == 416, header
        assert code(response) == "RANGE_INVALID"
        assert response.headers["Content-Range"] == "bytes */1024"


def test_tags_list_pages_with_link_header(registry: Registry) -> None:
    _, body = registry.push_image("app", "v1", [b"layer"])
    for tag in ("v2", "v3", "latest", "a-tag"):
        assert registry.push_manifest("app", tag, body).status_code == 201

    everything = registry.http.get("/v2/app/tags/list").json()
    assert everything == {"name": "app", "tags": ["a-tag", "latest", "v1", "v2", "v3"]}

    seen, url = [], "/v2/app/tags/list?n=2"
    while url:
        response = registry.http.get(url)
        assert response.status_code == 200
        page = response.json()["tags"]
        assert len(page) <= 2
        seen += page
        link = response.headers.get("Link")
        url = link.split(";")[0].strip("<>") if link else ""
        if link:
            assert link.endswith('; rel="next"')
    assert seen == everything["tags"]

    after = registry.http.get("/v2/app/tags/list", params={"last": "v1"}).json()
    assert after["tags"] == ["v2", "v3"]
    assert registry.http.get("/v2/app/tags/list?n=0").json()["tags"] == []


def test_referrers_with_artifact_type_filter(registry: Registry) -> None:
    subject_digest, subject_body = registry.push_image("app", "v1", [b"base"])
    subject = {"mediaType": OCI_MANIFEST, "digest": subject_digest, "size": len(subject_body)}
    empty = registry.push_blob("app", b"{}")

    def artifact(artifact_type: str, payload: bytes) -> str:
        document = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": EMPTY, "digest": empty, "size": 2},
            "layers": [descriptor("text/plain", payload, registry.push_blob("app", payload))],
            "subject": subject,
            "annotations": {"org.example.kind": artifact_type},
        }
        body = orjson.dumps(document)
        response = registry.push_manifest("app", sha256(body), body)
        assert response.status_code == 201, response.text
        assert response.headers["OCI-Subject"] == subject_digest
        return sha256(body)

    sbom = artifact("application/vnd.example.sbom", b"sbom")
    signature = artifact("application/vnd.example.signature", b"sig")

    listed = registry.http.get(f"/v2/app/referrers/{subject_digest}")
    assert listed.status_code == 200
    assert listed.headers["Content-Type"] == OCI_INDEX
    index = listed.json()
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == OCI_INDEX
    by_digest = {d["digest"]: d for d in index["manifests"]}
    assert set(by_digest) == {sbom, signature}
    assert by_digest[sbom]["artifactType"] == "application/vnd.example.sbom"
    assert by_digest[sbom]["mediaType"] == OCI_MANIFEST
    assert by_digest[sbom]["annotations"] == {"org.example.kind": "application/vnd.example.sbom"}
    assert "OCI-Filters-Applied" not in listed.headers

    filtered = registry.http.get(
        f"/v2/app/referrers/{subject_digest}",
        params={"artifactType": "application/vnd.example.signature"},
    )
    assert filtered.headers["OCI-Filters-Applied"] == "artifactType"
    assert [d["digest"] for d in filtered.json()["manifests"]] == [signature]

    nothing = registry.http.get(f"/v2/app/referrers/{sha256(b'unknown')}")
    assert (nothing.status_code, nothing.json()["manifests"]) == (200, [])
    bad = registry.http.get("/v2/app/referrers/sha256:nothex")
    assert (bad.status_code, code(bad)) == (400, "DIGEST_INVALID")


def test_index_needs_its_children_and_is_as_large_as_the_largest(registry: Registry) -> None:
    small, small_body = registry.push_image("app", "small", [b"s"])
    big, big_body = registry.push_image("app", "big", [b"b" * 100, b"c" * 50])
    missing = sha256(b"not pushed")
    children = [
        {"mediaType": OCI_MANIFEST, "digest": small, "size": len(small_body)},
        {"mediaType": OCI_MANIFEST, "digest": big, "size": len(big_body)},
    ]
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}
    response = registry.push_manifest("app", "multi", index, OCI_INDEX)
    assert response.status_code == 201, response.text
    stored = registry.store.get_image(
        f"arn:aws:ecr:{REGION}:{DEFAULT_ACCOUNT_ID}:repository/app",
        response.headers["Docker-Content-Digest"],
    )
    assert stored is not None and stored.size == 150

    listed = dict(index, mediaType=DOCKER_LIST)
    listed["manifests"] = [*children, {"mediaType": DOCKER_MANIFEST, "digest": missing, "size": 1}]
    refused = registry.push_manifest("app", "multi2", listed, DOCKER_LIST)
    assert (refused.status_code, code(refused)) == (404, "MANIFEST_BLOB_UNKNOWN")
    assert errors(refused)[0]["detail"]["digest"] == missing


# Content management


def test_deletes(registry: Registry) -> None:
    digest, _ = registry.push_image("app", "v1", [b"to delete"])
    http = registry.http
    assert (
        registry.push_manifest("app", "v2", http.get("/v2/app/manifests/v1").content).status_code
        == 201
    )

    assert http.delete("/v2/app/manifests/v2").status_code == 202  # a tag: only the tag goes
    assert http.get("/v2/app/manifests/v2").status_code == 404
    assert http.get(f"/v2/app/manifests/{digest}").status_code == 200

    assert http.delete(f"/v2/app/manifests/{digest}").status_code == 202
    gone = http.get("/v2/app/manifests/v1")
    assert (gone.status_code, code(gone)) == (404, "MANIFEST_UNKNOWN")
    again = http.delete(f"/v2/app/manifests/{digest}")
    assert (again.status_code, code(again)) == (404, "MANIFEST_UNKNOWN")

    layer = sha256(b"to delete")
    assert http.delete(f"/v2/app/blobs/{layer}").status_code == 202
    missing = http.get(f"/v2/app/blobs/{layer}")
    assert (missing.status_code, code(missing)) == (404, "BLOB_UNKNOWN")
    assert http.delete(f"/v2/app/blobs/{layer}").status_code == 404

    location = http.post("/v2/app/blobs/uploads/").headers["Location"]
    assert http.delete(location).status_code == 204
    unknown = http.get(location)
    assert (unknown.status_code, code(unknown)) == (404, "BLOB_UPLOAD_UNKNOWN")


# Bad input


def test_wrong_digest_is_refused_and_nothing_is_stored(registry: Registry) -> None:
    http = registry.http
    data, claimed = b"real content", sha256(b"other content")
    location = http.post("/v2/app/blobs/uploads/").headers["Location"]
    response = http.put(location, params={"digest": claimed}, content=data)
    assert (response.status_code, code(response)) == (400, "DIGEST_INVALID")
    for digest in (claimed, sha256(data)):
        assert http.head(f"/v2/app/blobs/{digest}").status_code == 404
    assert http.get(location).status_code == 404  # the upload is discarded

    single = http.post("/v2/app/blobs/uploads/", params={"digest": claimed}, content=data)
    assert (single.status_code, code(single)) == (400, "DIGEST_INVALID")
    malformed = http.post("/v2/app/blobs/uploads/", params={"digest": "sha256:abc"}, content=data)
    assert (malformed.status_code, code(malformed)) == (400, "DIGEST_INVALID")
    assert registry.store.global_blob_size(claimed) is None
    assert registry.store.global_blob_size(sha256(data)) is None

    for digest in (claimed, sha256(data)):
        encoded = digest.partition(":")[2]
        blob_file = registry.server.data_dir / "registry/blobs/sha256" / encoded[:2] / encoded
        assert not blob_file.exists()

    _, manifest = registry.push_image("app", "v1", [b"layer"])
    by_digest = registry.push_manifest("app", sha256(b"not this"), manifest)
    assert (by_digest.status_code, code(by_digest)) == (400, "DIGEST_INVALID")


@pytest.mark.parametrize(
    "name",
    ["foo..bar", "Upper", "app/Case", "-leading", "trailing-", "a//b", "x" * 257, "a___b"],
)
def test_invalid_names(registry: Registry, name: str) -> None:
    for method, path in (("GET", "tags/list"), ("POST", "blobs/uploads/")):
        response = registry.http.request(method, f"/v2/{name}/{path}")
        assert (response.status_code, code(response)) == (400, "NAME_INVALID"), name


def test_unknown_repository_is_name_unknown(registry: Registry) -> None:
    response = registry.http.post("/v2/nowhere/blobs/uploads/")
    assert (response.status_code, code(response)) == (404, "NAME_UNKNOWN")
    assert "nowhere" in errors(response)[0]["message"]


def test_invalid_tag_and_unknown_paths(registry: Registry) -> None:
    bad_tag = registry.http.get("/v2/app/manifests/.hidden")
    assert (bad_tag.status_code, code(bad_tag)) == (400, "TAG_INVALID")
    nowhere = registry.http.get("/v2/app/nothing-here")
    assert nowhere.status_code == 404
    assert code(nowhere) == "UNSUPPORTED"
    wrong_method = registry.http.post("/v2/app/tags/list")
    assert (wrong_method.status_code, code(wrong_method)) == (405, "UNSUPPORTED")


def test_oversize_manifest_is_413(registry: Registry) -> None:
    body = b'{"schemaVersion": 2, "pad": "' + b"x" * (4 << 20) + b'"}'
    response = registry.push_manifest("app", "huge", body)
    assert (response.status_code, code(response)) == (413, "MANIFEST_INVALID")


def test_manifest_referencing_missing_blobs(registry: Registry) -> None:
    config = b"{}"
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config, registry.push_blob("app", config)),
        "layers": [descriptor(OCI_LAYER, b"never pushed")],
    }
    response = registry.push_manifest("app", "v1", manifest)
    assert (response.status_code, code(response)) == (404, "MANIFEST_BLOB_UNKNOWN")
    assert errors(response)[0]["detail"]["digest"] == sha256(b"never pushed")
    assert registry.http.get("/v2/app/manifests/v1").status_code == 404


def test_invalid_manifest_and_schema1(registry: Registry) -> None:
    response = registry.push_manifest("app", "v1", b"not json")
    assert (response.status_code, code(response)) == (400, "MANIFEST_INVALID")
    schema1 = registry.push_manifest(
        "app",
        "v1",
        b'{"schemaVersion": 1, "name": "app", "tag": "v1", "fsLayers": []}',
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
    )
    assert (schema1.status_code, code(schema1)) == (400, "MANIFEST_INVALID")
    assert "unsupported" in errors(schema1)[0]["message"]


def test_immutable_tag_cannot_be_repointed(registry: Registry) -> None:
    registry.create("locked", imageTagMutability="IMMUTABLE")
    first, body = registry.push_image("locked", "v1", [b"one"])
    assert registry.push_manifest("locked", "v1", body).status_code == 201  # same image: fine

    second, other = registry.push_image("locked", "v2", [b"two"])
    refused = registry.push_manifest("locked", "v1", other)
    assert (refused.status_code, code(refused)) == (400, "TAG_INVALID")
    assert registry.http.head("/v2/locked/manifests/v1").headers["Docker-Content-Digest"] == first
    assert registry.push_manifest("locked", second, other).status_code == 201  # by digest


def test_immutable_tag_message_and_exclusions(registry: Registry) -> None:
    registry.create(
        "mixed",
        imageTagMutability="IMMUTABLE_WITH_EXCLUSION",
        imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": "latest*"}],
    )
    registry.push_image("mixed", "v1", [b"one"])
    registry.push_image("mixed", "latest", [b"one"])
    _, other = registry.push_image("mixed", "other", [b"two"])

    refused = registry.push_manifest("mixed", "v1", other)
    assert (refused.status_code, code(refused)) == (400, "TAG_INVALID")
    assert errors(refused)[0]["message"] == (
        "The image tag 'v1' already exists in the 'mixed' repository and cannot be "
        "overwritten because the repository is immutable."
    )
    moved = registry.push_manifest("mixed", "latest", other)
    assert moved.status_code == 201
