"""What the engine knows about its tasks, and its persistence in ECS_DATADIR.

``TaskRecord`` and ``ContainerRecord`` are frozen: the task's runner replaces them on
every change and saves the new record. Each task is one JSON file under
``<data_dir>/tasks/``, written to a temporary file and renamed over the old one
(``os.replace`` is atomic), so a ``kill -9`` leaves either the old or the new record,
never half of one. The runtime stays the truth for container status: after a restart
the engine re-reads every container, and the records only say which containers are
its own and what it had already reported.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockyard.agent.assignment import Assignment
from dockyard.agent.status import ContainerStatus, StopCode, TaskStatus

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
_SAFE = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class ContainerRecord:
    name: str
    runtime_id: str | None = None
    known: ContainerStatus = ContainerStatus.NONE
    exit_code: int | None = None
    reason: str | None = None
    health: str | None = None  # Docker's: starting | healthy | unhealthy
    started_at: float | None = None
    network_bindings: tuple[Mapping[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "runtimeId": self.runtime_id,
            "known": self.known.name,
            "exitCode": self.exit_code,
            "reason": self.reason,
            "health": self.health,
            "startedAt": self.started_at,
            "networkBindings": [dict(binding) for binding in self.network_bindings],
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ContainerRecord:
        return cls(
            name=doc["name"],
            runtime_id=doc.get("runtimeId"),
            known=ContainerStatus[doc["known"]],
            exit_code=doc.get("exitCode"),
            reason=doc.get("reason"),
            health=doc.get("health"),
            started_at=doc.get("startedAt"),
            network_bindings=tuple(doc.get("networkBindings") or ()),
        )


@dataclass(frozen=True)
class TaskRecord:
    assignment: Assignment
    desired: TaskStatus
    known: TaskStatus = TaskStatus.PENDING
    containers: tuple[ContainerRecord, ...] = ()
    stop_code: StopCode | None = None
    stopped_reason: str | None = None
    pull_started_at: float | None = None
    pull_stopped_at: float | None = None
    execution_stopped_at: float | None = None
    stopped_at: float | None = None  # known STOPPED since; the cleanup wait counts from it

    @property
    def task_arn(self) -> str:
        return self.assignment.task_arn

    def container(self, name: str) -> ContainerRecord:
        return next(c for c in self.containers if c.name == name)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "assignment": self.assignment.to_wire(),
            "desired": self.desired.name,
            "known": self.known.name,
            "containers": [container.to_json() for container in self.containers],
            "stopCode": self.stop_code.value if self.stop_code else None,
            "stoppedReason": self.stopped_reason,
            "pullStartedAt": self.pull_started_at,
            "pullStoppedAt": self.pull_stopped_at,
            "executionStoppedAt": self.execution_stopped_at,
            "stoppedAt": self.stopped_at,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> TaskRecord:
        if doc.get("version") != FORMAT_VERSION:
            raise ValueError(f"unsupported state format version {doc.get('version')!r}")
        stop_code = doc.get("stopCode")
        return cls(
            assignment=Assignment.from_wire(doc["assignment"]),
            desired=TaskStatus[doc["desired"]],
            known=TaskStatus[doc["known"]],
            containers=tuple(ContainerRecord.from_json(c) for c in doc["containers"]),
            stop_code=StopCode(stop_code) if stop_code else None,
            stopped_reason=doc.get("stoppedReason"),
            pull_started_at=doc.get("pullStartedAt"),
            pull_stopped_at=doc.get("pullStoppedAt"),
            execution_stopped_at=doc.get("executionStoppedAt"),
            stopped_at=doc.get("stoppedAt"),
        )


class StateStore:
    """One JSON file per task under ``<data_dir>/tasks``, plus the images this agent
    pulled (for ECS_IMAGE_PULL_BEHAVIOR=once)."""

    def __init__(self, data_dir: Path) -> None:
        self._tasks = data_dir / "tasks"
        self._images = data_dir / "pulled-images.json"

    def load(self) -> list[TaskRecord]:
        """Every saved task; an unreadable file is logged and skipped, not fatal."""
        records = []
        for path in sorted(self._tasks.glob("*.json")) if self._tasks.is_dir() else ():
            try:
                records.append(TaskRecord.from_json(json.loads(path.read_text())))
            except (OSError, ValueError, KeyError, TypeError) as error:
                log.error("ignoring unreadable task state %s: %s", path, error)
        return records

    def save(self, record: TaskRecord) -> None:
        _write_atomically(self._path(record.task_arn), record.to_json())

    def delete(self, task_arn: str) -> None:
        self._path(task_arn).unlink(missing_ok=True)

    def load_pulled_images(self) -> set[str]:
        try:
            return set(json.loads(self._images.read_text()))
        except FileNotFoundError:
            return set()
        except (OSError, ValueError, TypeError) as error:
            log.error("ignoring unreadable %s: %s", self._images, error)
            return set()

    def save_pulled_images(self, images: set[str]) -> None:
        _write_atomically(self._images, sorted(images))

    def _path(self, task_arn: str) -> Path:
        # The task id keeps the name readable; the hash keeps distinct ARNs distinct.
        task_id = _SAFE.sub("_", task_arn.rsplit("/", 1)[-1])[:64]
        digest = hashlib.sha256(task_arn.encode()).hexdigest()[:12]
        return self._tasks / f"{task_id}-{digest}.json"


class PulledImages:
    """The images this agent pulled (ECS_IMAGE_PULL_BEHAVIOR=once), kept across restarts."""

    def __init__(self, store: StateStore) -> None:
        self._store = store
        self._images = store.load_pulled_images()

    def __contains__(self, image: object) -> bool:
        return image in self._images

    def add(self, image: str) -> None:
        if image in self._images:
            return
        self._images.add(image)
        try:
            self._store.save_pulled_images(self._images)
        except OSError:
            log.exception("cannot save the list of pulled images")


def _write_atomically(path: Path, document: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as file:
            json.dump(document, file, separators=(",", ":"))
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
