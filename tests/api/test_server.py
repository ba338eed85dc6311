"""The server as an operator runs it: restarts, backends, identities, account id, reset."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.live import LiveServer, free_port
from tests.postgres import fresh_database


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "sqlite":
        return None
    return fresh_database(request.getfixturevalue("postgres_server"))


@pytest.fixture
def own_server(data_dir: Path, database_url: str | None) -> Iterator[LiveServer]:
    live = LiveServer(data_dir, database_url).start()
    yield live
    live.stop()


def test_state_survives_a_restart(own_server: LiveServer) -> None:
    ecs = own_server.client()
    ecs.create_cluster(clusterName="MyCluster", tags=[{"key": "a", "value": "b"}])
    ecs.register_task_definition(
        family="web", containerDefinitions=[{"name": "w", "image": "nginx", "memory": 64}]
    )
    own_server.restart()
    ecs = own_server.client()
    cluster = ecs.describe_clusters(clusters=["MyCluster"], include=["TAGS"])["clusters"][0]
    assert cluster["tags"] == [{"key": "a", "value": "b"}]
    registered = ecs.register_task_definition(
        family="web", containerDefinitions=[{"name": "w", "image": "nginx", "memory": 64}]
    )
    assert registered["taskDefinition"]["revision"] == 2


def test_account_id_and_identities_from_flags_and_file(data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    (data_dir / "identities.json").write_text(
        json.dumps([{"access_key_id": "AKIAFILE", "secret_access_key": "s3cret", "admin": True}])
    )
    live = LiveServer(
        data_dir, None, "--account-id", "123456789012", "--identity", "ci:cisecret:ci:user"
    ).start()
    try:
        ci = live.client(key="ci", secret="cisecret")
        arn = ci.create_cluster(clusterName="c")["cluster"]["clusterArn"]
        assert arn == "arn:aws:ecs:eu-west-1:123456789012:cluster/c"
        from_file = live.client(key="AKIAFILE", secret="s3cret")
        assert from_file.list_clusters()["clusterArns"] == [arn]

        refused = live.signed_post("/_dockyard/reset", b"", key="ci", secret="cisecret")
        assert refused.status_code == 403
        assert refused.json()["__type"] == "AccessDeniedException"
        assert from_file.list_clusters()["clusterArns"] == [arn]

        allowed = live.signed_post("/_dockyard/reset", b"", key="AKIAFILE", secret="s3cret")
        assert allowed.status_code == 200
        assert from_file.list_clusters()["clusterArns"] == []
    finally:
        live.stop()


def test_reset_needs_a_signature(server: LiveServer) -> None:
    response = httpx.post(server.endpoint + "/_dockyard/reset")
    assert response.status_code == 403
    assert response.json()["__type"] == "MissingAuthenticationTokenException"


def test_bad_flags_are_explained(data_dir: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dockyard.cli",
            "server",
            "--data-dir",
            str(data_dir),
            "--account-id",
            "12",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "--account-id" in result.stderr


def test_dockyard_up_starts_with_embedded_defaults(tmp_path: Path) -> None:
    port = free_port()
    dockyard = Path(sys.executable).with_name("dockyard")
    process = subprocess.Popen(
        [str(dockyard), "up", "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("dockyard up did not answer /health")
        assert (tmp_path / ".dockyard" / "dockyard.db").exists()
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=20)
    assert f"http://127.0.0.1:{port}" in output
    assert "AWS_ACCESS_KEY_ID=test" in output
