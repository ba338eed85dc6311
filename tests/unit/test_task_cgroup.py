"""Task cgroups on a temporary directory laid out like /sys/fs/cgroup (v1 and v2)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from dockyard.agent.runtime import EngineInfo
from dockyard.agent.task_cgroup import TaskCgroups

TASK = "0123456789abcdef0123456789abcdef"
MIB = 1 << 20


def v1_root(tmp_path: Path) -> Path:
    for hierarchy in ("memory", "cpu", "pids"):
        (tmp_path / hierarchy).mkdir()
    return tmp_path


def v2_root(tmp_path: Path) -> Path:
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("memory\n")
    return tmp_path


def read(path: Path) -> str:
    return path.read_text().strip()


def forget_files(*dirs: Path) -> None:
    """What the kernel does on rmdir: a cgroup's control files go with it."""
    for directory in dirs:
        for file in directory.iterdir():
            if file.is_file():
                file.unlink()


@pytest.mark.parametrize(
    ("cpu", "memory", "quota", "limit"),
    [
        pytest.param(512, 256, "50000", str(256 * MIB), id="half a cpu, 256 MiB"),
        pytest.param(2048, None, "200000", None, id="two cpus, no memory"),
        pytest.param(1, 64, "1000", str(64 * MIB), id="tiny cpu is raised to the kernel's floor"),
        pytest.param(None, 64, None, str(64 * MIB), id="no cpu: no quota"),
    ],
)
def test_v1_writes_the_limits(
    tmp_path: Path, cpu: int | None, memory: int | None, quota: str | None, limit: str | None
) -> None:
    cgroups = TaskCgroups(v1_root(tmp_path), version=1)

    assert cgroups.create(TASK, cpu, memory) == f"/ecs/{TASK}"

    memory_dir, cpu_dir = tmp_path / "memory/ecs" / TASK, tmp_path / "cpu/ecs" / TASK
    assert memory_dir.is_dir() and cpu_dir.is_dir()
    limit_file = memory_dir / "memory.limit_in_bytes"
    assert (read(limit_file) if limit_file.exists() else None) == limit
    quota_file = cpu_dir / "cpu.cfs_quota_us"
    assert (read(quota_file) if quota_file.exists() else None) == quota
    if quota is not None:
        assert read(cpu_dir / "cpu.cfs_period_us") == "100000"
    assert not (tmp_path / "pids/ecs").exists()  # Docker makes the other hierarchies' dirs
    assert cgroups.parent(TASK) == f"/ecs/{TASK}"


def test_v2_writes_the_limits_and_delegates_the_controllers(tmp_path: Path) -> None:
    cgroups = TaskCgroups(v2_root(tmp_path), version=2)

    assert cgroups.create(TASK, 1536, 512) == f"/ecs/{TASK}"

    task = tmp_path / "ecs" / TASK
    assert read(task / "memory.max") == str(512 * MIB)
    assert read(task / "cpu.max") == "150000 100000"
    assert read(tmp_path / "cgroup.subtree_control") == "+cpu"  # memory was on already
    assert set(read(tmp_path / "ecs/cgroup.subtree_control").split()) == {"+memory", "+cpu"}


def test_v2_without_cpu_leaves_cpu_max_alone(tmp_path: Path) -> None:
    cgroups = TaskCgroups(v2_root(tmp_path), version=2)
    assert cgroups.create(TASK, None, 128) is not None
    assert not (tmp_path / "ecs" / TASK / "cpu.max").exists()


@pytest.mark.parametrize("version", [1, 2])
def test_create_again_is_harmless(tmp_path: Path, version: int) -> None:
    root = v1_root(tmp_path) if version == 1 else v2_root(tmp_path)
    first = TaskCgroups(root, version=version).create(TASK, 256, 64)
    # A restarted agent: a new TaskCgroups, the same task.
    again = TaskCgroups(root, version=version)
    assert again.create(TASK, 256, 64) == first
    assert again.parent(TASK) == first
    limit = "memory/ecs" if version == 1 else "ecs"
    name = "memory.limit_in_bytes" if version == 1 else "memory.max"
    assert read(root / limit / TASK / name) == str(64 * MIB)


@pytest.mark.parametrize(
    ("cgroups", "cpu", "memory"),
    [
        pytest.param(TaskCgroups(version=1, enabled=False), 256, 64, id="disabled"),
        pytest.param(TaskCgroups(version=None), 256, 64, id="unknown version"),
        pytest.param(TaskCgroups(version=1), None, None, id="no task-level size"),
    ],
)
def test_create_returns_none(cgroups: TaskCgroups, cpu: int | None, memory: int | None) -> None:
    assert cgroups.create(TASK, cpu, memory) is None
    assert cgroups.parent(TASK) is None


def test_an_unwritable_tree_falls_back_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cgroups = TaskCgroups(tmp_path, version=1)  # no memory/ or cpu/ hierarchy mounted
    with caplog.at_level(logging.WARNING):
        assert cgroups.create(TASK, 256, 64) is None
        assert cgroups.create("another-task", 256, 64) is None
    assert len(caplog.records) == 1
    assert "per-container limits" in caplog.records[0].getMessage()
    assert not (tmp_path / "memory").exists()  # never a cgroup named "memory"


def test_v2_needs_a_v2_root(tmp_path: Path) -> None:
    assert TaskCgroups(tmp_path, version=2).create(TASK, 256, 64) is None
    assert not (tmp_path / "ecs").exists()


def test_a_task_id_that_is_not_a_name_is_refused(tmp_path: Path) -> None:
    cgroups = TaskCgroups(v1_root(tmp_path), version=1)
    assert cgroups.create("../escape", 256, 64) is None
    assert not (tmp_path / "memory/escape").exists()


@pytest.mark.parametrize("version", [1, 2])
def test_remove(tmp_path: Path, version: int) -> None:
    root = v1_root(tmp_path) if version == 1 else v2_root(tmp_path)
    cgroups = TaskCgroups(root, version=version)
    cgroups.create(TASK, 256, 64)
    dirs = (
        [root / "memory/ecs" / TASK, root / "cpu/ecs" / TASK]
        if version == 1
        else [root / "ecs" / TASK]
    )
    forget_files(*dirs)

    cgroups.remove(TASK)

    assert not any(d.exists() for d in dirs)
    assert cgroups.parent(TASK) is None
    cgroups.remove(TASK)  # gone already: fine


def test_remove_leaves_a_cgroup_still_in_use(tmp_path: Path) -> None:
    cgroups = TaskCgroups(v1_root(tmp_path), version=1)
    cgroups.create(TASK, None, 64)
    memory = tmp_path / "memory/ecs" / TASK
    (memory / "a-container").mkdir()  # a container's cgroup not yet gone

    cgroups.remove(TASK)  # no error

    assert memory.is_dir()
    assert not (tmp_path / "cpu/ecs" / TASK).exists()


def info(driver: str | None, version: str | None) -> EngineInfo:
    return EngineInfo(4, 8 << 30, "24.0.7", "1.43", "linux", "x86_64", (), driver, version)


@pytest.mark.parametrize(
    ("driver", "version", "made"),
    [
        pytest.param("cgroupfs", "1", True, id="cgroupfs v1"),
        pytest.param("cgroupfs", "2", True, id="cgroupfs v2"),
        pytest.param("systemd", "2", False, id="systemd: parents are slices"),
        pytest.param(None, None, False, id="an engine that does not say"),
    ],
)
def test_for_engine_follows_the_engines_driver(
    tmp_path: Path, driver: str | None, version: str | None, made: bool
) -> None:
    root = v2_root(tmp_path) if version == "2" else v1_root(tmp_path)
    cgroups = TaskCgroups.for_engine(info(driver, version), enabled=True, root=root)
    assert (cgroups.create(TASK, 256, 64) is not None) is made


def test_for_engine_disabled_by_config_says_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        cgroups = TaskCgroups.for_engine(info("systemd", "2"), enabled=False, root=tmp_path)
        assert cgroups.create(TASK, 256, 64) is None
    assert not caplog.records
