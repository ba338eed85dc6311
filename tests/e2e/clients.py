"""The real clients the e2e tests drive: the docker CLI, skopeo, bash, a dockerd."""

from __future__ import annotations

import base64
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tests.live import KEY, REGION, SECRET, LiveServer

REPO_ROOT = Path(__file__).resolve().parents[2]
# Where bin/test starts its engine when none is reachable.
BIN_TEST_SOCKET = REPO_ROOT / ".dockyard" / "docker" / "docker.sock"


class CommandFailed(AssertionError):
    pass


def run(
    command: list[str],
    env: Mapping[str, str],
    *,
    input: str | None = None,
    check: bool = True,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run a client command; a failure shows its whole output in the test report."""
    result = subprocess.run(
        command, env=dict(env), input=input, capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        raise CommandFailed(
            f"{' '.join(command)} exited {result.returncode}\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )
    return result


@dataclass(frozen=True)
class Docker:
    """The docker CLI and skopeo with one engine (DOCKER_HOST) and one login store.

    DOCKER_CONFIG and REGISTRY_AUTH_FILE point into a private directory, so logins
    never touch the user's ~/.docker and a fresh directory means "not logged in".
    """

    env: Mapping[str, str] = field(repr=False)

    @property
    def host(self) -> str:
        return self.env["DOCKER_HOST"]

    def __call__(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return run(["docker", *args], self.env, **kwargs)

    def skopeo(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return run(["skopeo", *args], self.env, **kwargs)

    def bash(self, script: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """A shell line as a user types it, with the venv's ``aws`` on PATH."""
        return run(["bash", "-euo", "pipefail", "-c", script], self.env, **kwargs)

    def with_config(self, config_dir: Path) -> Docker:
        """The same engine with another (initially empty) login store."""
        config_dir.mkdir(parents=True, exist_ok=True)
        return replace(
            self,
            env={
                **self.env,
                "DOCKER_CONFIG": str(config_dir),
                "REGISTRY_AUTH_FILE": str(config_dir / "auth.json"),
            },
        )

    def on_engine(self, docker_host: str) -> Docker:
        """The same logins against another engine."""
        return replace(self, env={**self.env, "DOCKER_HOST": docker_host})

    def reachable(self) -> bool:
        return run(["docker", "info"], self.env, check=False, timeout=30).returncode == 0


def client_env(venv_bin: Path) -> dict[str, str]:
    """This process's environment plus the test credentials and the venv's ``aws``."""
    env = dict(os.environ, AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET)
    env.pop("AWS_PROFILE", None)
    env["PATH"] = f"{venv_bin}{os.pathsep}{env.get('PATH', '')}"
    env["DOCKER_BUILDKIT"] = "0"  # docker.io 20.10 has no buildx; same builder everywhere
    return env


def find_engine(base: Docker) -> Docker | None:
    """DOCKER_HOST if set, else the default socket, else the one bin/test starts."""
    if "DOCKER_HOST" in base.env:
        return base if base.reachable() else None
    for host in ("unix:///var/run/docker.sock", f"unix://{BIN_TEST_SOCKET}"):
        candidate = base.on_engine(host)
        if candidate.reachable():
            return candidate
    return None


@contextmanager
def private_engine(docker: Docker) -> Iterator[Docker]:
    """A throwaway dockerd with an empty image store: a pull from it is a real pull.

    It gets a bridge of its own and no iptables rules, leaving docker0 to the main
    engine. (``--bridge=none`` would not do: dockerd then deletes docker0, cutting
    the main engine's containers off.)
    """
    # A short exec root: containerd's socket path must fit in sun_path (108 bytes).
    root = Path(tempfile.mkdtemp(prefix="dyd-"))
    bridge = "dyd" + secrets.token_hex(4)  # interface names: 15 characters at most
    host = f"unix://{root}/docker.sock"
    subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], check=True)
    log = (root / "dockerd.log").open("wb")
    process = subprocess.Popen(
        [
            "dockerd",
            f"--host={host}",
            f"--data-root={root / 'data'}",
            f"--exec-root={root / 'x'}",
            f"--pidfile={root / 'dockerd.pid'}",
            *(f"--bridge={bridge}", "--iptables=false", "--ip6tables=false"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        engine = docker.on_engine(host)
        deadline = time.monotonic() + 60
        while not engine.reachable():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"private dockerd did not start:\n{(root / 'dockerd.log').read_text()[-3000:]}"
                )
            time.sleep(0.3)
        yield engine
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        subprocess.run(["ip", "link", "delete", bridge], check=False)
        shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class Registry:
    """Dockyard's registry as a user sees it: an address, ECR, and docker login."""

    server: LiveServer

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    @property
    def ecr(self) -> Any:
        return self.server.client("ecr")

    def create_repository(self, name: str, *args: str) -> None:
        created = self.server.aws("ecr", "create-repository", "--repository-name", name, *args)
        assert created.returncode == 0, created.stderr

    def password(self) -> str:
        token = self.ecr.get_authorization_token()["authorizationData"][0]
        user, _, password = base64.b64decode(token["authorizationToken"]).decode().partition(":")
        assert user == "AWS"
        return password

    def login(self, docker: Docker) -> None:
        """The modern flow, exactly as the ECR docs print it."""
        docker.bash(
            f"aws ecr get-login-password --region {REGION} --endpoint-url {self.server.endpoint}"
            f" | docker login --username AWS --password-stdin {self.address}"
        )


PUSHED = re.compile(r"digest: (sha256:[0-9a-f]{64}) size: (\d+)")


def pushed_digest(push_output: str) -> str:
    """The digest ``docker push`` prints on its last line."""
    match = PUSHED.search(push_output)
    assert match, f"no digest in docker push output:\n{push_output}"
    return match.group(1)
