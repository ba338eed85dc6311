"""A real Dockyard server in a subprocess, on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from tests import shapecheck
from tests.postgres import fresh_database

REGION = "eu-west-1"
KEY, SECRET = "test", "test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """``dockyard server`` as a user starts it; ``restart`` keeps the data dir."""

    def __init__(self, data_dir: Path, database_url: str | None = None, *extra: str) -> None:
        self.data_dir = data_dir
        self.database_url = database_url
        self.extra = extra
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir / "server.log"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, "-m", "dockyard.cli", "server", "--port", str(self.port)]
        args += ["--data-dir", str(self.data_dir), *self.extra]
        if self.database_url:
            args += ["--database-url", self.database_url]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.endpoint}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not start: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def client(self, service: str = "ecs", region: str = REGION, **kwargs: Any) -> Any:
        """A boto3 client whose every response is checked against the output shape."""
        client = boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=region,
            aws_access_key_id=kwargs.pop("key", KEY),
            aws_secret_access_key=kwargs.pop("secret", SECRET),
            config=Config(retries={"max_attempts": 1}, **kwargs),
        )
        shapecheck.install(client)
        return client

    def signed_post(
        self,
        path: str,
        body: bytes,
        headers: dict[str, str] | None = None,
        *,
        key: str = KEY,
        secret: str = SECRET,
        region: str = REGION,
        service: str = "ecs",
    ) -> httpx.Response:
        """POST raw bytes, SigV4-signed as botocore signs, for requests boto3 won't send."""
        request = AWSRequest(method="POST", url=self.endpoint + path, data=body, headers=headers)
        SigV4Auth(Credentials(key, secret), service, region).add_auth(request)
        return httpx.post(self.endpoint + path, content=body, headers=dict(request.headers))

    def reset(self) -> None:
        response = self.signed_post("/_dockyard/reset", b"")
        assert response.status_code == 200, response.text

    def aws(self, *args: str, region: str = REGION) -> subprocess.CompletedProcess[str]:
        """The AWS CLI v1, as a user runs it."""
        env = dict(os.environ, AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET)
        env.pop("AWS_PROFILE", None)
        aws = Path(sys.executable).with_name("aws")
        command = [str(aws), *args, "--region", region, "--endpoint-url", self.endpoint]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def live_server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    *flags: str,
) -> Iterator[LiveServer]:
    """Body of a fixture parametrized over ["sqlite", "postgresql"]: a started server
    on that backend (a fresh PostgreSQL database each time), stopped afterwards."""
    database_url = None
    if request.param == "postgresql":
        database_url = fresh_database(request.getfixturevalue("postgres_server"))
    data_dir = tmp_path_factory.mktemp(f"{name}-{request.param}")
    live = LiveServer(data_dir, database_url, *flags).start()
    yield live
    live.stop()
