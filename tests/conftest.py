"""Session fixtures: one live server (SQLite) for the API tests, PostgreSQL on demand."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.live import LiveServer, live_server
from tests.postgres import running_postgres


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    with running_postgres() as url:
        yield url


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """One live server per backend: every API test runs on SQLite and on PostgreSQL."""
    yield from live_server(request, tmp_path_factory, "dockyard")


@pytest.fixture
def ecs(server: LiveServer) -> Any:
    """A boto3 ECS client on a freshly reset server."""
    server.reset()
    return server.client("ecs")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"
