"""Image cleanup: which images a cycle removes, and in what order, on the FakeRuntime
with a hand-turned clock; plus one image removed from the real Docker Engine."""

from __future__ import annotations

import asyncio
import io
import json
import os
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import docker
import pytest

from dockyard.agent.assignment import Assignment
from dockyard.agent.config import AgentConfig, ImagePullBehavior
from dockyard.agent.docker_runtime import DockerRuntime
from dockyard.agent.fake_runtime import FakeRuntime
from dockyard.agent.image_cleanup import USAGE_FILE, ImageCleaner, task_images
from dockyard.agent.runtime import ContainerSpec
from dockyard.agent.state import StateStore, TaskRecord
from dockyard.agent.status import TaskStatus

HOUR = 3600.0
NOW = 1_700_000_000.0
REGISTRY = "127.0.0.1:5000"


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def image(name: str) -> str:
    return f"{REGISTRY}/{name}:latest"


@dataclass
class Case:
    name: str
    used_hours_ago: dict[str, float]  # image -> when last seen in use (not at all: absent)
    removed: list[str]
    pulled: set[str] | None = None  # default: every image in used_hours_ago
    present: set[str] | None = None  # on the host; default: every pulled image
    in_use: set[str] = field(default_factory=set)
    config: dict[str, Any] = field(default_factory=dict)
    exclude: tuple[str, ...] = ()


CASES = [
    Case("unused for longer than the minimum age", {"a": 2}, removed=["a"]),
    Case("too young", {"a": 0.5}, removed=[]),
    Case("pulled, never seen before: its age starts now", {}, removed=[], pulled={"a"}),
    Case("in use", {"a": 5}, removed=[], in_use={"a"}),
    Case(
        "not pulled by the agent",
        {"a": 5, "b": 5},
        removed=["b"],
        pulled={"b"},
        present={"a", "b"},
    ),
    Case(
        "at most ECS_NUM_IMAGES_DELETE_PER_CYCLE, least recently used first",
        {f"i{n}": n + 2 for n in range(7)},
        removed=["i6", "i5", "i4", "i3", "i2"],
    ),
    Case(
        "least recently used first",
        {"a": 3, "b": 5, "c": 4},
        removed=["b", "c"],
        config={"num_images_delete_per_cycle": 2},
    ),
    Case(
        "an image already gone does not count towards the limit",
        {"gone": 9, "a": 3, "b": 2, "c": 1.5},
        removed=["a", "b"],
        present={"a", "b", "c"},
        config={"num_images_delete_per_cycle": 2},
    ),
    Case(
        "ECS_IMAGE_MINIMUM_CLEANUP_AGE",
        {"a": 0.5, "b": 0.2},
        removed=["a"],
        config={"image_minimum_cleanup_age": timedelta(minutes=20)},
    ),
    Case("excluded (a pause image)", {"a": 5}, removed=[], exclude=(image("a"),)),
    Case(
        "ECS_DISABLE_IMAGE_CLEANUP", {"a": 5}, removed=[], config={"image_cleanup_disabled": True}
    ),
    Case(
        "prefer-cached disables cleanup, as in the ECS agent",
        {"a": 5},
        removed=[],
        config={"image_pull_behavior": ImagePullBehavior.PREFER_CACHED},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_a_cycle_removes(case: Case, data_dir: Path) -> None:
    clock, runtime = Clock(), FakeRuntime()
    pulled = case.pulled if case.pulled is not None else set(case.used_hours_ago)
    present = case.present if case.present is not None else pulled
    for name in present:
        runtime.add_image(image(name))
    StateStore(data_dir).save_pulled_images({image(name) for name in pulled})
    config = AgentConfig(**case.config)
    cleaner = ImageCleaner(runtime, config, data_dir, clock, exclude=case.exclude)
    for name, hours in case.used_hours_ago.items():
        clock.now = NOW - hours * HOUR
        cleaner.touch([image(name)])
    clock.now = NOW

    removed = cleaner.run_once({image(name) for name in case.in_use})

    assert removed == [image(name) for name in case.removed]
    for name in present:
        assert runtime.has_image(image(name)) is (name not in case.removed)


def test_the_next_cycle_removes_the_rest(data_dir: Path) -> None:
    clock, runtime = Clock(NOW - 10 * HOUR), FakeRuntime()
    images = [image(f"i{n}") for n in range(7)]
    for name in images:
        runtime.add_image(name)
    StateStore(data_dir).save_pulled_images(set(images))
    cleaner = ImageCleaner(runtime, AgentConfig(), data_dir, clock)
    cleaner.touch(images)
    clock.now = NOW

    assert len(cleaner.run_once(set())) == 5
    assert len(cleaner.run_once(set())) == 2
    assert cleaner.run_once(set()) == []


def test_an_image_another_container_uses_is_skipped(data_dir: Path) -> None:
    """Docker refuses; the cycle goes on to the next image, and the refusal doesn't count."""
    clock, runtime = Clock(NOW - 5 * HOUR), FakeRuntime()
    for name in ("a", "b"):
        runtime.add_image(image(name))
    StateStore(data_dir).save_pulled_images({image("a"), image("b")})
    runtime.create(ContainerSpec(name="someone-elses", image=image("a"), labels={}))
    cleaner = ImageCleaner(
        runtime, AgentConfig(num_images_delete_per_cycle=1), data_dir, clock=clock
    )
    cleaner.touch([image("a")])
    clock.now += HOUR
    cleaner.touch([image("b")])
    clock.now = NOW

    assert cleaner.run_once(set()) == [image("b")]
    assert runtime.has_image(image("a"))


def test_last_used_times_survive_a_restart(data_dir: Path) -> None:
    clock, runtime = Clock(NOW - 5 * HOUR), FakeRuntime()
    runtime.add_image(image("a"))
    StateStore(data_dir).save_pulled_images({image("a")})
    first = ImageCleaner(runtime, AgentConfig(), data_dir, clock)
    first.run_once({image("a")})  # in use five hours ago; saved
    clock.now = NOW

    # Without the file the image would be "first seen" now, and kept.
    assert ImageCleaner(runtime, AgentConfig(), data_dir, clock).run_once(set()) == [image("a")]


def test_an_image_pulled_again_after_removal_starts_young(data_dir: Path) -> None:
    clock, runtime = Clock(NOW - 5 * HOUR), FakeRuntime()
    runtime.add_image(image("a"))
    StateStore(data_dir).save_pulled_images({image("a")})
    cleaner = ImageCleaner(runtime, AgentConfig(), data_dir, clock)
    cleaner.touch([image("a")])
    clock.now = NOW
    assert cleaner.run_once(set()) == [image("a")]

    runtime.add_image(image("a"))  # a task pulled it again
    clock.now = NOW + 0.5 * HOUR
    assert cleaner.run_once(set()) == []
    clock.now = NOW + 2 * HOUR
    assert cleaner.run_once(set()) == [image("a")]


def test_one_spelling_of_an_image_is_as_good_as_another(data_dir: Path) -> None:
    clock, runtime = Clock(NOW - 5 * HOUR), FakeRuntime()
    runtime.add_image(f"{REGISTRY}/app")
    StateStore(data_dir).save_pulled_images({f"{REGISTRY}/app"})
    cleaner = ImageCleaner(runtime, AgentConfig(), data_dir, clock)
    cleaner.touch([f"{REGISTRY}/app"])
    clock.now = NOW

    assert cleaner.run_once({f"{REGISTRY}/app:latest"}) == []
    clock.now += 2 * HOUR  # the use just now counts under either spelling
    assert cleaner.run_once(set()) == [f"{REGISTRY}/app:latest"]


def test_an_unreadable_usage_file_only_delays_cleanup(data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    (data_dir / USAGE_FILE).write_text("{not json")
    clock, runtime = Clock(), FakeRuntime()
    runtime.add_image(image("a"))
    StateStore(data_dir).save_pulled_images({image("a")})
    cleaner = ImageCleaner(runtime, AgentConfig(), data_dir, clock)

    assert cleaner.run_once(set()) == []
    clock.now += 2 * HOUR
    assert cleaner.run_once(set()) == [image("a")]
    assert json.loads((data_dir / USAGE_FILE).read_text())["lastUsedAt"] == {}


def test_task_images_are_those_of_saved_tasks(data_dir: Path) -> None:
    state = StateStore(data_dir)
    definition = {
        "containerDefinitions": [
            {"name": "web", "image": image("web")},
            {"name": "sidecar", "image": image("sidecar")},
        ],
        "networkMode": "awsvpc",  # adds a pause container with no image of its own
    }
    assignment = Assignment(
        task_arn="arn:aws:ecs:us-east-1:000000000000:task/default/t1",
        cluster_arn="arn:aws:ecs:us-east-1:000000000000:cluster/default",
        family="web",
        revision=1,
        desired_status=TaskStatus.RUNNING,
        definition=definition,
    )
    state.save(TaskRecord(assignment=assignment, desired=TaskStatus.RUNNING))

    assert task_images(state) == {image("web"), image("sidecar")}


def test_run_forever_samples_uses_and_cleans_each_interval(data_dir: Path) -> None:
    clock, runtime = Clock(NOW - 5 * HOUR), FakeRuntime()
    for name in ("a", "b"):
        runtime.add_image(image(name))
    StateStore(data_dir).save_pulled_images({image("a"), image("b")})
    config = AgentConfig(image_cleanup_interval=timedelta(seconds=0.2))
    cleaner = ImageCleaner(runtime, config, data_dir, clock)
    cleaner.touch([image("a"), image("b")])
    clock.now = NOW
    in_use = {image("a")}

    async def scenario() -> None:
        loop = asyncio.create_task(cleaner.run_forever(lambda: in_use, sample_every=0.05))
        await asyncio.sleep(0.1)  # a sample: "a" is in use now
        in_use.clear()
        clock.now = NOW + 0.5 * HOUR
        deadline = asyncio.get_running_loop().time() + 5
        while runtime.has_image(image("b")):
            assert asyncio.get_running_loop().time() < deadline, "b was never removed"
            await asyncio.sleep(0.02)
        loop.cancel()

    asyncio.run(scenario())

    assert not runtime.has_image(image("b"))
    assert runtime.has_image(image("a"))  # used half an hour ago: too young


def test_run_forever_returns_when_disabled(data_dir: Path) -> None:
    config = AgentConfig(image_cleanup_disabled=True)
    cleaner = ImageCleaner(FakeRuntime(), config, data_dir, Clock())
    asyncio.run(asyncio.wait_for(cleaner.run_forever(set), timeout=1))


# On Docker Engine ---------------------------------------------------------------------


def _docker_url() -> str | None:
    """DOCKER_HOST, the system socket, else the engine ``bin/test`` leaves running."""
    private = Path(__file__).resolve().parents[2] / ".dockyard" / "docker" / "docker.sock"
    if "DOCKER_HOST" in os.environ or Path("/var/run/docker.sock").exists():
        return None
    return f"unix://{private}" if private.exists() else None


@pytest.fixture
def docker_runtime() -> Iterator[tuple[DockerRuntime, Any]]:
    """The runtime under test, and a plain API client to build images with."""
    url = _docker_url()
    kwargs = docker.utils.kwargs_from_env()
    if url:
        kwargs["base_url"] = url
    try:
        api = docker.APIClient(**kwargs)
        api.ping()
    except Exception as exc:
        pytest.fail(f"no Docker engine reachable ({exc}); set DOCKER_HOST or run bin/test")
    runtime = DockerRuntime(url)
    yield runtime, api
    runtime.close()
    api.close()


def _build_throwaway(api: Any, tag: str) -> None:
    """A FROM scratch image of one small file: nothing to pull, quick to build."""
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, data in (
            ("Dockerfile", b"FROM scratch\nCOPY marker /marker\n"),
            ("marker", uuid.uuid4().hex.encode()),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    for chunk in api.build(fileobj=context, custom_context=True, tag=tag, rm=True, decode=True):
        assert "error" not in chunk, chunk


@pytest.mark.e2e
def test_docker_removes_an_old_pulled_image(
    docker_runtime: tuple[DockerRuntime, Any], data_dir: Path
) -> None:
    runtime, docker_api = docker_runtime
    tag = f"dockyard-test/cleanup-{uuid.uuid4().hex[:12]}:1"
    keep = f"dockyard-test/cleanup-{uuid.uuid4().hex[:12]}:1"
    _build_throwaway(docker_api, tag)
    _build_throwaway(docker_api, keep)
    try:
        StateStore(data_dir).save_pulled_images({tag})  # "keep" was not pulled by the agent
        clock = Clock(NOW - 2 * HOUR)
        cleaner = ImageCleaner(runtime, AgentConfig(), data_dir, clock)
        cleaner.touch([tag, keep])
        clock.now = NOW

        assert cleaner.run_once(set()) == [tag]
        assert not runtime.has_image(tag)
        assert runtime.has_image(keep)
    finally:
        runtime.remove_image(tag)
        runtime.remove_image(keep)
