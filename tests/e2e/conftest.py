"""End-to-end fixtures: a Docker engine, a busybox image built here, a live server.

Every test under tests/e2e is marked ``e2e`` and runs in the default suite. There is
no skipping: without a reachable engine the tests fail and say how to get one
(bin/test starts one as root; ``DOCKYARD_TEST_DOCKER=0 bin/test`` leaves them out).
"""

from __future__ import annotations

import os
import shutil
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.clients import Docker, Registry, client_env, find_engine, private_engine
from tests.live import LiveServer

E2E_DIR = Path(__file__).parent
# One tag per session: concurrent runs share the engine and remove their own tag.
BUSYBOX_IMAGE = f"dockyard-e2e/busybox:{os.getpid()}"
BUSYBOX_DOCKERFILE = """\
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
CMD ["sh"]
"""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The marker itself is declared in pyproject.toml.
    for item in items:
        if E2E_DIR in item.path.parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def docker(tmp_path_factory: pytest.TempPathFactory) -> Docker:
    """docker/skopeo on a reachable engine, logged in nowhere yet."""
    for tool in ("docker", "dockerd", "skopeo"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: run bin/test (it installs it as root)")
    base = Docker(client_env(Path(sys.executable).parent))
    engine = find_engine(base.with_config(tmp_path_factory.mktemp("docker-config")))
    if engine is None:
        pytest.fail(
            "no Docker engine reachable (DOCKER_HOST, /var/run/docker.sock, or the one "
            "bin/test starts under .dockyard/docker/): run the suite through bin/test, "
            "or DOCKYARD_TEST_DOCKER=0 bin/test to leave the e2e tests out"
        )
    return engine


@pytest.fixture(scope="session")
def clean_engine(docker: Docker) -> Iterator[Docker]:
    """A second, private engine with nothing cached, sharing ``docker``'s logins."""
    if os.geteuid() != 0:
        pytest.fail("a private dockerd (for pulls on a clean engine) needs root")
    with private_engine(docker) as engine:
        yield engine


def _is_static_elf(path: Path) -> bool:
    """No PT_INTERP program header: the binary runs in an image FROM scratch."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:  # 64-bit only; Debian amd64/arm64
        return False
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    return all(struct.unpack_from("<I", data, phoff + i * phentsize)[0] != 3 for i in range(phnum))


@pytest.fixture(scope="session")
def busybox_binary() -> Path:
    for candidate in ("/bin/busybox", "/usr/bin/busybox"):
        path = Path(candidate)
        if path.exists() and _is_static_elf(path):
            return path
    pytest.fail("no static busybox: install Debian's busybox-static (bin/test does as root)")


@pytest.fixture(scope="session")
def busybox_image(
    docker: Docker, busybox_binary: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A two-layer busybox image built locally (there is no Docker Hub here)."""
    context = tmp_path_factory.mktemp("busybox-context")
    shutil.copy(busybox_binary, context / "busybox")
    (context / "Dockerfile").write_text(BUSYBOX_DOCKERFILE)
    docker("build", "--quiet", "--tag", BUSYBOX_IMAGE, str(context))
    yield BUSYBOX_IMAGE
    docker("image", "rm", "--force", BUSYBOX_IMAGE, check=False)


@pytest.fixture(scope="session")
def registry_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One Dockyard server on SQLite for the whole e2e session."""
    live = LiveServer(tmp_path_factory.mktemp("dockyard-e2e")).start()
    yield live
    live.stop()


@pytest.fixture(scope="session")
def registry(registry_server: LiveServer, docker: Docker) -> Iterator[Registry]:
    """The registry, and at the end no local image left tagged with its address."""
    registry = Registry(registry_server)
    yield registry
    # Pulls by digest leave REPO@DIGEST references with no tag: remove those too.
    listed = docker("image", "ls", "--digests", "--format", "{{.Repository}} {{.Tag}} {{.Digest}}")
    refs = []
    for repository, tag, digest in (line.split() for line in listed.stdout.splitlines()):
        if repository.startswith(registry.address + "/"):
            refs += [f"{repository}:{tag}"] if tag != "<none>" else []
            refs += [f"{repository}@{digest}"] if digest != "<none>" else []
    if refs:
        docker("image", "rm", "--force", *refs, check=False)
