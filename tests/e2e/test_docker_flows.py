"""The registry as users drive it: docker login/push/pull/run, skopeo, raw HTTP.

Each test creates its own repositories and its own docker login store, so they can
run in any order against the one session server.
"""

from __future__ import annotations

import hashlib
import json
import platform
import random
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dockyard.api.identity import DEFAULT_IDENTITY, Identities
from dockyard.registry.auth import RegistryCaller, Tokens, load_or_create_key
from tests.e2e.clients import Docker, Registry, pushed_digest
from tests.e2e.oci_layout import Layout, tar_of
from tests.live import REGION, LiveServer

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
NATIVE = {"x86_64": "amd64", "aarch64": "arm64"}[platform.machine()]
FOREIGN = "arm64" if NATIVE == "amd64" else "amd64"


@pytest.fixture
def client(docker: Docker, tmp_path: Path) -> Docker:
    """docker/skopeo with a login store of this test's own: logged in nowhere."""
    return docker.with_config(tmp_path / "docker-config")


def push(client: Docker, source: str, ref: str) -> str:
    """Tag ``source`` as ``ref``, push it, and return the digest docker printed."""
    client("tag", source, ref)
    return pushed_digest(client("push", ref).stdout)


def creds(registry: Registry, side: str = "") -> list[str]:
    """skopeo's flags for our registry; ``side`` is "src" or "dest" for a copy."""
    prefix = f"--{side}-" if side else "--"
    return [f"{prefix}creds=AWS:{registry.password()}", f"{prefix}tls-verify=false"]


def test_classic_flow_then_pull_and_run_on_a_clean_engine(
    client: Docker, clean_engine: Docker, busybox_image: str, registry: Registry
) -> None:
    registry.create_repository("demo")
    # Word for word what the ECR docs printed for years.
    login = client.bash(
        f"$(aws ecr get-login --no-include-email --region {REGION}"
        f" --endpoint-url {registry.server.endpoint})"
    )
    assert "Login Succeeded" in login.stdout

    image = f"{registry.address}/demo:latest"
    digest = push(client, busybox_image, image)
    client("image", "rm", image)

    # An engine that has never seen these layers: every byte comes from Dockyard.
    fresh = client.on_engine(clean_engine.host)
    pulled = fresh("pull", image)
    assert f"Digest: {digest}" in pulled.stdout
    assert "Already exists" not in pulled.stdout
    assert fresh("run", "--rm", image, "busybox", "echo", "ok").stdout == "ok\n"


def test_modern_flow_then_pull_by_digest(
    client: Docker, busybox_image: str, registry: Registry
) -> None:
    registry.create_repository("team/app")
    registry.login(client)
    image = f"{registry.address}/team/app:v1"
    digest = push(client, busybox_image, image)
    client("image", "rm", image)

    pulled = client("pull", f"{registry.address}/team/app@{digest}")
    assert f"Digest: {digest}" in pulled.stdout
    ran = client("run", "--rm", f"{registry.address}/team/app@{digest}", "busybox", "echo", "ok")
    assert ran.stdout == "ok\n"


def test_describe_and_batch_get_match_what_docker_pushed(
    client: Docker, busybox_image: str, registry: Registry
) -> None:
    registry.create_repository("described")
    registry.login(client)
    digest = push(client, busybox_image, f"{registry.address}/described:v1")

    raw = client.skopeo(
        "inspect", "--raw", *creds(registry), f"docker://{registry.address}/described:v1"
    ).stdout
    assert "sha256:" + hashlib.sha256(raw.encode()).hexdigest() == digest
    manifest = json.loads(raw)

    ecr = registry.ecr
    [detail] = ecr.describe_images(repositoryName="described")["imageDetails"]
    assert detail["imageDigest"] == digest
    assert detail["imageTags"] == ["v1"]
    assert detail["imageManifestMediaType"] == DOCKER_MANIFEST
    # ECR's size is the sum of the (compressed) layers, not counting the config.
    assert detail["imageSizeInBytes"] == sum(layer["size"] for layer in manifest["layers"])

    got = ecr.batch_get_image(repositoryName="described", imageIds=[{"imageTag": "v1"}])
    [image] = got["images"]
    assert image["imageId"] == {"imageDigest": digest, "imageTag": "v1"}
    assert image["imageManifest"] == raw


def test_skopeo_copies_daemon_to_registry_to_oci_layout_and_back(
    client: Docker, busybox_image: str, registry: Registry, tmp_path: Path
) -> None:
    registry.create_repository("copied")
    remote = f"docker://{registry.address}/copied"
    layout = tmp_path / "layout"
    daemon = f"docker-daemon:{busybox_image}"
    client.skopeo(
        "copy",
        f"--src-daemon-host={client.host}",
        *creds(registry, "dest"),
        daemon,
        f"{remote}:from-daemon",
    )
    client.skopeo("copy", *creds(registry, "src"), f"{remote}:from-daemon", f"oci:{layout}:bb")
    client.skopeo("copy", *creds(registry, "dest"), f"oci:{layout}:bb", f"{remote}:from-oci")

    # The OCI manifest skopeo wrote to the layout is what the registry now serves.
    [entry] = json.loads((layout / "index.json").read_text())["manifests"]
    written = (layout / "blobs" / "sha256" / entry["digest"].removeprefix("sha256:")).read_text()
    served = client.skopeo("inspect", "--raw", *creds(registry), f"{remote}:from-oci")
    assert served.stdout == written

    # Converting docker -> OCI manifests keeps the layer blobs: same digests both ways.
    inspected = {
        tag: json.loads(client.skopeo("inspect", *creds(registry), f"{remote}:{tag}").stdout)
        for tag in ("from-daemon", "from-oci")
    }
    assert inspected["from-oci"]["Digest"] == entry["digest"]
    assert inspected["from-daemon"]["Layers"] == inspected["from-oci"]["Layers"]
    assert len(inspected["from-oci"]["Layers"]) == 2

    # And back into the engine, where it runs.
    back = f"docker-daemon:{registry.address}/copied:back"
    client.skopeo(
        "copy",
        *creds(registry, "src"),
        f"--dest-daemon-host={client.host}",
        f"{remote}:from-oci",
        back,
    )
    ran = client("run", "--rm", f"{registry.address}/copied:back", "busybox", "echo", "ok")
    assert ran.stdout == "ok\n"

    listed = client.skopeo("list-tags", *creds(registry), remote)
    assert sorted(json.loads(listed.stdout)["Tags"]) == ["from-daemon", "from-oci"]
    client.skopeo("delete", *creds(registry), f"{remote}:from-daemon")
    listed = client.skopeo("list-tags", *creds(registry), remote)
    assert json.loads(listed.stdout)["Tags"] == ["from-oci"]
    [left] = registry.ecr.describe_images(repositoryName="copied")["imageDetails"]
    assert left["imageDigest"] == entry["digest"]


def test_multi_platform_index_serves_each_platform(
    client: Docker, busybox_binary: Path, registry: Registry, tmp_path: Path
) -> None:
    layout = Layout(tmp_path / "multi")
    busybox = busybox_binary.read_bytes()
    platforms = {
        arch: layout.add_image(
            [tar_of({"bin/busybox": busybox, "platform": f"linux/{arch}\n".encode()})], arch
        )
        for arch in (NATIVE, FOREIGN)
    }
    index, index_bytes = layout.add_index(list(platforms.values()))
    layout.tag(index, "multi")
    registry.create_repository("multi")
    ref = f"{registry.address}/multi:latest"
    client.skopeo(
        "copy", "--all", *creds(registry, "dest"), f"oci:{layout.root}:multi", f"docker://{ref}"
    )

    raw = client.skopeo("inspect", "--raw", *creds(registry), f"docker://{ref}").stdout
    assert raw.encode() == index_bytes

    # skopeo resolves the index to the platform asked for.
    out = tmp_path / "foreign"
    client.skopeo(
        "copy",
        f"--override-arch={FOREIGN}",
        *creds(registry, "src"),
        f"docker://{ref}",
        f"oci:{out}:one",
    )
    [copied] = json.loads((out / "index.json").read_text())["manifests"]
    assert copied["digest"] == platforms[FOREIGN]["digest"]

    # So does docker: the foreign image is only stored, the native one runs.
    registry.login(client)
    client("pull", "--platform", f"linux/{FOREIGN}", ref)
    assert client("image", "inspect", "--format", "{{.Architecture}}", ref).stdout == f"{FOREIGN}\n"
    client("pull", "--platform", f"linux/{NATIVE}", ref)
    ran = client("run", "--rm", ref, "busybox", "cat", "/platform")
    assert ran.stdout == f"linux/{NATIVE}\n"


def test_immutable_repository_refuses_to_move_a_tag(
    client: Docker, busybox_image: str, registry: Registry, tmp_path: Path
) -> None:
    registry.create_repository("locked", "--image-tag-mutability", "IMMUTABLE")
    registry.login(client)
    ref = f"{registry.address}/locked:v1"
    first = push(client, busybox_image, ref)

    context = tmp_path / "variant"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {busybox_image}\nLABEL variant=two\n")
    client("build", "--quiet", "--tag", ref, str(context))
    refused = client("push", ref, check=False)
    assert refused.returncode != 0
    message = (refused.stdout + refused.stderr).lower()
    assert "immutable" in message or "already exists" in message, message

    described = registry.ecr.describe_images(repositoryName="locked", imageIds=[{"imageTag": "v1"}])
    assert described["imageDetails"][0]["imageDigest"] == first
    # A new tag for the new image is fine.
    push(client, ref, f"{registry.address}/locked:v2")


def _expired_password(registry: Registry) -> str:
    """A token signed with the server's own key that expired an hour ago."""
    tokens = Tokens(load_or_create_key(registry.server.data_dir), Identities([DEFAULT_IDENTITY]))
    caller = RegistryCaller(DEFAULT_IDENTITY, "000000000000", REGION)
    token, _ = tokens.issue(caller, time.time() - 13 * 3600)
    return token


def test_no_bad_or_expired_credentials_are_refused(
    client: Docker, docker: Docker, busybox_image: str, registry: Registry, tmp_path: Path
) -> None:
    registry.create_repository("private")
    owner = docker.with_config(tmp_path / "owner")
    registry.login(owner)
    ref = f"{registry.address}/private:v1"
    push(owner, busybox_image, ref)

    denied = client("pull", ref, check=False)
    assert denied.returncode != 0
    assert "no basic auth credentials" in denied.stderr or "unauthorized" in denied.stderr.lower()
    anonymous = httpx.get(f"http://{registry.address}/v2/private/manifests/v1")
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith('Bearer realm="http://')

    attempts = {
        "wrong password": ("AWS", "not-a-token"),
        "wrong user": ("admin", registry.password()),
        "expired token": ("AWS", _expired_password(registry)),
    }
    for case, (user, password) in attempts.items():
        command = ["login", f"--username={user}", "--password-stdin", registry.address]
        login = client(*command, input=password, check=False)
        assert login.returncode != 0, case
        assert "401" in login.stderr or "unauthorized" in login.stderr.lower(), (case, login)

        answer = httpx.get(f"http://{registry.address}/v2/", auth=(user, password))
        assert answer.status_code == 401, case
        assert "WWW-Authenticate" in answer.headers, case
        assert answer.json()["errors"][0]["code"] == "UNAUTHORIZED", case


GIB = 1 << 30
CHUNK = 1 << 20
MEMORY_BUDGET = 100 * (1 << 20)


def layer_block(seed: int) -> bytes:
    return random.Random(seed).randbytes(CHUNK)


def layer_bytes(total: int, seed: int) -> Iterator[bytes]:
    """Deterministic incompressible chunks, generated as they are sent (each one
    the same random block behind its own counter, so no two are alike)."""
    block = layer_block(seed)
    for i in range(total // CHUNK):
        yield i.to_bytes(8, "big") + block[8:]


def proc_status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


@pytest.fixture
def big_registry(tmp_path: Path) -> Iterator[Registry]:
    """A server of its own: nothing else runs in it, and its GiB goes away after."""
    server = LiveServer(tmp_path / "server").start()
    yield Registry(server)
    server.stop()
    shutil.rmtree(server.data_dir)


def test_one_gib_layer_round_trip_in_constant_server_memory(big_registry: Registry) -> None:
    registry = big_registry
    registry.create_repository("big")
    assert registry.server.process is not None
    pid = registry.server.process.pid
    # Reset the peak (VmHWM) to now: start-up (imports, migrations) doesn't count.
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    rss_before = proc_status_kib(pid, "VmRSS") * 1024

    auth = ("AWS", registry.password())
    with httpx.Client(base_url=f"http://{registry.address}", auth=auth, timeout=300) as http:
        sent = hashlib.sha256()

        def body() -> Iterator[bytes]:
            for chunk in layer_bytes(GIB, seed=1):
                sent.update(chunk)
                yield chunk

        # docker's way: POST, one streamed PATCH of unknown length, PUT with the digest.
        started = http.post("/v2/big/blobs/uploads/")
        assert started.status_code == 202, started.text
        patched = http.patch(started.headers["Location"], content=body())
        assert patched.status_code == 202, patched.text
        assert patched.headers["Range"] == f"0-{GIB - 1}"
        layer = "sha256:" + sent.hexdigest()
        committed = http.put(patched.headers["Location"], params={"digest": layer})
        assert committed.status_code == 201, committed.text
        assert committed.headers["Docker-Content-Digest"] == layer

        config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {}}).encode()
        config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
        posted = http.post(
            "/v2/big/blobs/uploads/", params={"digest": config_digest}, content=config
        )
        assert posted.status_code == 201, posted.text
        manifest = {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "size": len(config), "digest": config_digest},
            "layers": [{"mediaType": DOCKER_LAYER, "size": GIB, "digest": layer}],
        }
        put = http.put(
            "/v2/big/manifests/v1",
            content=json.dumps(manifest),
            headers={"Content-Type": DOCKER_MANIFEST},
        )
        assert put.status_code == 201, put.text

        # Pull it the way a client does: manifest by tag, then the layer it names.
        pulled_manifest = http.get("/v2/big/manifests/v1", headers={"Accept": DOCKER_MANIFEST})
        assert pulled_manifest.json()["layers"][0]["digest"] == layer
        received, size = hashlib.sha256(), 0
        with http.stream("GET", f"/v2/big/blobs/{layer}", follow_redirects=True) as blob:
            assert blob.status_code == 200
            assert blob.headers["Content-Length"] == str(GIB)
            for chunk in blob.iter_raw(CHUNK):
                received.update(chunk)
                size += len(chunk)
        assert (size, "sha256:" + received.hexdigest()) == (GIB, layer)

        tail = http.get(f"/v2/big/blobs/{layer}", headers={"Range": f"bytes={GIB - 16}-"})
        assert tail.status_code == 206
        assert tail.content == layer_block(seed=1)[-16:]

    growth = proc_status_kib(pid, "VmHWM") * 1024 - rss_before
    assert growth < MEMORY_BUDGET, f"server peak RSS grew {growth / 2**20:.0f} MiB"

    [detail] = registry.ecr.describe_images(repositoryName="big")["imageDetails"]
    assert detail["imageSizeInBytes"] == GIB
