"""A task cgroup on the real engine: a container given it as cgroup parent lands in it,
and the task's memory limit is the one set on it, seen from the host."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from dockyard.agent.docker_runtime import DockerRuntime
from dockyard.agent.runtime import ContainerSpec
from dockyard.agent.task_cgroup import ROOT, TaskCgroups

pytestmark = pytest.mark.e2e

BUSYBOX = "dockyard-test/busybox:latest"
MIB = 1 << 20


def _docker_url() -> str | None:
    """DOCKER_HOST, the system socket, else the engine ``bin/test`` leaves running."""
    private = Path(__file__).resolve().parents[2] / ".dockyard" / "docker" / "docker.sock"
    if "DOCKER_HOST" in os.environ or Path("/var/run/docker.sock").exists():
        return None
    return f"unix://{private}" if private.exists() else None


@pytest.fixture
def api() -> Iterator[Any]:
    kwargs = docker.utils.kwargs_from_env()
    if url := _docker_url():
        kwargs["base_url"] = url
    try:
        client = docker.APIClient(**kwargs)
        client.ping()
    except Exception as exc:
        pytest.fail(f"no Docker engine reachable ({exc}); run bin/test or set DOCKER_HOST")
    yield client
    client.close()


@pytest.fixture
def image(api: Any, tmp_path: Path) -> str:
    """The suite's busybox, built FROM scratch if this engine lacks it."""
    if api.images(name=BUSYBOX):
        return BUSYBOX
    shutil.copy(shutil.which("busybox") or "/bin/busybox", tmp_path / "busybox")
    (tmp_path / "Dockerfile").write_text(
        'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
    )
    for chunk in api.build(path=str(tmp_path), tag=BUSYBOX, rm=True, decode=True):
        if "error" in chunk:
            pytest.fail(f"building {BUSYBOX}: {chunk['error']}")
    return BUSYBOX


def test_a_container_runs_inside_its_task_cgroup(api: Any, image: str) -> None:
    runtime = DockerRuntime(_docker_url())
    info = runtime.info()
    if info.cgroup_driver != "cgroupfs" or os.geteuid() != 0:
        pytest.skip(f"needs root and the cgroupfs driver (engine: {info.cgroup_driver})")
    cgroups = TaskCgroups.for_engine(info, enabled=True)
    task = f"dockyard-test-{secrets.token_hex(8)}"
    container_id = None
    try:
        parent = cgroups.create(task, 256, 64)
        assert parent == f"/ecs/{task}"
        container_id = runtime.create(
            ContainerSpec(
                name=task,
                image=image,
                labels={"dockyard-test": "1"},
                command=("sleep", "300"),
                cgroup_parent=parent,
            )
        )
        runtime.start(container_id)
        pid = api.inspect_container(container_id)["State"]["Pid"]

        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        if info.cgroup_version == "2":
            assert lines == [f"0::{parent}/{container_id}"]
            assert (ROOT / parent.lstrip("/") / "memory.max").read_text().strip() == str(64 * MIB)
        else:
            memory = next(line for line in lines if line.split(":")[1] == "memory")
            assert memory.split(":")[2] == f"{parent}/{container_id}"
            limit = ROOT / "memory" / parent.lstrip("/") / "memory.limit_in_bytes"
            assert int(limit.read_text()) == 64 * MIB
    finally:
        if container_id is not None:
            api.remove_container(container_id, force=True)
        cgroups.remove(task)
        runtime.close()
    layout = ("ecs",) if info.cgroup_version == "2" else ("memory/ecs", "cpu/ecs")
    assert not any((ROOT / where / task).exists() for where in layout)
