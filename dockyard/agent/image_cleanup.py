"""Removing images this agent pulled and no task uses any more, as the ECS agent does.

Every ECS_IMAGE_CLEANUP_INTERVAL (unless ECS_DISABLE_IMAGE_CLEANUP, or
ECS_IMAGE_PULL_BEHAVIOR=prefer-cached, which the ECS agent also takes to mean "keep
images"), a cycle removes up to ECS_NUM_IMAGES_DELETE_PER_CYCLE images, least recently
used first, among those that:

- this agent pulled (state.py's pulled-images list): images a user pulled or built by
  hand are never touched, nor those in ``exclude`` (a pause image);
- no task the agent holds uses (a stopped task holds its images until its cleanup);
- were last used (or, if never seen in use, first seen) ECS_IMAGE_MINIMUM_CLEANUP_AGE
  ago or more.

An image already gone does not count towards the limit; one that Docker refuses to
remove (a container, ours or not, uses it) is skipped until a later cycle. Last-used
times are kept in ``<ECS_DATADIR>/image-usage.json``, so a restart does not make every
image young again. Image names are compared in one spelling (``app`` is ``app:latest``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Final

from dockyard.agent.config import AgentConfig, ImagePullBehavior
from dockyard.agent.runtime import ContainerRuntime, EngineError
from dockyard.agent.state import StateStore

log = logging.getLogger(__name__)

USAGE_FILE: Final = "image-usage.json"
SAMPLE_EVERY: Final = 60.0  # seconds between samples of which images tasks use


def normalize(image: str) -> str:
    """One spelling per image: no tag means ``latest``."""
    last = image.rsplit("/", 1)[-1]
    return image if "@" in image or ":" in last else f"{image}:latest"


def task_images(state: StateStore) -> set[str]:
    """The images of every task the agent holds (saved in ECS_DATADIR)."""
    return {
        normalize(str(container["image"]))
        for record in state.load()
        for container in record.assignment.definition.get("containerDefinitions") or ()
        if container.get("image")
    }


class ImageCleaner:
    def __init__(
        self,
        runtime: ContainerRuntime,
        config: AgentConfig,
        data_dir: Path,
        clock: Callable[[], float] = time.time,
        *,
        exclude: Iterable[str] = (),
    ) -> None:
        self._runtime, self._config, self._clock = runtime, config, clock
        self._state = StateStore(data_dir)
        self._path = data_dir / USAGE_FILE
        self._exclude = {normalize(image) for image in exclude}
        self._last_used = self._load()

    @property
    def enabled(self) -> bool:
        config = self._config
        return not (
            config.image_cleanup_disabled
            or config.image_pull_behavior is ImagePullBehavior.PREFER_CACHED
        )

    def touch(self, images: Iterable[str]) -> None:
        """Record ``images`` as in use now."""
        now = self._clock()
        for image in images:
            self._last_used[normalize(image)] = now

    def run_once(self, in_use: set[str]) -> list[str]:
        """One cycle, with ``in_use`` the images tasks use now; returns those removed."""
        if not self.enabled:
            return []
        self.touch(in_use)
        busy = {normalize(image) for image in in_use}
        now = self._clock()
        pulled = {normalize(image) for image in self._state.load_pulled_images()}
        for image in pulled:
            self._last_used.setdefault(image, now)  # first seen: its age starts now
        age = self._config.image_minimum_cleanup_age.total_seconds()
        candidates = sorted(
            (used, image)
            for image, used in self._last_used.items()
            if image in pulled
            and image not in busy
            and image not in self._exclude
            and now - used >= age
        )
        removed: list[str] = []
        for _, image in candidates:
            if len(removed) >= self._config.num_images_delete_per_cycle:
                break
            try:
                if not self._runtime.has_image(image):
                    self._last_used.pop(image, None)
                    continue
                self._runtime.remove_image(image)
            except EngineError as error:  # a container uses it, most likely
                log.info("keeping image %s: %s", image, error.reason)
                continue
            self._last_used.pop(image, None)  # pulled again later: young again
            removed.append(image)
        self._save()
        return removed

    async def run_forever(
        self, in_use: Callable[[], set[str]], sample_every: float = SAMPLE_EVERY
    ) -> None:
        """Sample the images in use every ``sample_every`` seconds and clean every
        ECS_IMAGE_CLEANUP_INTERVAL; returns at once when cleanup is disabled."""
        if not self.enabled:
            return
        loop = asyncio.get_running_loop()
        interval = self._config.image_cleanup_interval.total_seconds()
        next_cycle = loop.time() + interval
        while True:
            try:
                if loop.time() >= next_cycle:
                    next_cycle = loop.time() + interval
                    removed = await asyncio.to_thread(self.run_once, in_use())
                    if removed:
                        log.info("removed unused images: %s", ", ".join(removed))
                else:
                    self.touch(in_use())
            except Exception:
                log.exception("image cleanup failed; trying again next interval")
            await asyncio.sleep(max(0.0, min(sample_every, next_cycle - loop.time())))

    def _load(self) -> dict[str, float]:
        try:
            document = json.loads(self._path.read_text())
            return {str(k): float(v) for k, v in document["lastUsedAt"].items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            log.warning("ignoring unreadable %s: %s", self._path, error)
            return {}

    def _save(self) -> None:
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self._path.with_suffix(".tmp")
            temporary.write_text(json.dumps({"lastUsedAt": self._last_used}, sort_keys=True))
            os.replace(temporary, self._path)  # atomic: the old times or the new ones
        except OSError:
            log.exception("cannot save %s", self._path)
