"""A cgroup per task, so task-level cpu/memory limit the task's containers together.

What the ECS agent does on Linux (ECS_ENABLE_TASK_CPU_MEM_LIMIT): before a task's first
container, make ``/ecs/<task id>`` with the task's limits and create every container of
the task with it as Docker's cgroup parent. Limits are hierarchical, so the containers
share the task's memory and cpu however they split it.

Docker names the parent for its cgroup driver: with ``cgroupfs`` it is a path under each
hierarchy, which is what this writes. With the ``systemd`` driver the parent must be a
slice that systemd owns; that is left out, and so are hosts where the tree is not
writable (rootless or sandboxed engines). Then ``create`` returns None and docker_spec
caps each container at the task's size instead.

Layouts, under ``root`` (normally /sys/fs/cgroup)::

    v1: memory/ecs/<id>/memory.limit_in_bytes
        cpu/ecs/<id>/cpu.cfs_period_us, cpu.cfs_quota_us
    v2: ecs/<id>/memory.max, cpu.max   (``+memory +cpu`` in the parents' subtree_control)
"""

from __future__ import annotations

import errno
import logging
import re
from pathlib import Path
from typing import Final

from dockyard.agent.runtime import EngineInfo

log = logging.getLogger(__name__)

ROOT: Final = Path("/sys/fs/cgroup")
PARENT: Final = "ecs"
CPU_PERIOD_US: Final = 100_000
MIN_CPU_QUOTA_US: Final = 1_000  # the kernel refuses less
MIB: Final = 1 << 20
_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]+$")
_V2_CONTROLLERS: Final = ("memory", "cpu")


class TaskCgroups:
    """Task cgroups under ``root`` for cgroup ``version`` 1 or 2; ``enabled`` False (or
    another version) makes every ``create`` return None."""

    def __init__(self, root: Path = ROOT, version: int | None = None, enabled: bool = True) -> None:
        self._root = root
        self._version = version
        self._enabled = enabled
        self._parents: dict[str, str] = {}
        self._warned = False

    @classmethod
    def for_engine(cls, info: EngineInfo, enabled: bool, root: Path = ROOT) -> TaskCgroups:
        """Task cgroups matching the engine's cgroup driver and version; disabled (with a
        warning) where the engine's cgroups are not plain paths under ``root``."""
        instance = cls(root, _version(info.cgroup_version), enabled)
        if enabled and (info.cgroup_driver != "cgroupfs" or instance._version is None):
            instance._enabled = False
            instance._warn(
                f"the engine's cgroup driver is {info.cgroup_driver or 'unknown'} "
                f"(cgroup version {info.cgroup_version or 'unknown'}); only cgroupfs on v1 or v2 "
                "is supported"
            )
        return instance

    def create(self, task_id: str, cpu_units: int | None, memory_mib: int | None) -> str | None:
        """Make (or update: a restarted agent calls this again) the task's cgroup with its
        limits; returns the cgroup parent to give Docker, ``/ecs/<task id>``. None when
        disabled, when the task sets neither limit, or when the tree cannot be written
        (logged once): the caller then falls back to per-container limits."""
        if not self._enabled or (cpu_units is None and memory_mib is None):
            return None
        if not _SAFE_ID.match(task_id):
            self._warn(f"task id {task_id!r} cannot name a cgroup")
            return None
        try:
            if self._version == 1:
                self._create_v1(task_id, cpu_units, memory_mib)
            elif self._version == 2:
                self._create_v2(task_id, cpu_units, memory_mib)
            else:
                return None
        except OSError as error:
            self._warn(f"cannot set up the cgroup of task {task_id}: {error}")
            return None
        parent = f"/{PARENT}/{task_id}"
        self._parents[task_id] = parent
        return parent

    def parent(self, task_id: str) -> str | None:
        """The parent ``create`` returned for this task in this process, if any."""
        return self._parents.get(task_id)

    def remove(self, task_id: str) -> None:
        """Remove the task's cgroup, once its containers are removed. Absent is fine; one
        still busy (a container not yet gone) is left, with a log line; never raises."""
        self._parents.pop(task_id, None)
        if not self._enabled or not _SAFE_ID.match(task_id):
            return
        for path in self._task_dirs(task_id):
            try:
                path.rmdir()
            except FileNotFoundError:
                pass
            except OSError as error:  # never fails the cleanup it is part of
                if error.errno in (errno.EBUSY, errno.ENOTEMPTY):
                    log.info("cgroup %s is still in use; leaving it", path)
                else:
                    log.warning("cannot remove cgroup %s: %s", path, error)

    # Internals ----------------------------------------------------------------------

    def _task_dirs(self, task_id: str) -> list[Path]:
        if self._version == 1:
            return [self._root / c / PARENT / task_id for c in ("memory", "cpu")]
        if self._version == 2:
            return [self._root / PARENT / task_id]
        return []

    def _create_v1(self, task_id: str, cpu_units: int | None, memory_mib: int | None) -> None:
        memory, cpu = (_task_dir(self._root / c, task_id) for c in ("memory", "cpu"))
        if memory_mib is not None:
            (memory / "memory.limit_in_bytes").write_text(str(memory_mib * MIB))
        if cpu_units is not None:
            (cpu / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US))
            (cpu / "cpu.cfs_quota_us").write_text(str(_quota(cpu_units)))

    def _create_v2(self, task_id: str, cpu_units: int | None, memory_mib: int | None) -> None:
        if not (self._root / "cgroup.controllers").is_file():
            raise FileNotFoundError(errno.ENOENT, "not a cgroup v2 root", str(self._root))
        # A cgroup has a controller's files only if every ancestor delegates it.
        _delegate(self._root)
        (self._root / PARENT).mkdir(exist_ok=True)
        _delegate(self._root / PARENT)
        task = self._root / PARENT / task_id
        task.mkdir(exist_ok=True)
        if memory_mib is not None:
            (task / "memory.max").write_text(str(memory_mib * MIB))
        if cpu_units is not None:
            (task / "cpu.max").write_text(f"{_quota(cpu_units)} {CPU_PERIOD_US}")

    def _warn(self, problem: str) -> None:
        # Once per agent: every task would say the same.
        if self._warned:
            log.debug("no task cgroup: %s", problem)
            return
        self._warned = True
        log.warning(
            "task-level cpu/memory fall back to per-container limits (containers of one "
            "task can together exceed the task): %s",
            problem,
        )


def _task_dir(hierarchy: Path, task_id: str) -> Path:
    # The hierarchy must already be mounted: mkdir -p would make a cgroup named "memory".
    if not hierarchy.is_dir():
        raise FileNotFoundError(errno.ENOENT, "no such cgroup hierarchy", str(hierarchy))
    task = hierarchy / PARENT / task_id
    task.mkdir(parents=True, exist_ok=True)
    return task


def _quota(cpu_units: int) -> int:
    return max(cpu_units * CPU_PERIOD_US // 1024, MIN_CPU_QUOTA_US)


def _delegate(cgroup: Path) -> None:
    control = cgroup / "cgroup.subtree_control"
    enabled = set(control.read_text().split()) if control.exists() else set()
    missing = [c for c in _V2_CONTROLLERS if c not in enabled and f"+{c}" not in enabled]
    if missing:
        control.write_text(" ".join(f"+{c}" for c in missing))


def _version(text: str | None) -> int | None:
    return {"1": 1, "2": 2}.get(text or "")
