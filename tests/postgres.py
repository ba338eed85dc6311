"""A throwaway PostgreSQL server for the test session.

`running_postgres()` starts a private server in a temporary directory on a free
loopback port and removes it afterwards; `fresh_database(url)` then gives each
test an empty database of its own. Set DOCKYARD_TEST_DATABASE_URL to use an
existing server instead. Missing binaries are an error, never a skip: a test run
that silently leaves out PostgreSQL proves nothing.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

ENV_URL = "DOCKYARD_TEST_DATABASE_URL"
DATABASE = "dockyard_test"
DEBIAN_INITDB = "/usr/lib/postgresql/*/bin/initdb"


def find_pg_bindir(debian_glob: str = DEBIAN_INITDB, path: str | None = None) -> Path:
    """The directory holding initdb and pg_ctl: Debian's newest version, else PATH.

    Debian keeps the server binaries off PATH, under /usr/lib/postgresql/<version>/bin.
    """

    def version(initdb: str) -> tuple[int, ...]:
        name = Path(initdb).parent.parent.name  # "15" or "9.6"
        return tuple(int(part) for part in name.split(".") if part.isdigit())

    found = sorted(glob.glob(debian_glob), key=version)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb", path=path)
    if on_path and shutil.which("pg_ctl", path=path):
        return Path(on_path).parent
    raise RuntimeError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: install the "
        "'postgresql' package (apt-get install postgresql), or point "
        f"{ENV_URL} at a server"
    )


def _run_as() -> list[str]:
    """Command prefix to run server binaries: initdb and postgres refuse to run as root."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise RuntimeError(
            "running as root, but there is no 'postgres' user to run the server as: "
            "install the 'postgresql' package"
        ) from None
    return ["runuser", "-u", "postgres", "--"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)


@contextlib.contextmanager
def running_postgres() -> Iterator[str]:
    """Yield the URL of a database on a private server; stop and delete it on exit."""
    if url := os.environ.get(ENV_URL):
        yield url
        return

    bindir = find_pg_bindir()
    run_as = _run_as()
    tmp = Path(tempfile.mkdtemp(prefix="dockyard-pg-"))
    data, log = tmp / "data", tmp / "server.log"
    try:
        if run_as:
            shutil.chown(tmp, user="postgres")
        # cwd=tmp: the postgres user may not be allowed into the caller's directory.
        initdb = [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]
        result = _run([*run_as, *initdb, "--no-sync"], tmp)
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{result.stdout}{result.stderr}")
        # The free port can be taken between probing and binding: retry a few times.
        started = False
        for _attempt in range(3):
            port = _free_port()
            socket_dir = shlex.quote(str(tmp))  # pg_ctl hands -o to a shell
            options = f"-k {socket_dir} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off"
            # -l: without a log file the server would hold our stdout pipe open.
            pg_ctl = [str(bindir / "pg_ctl"), "start", "-w", "-D", str(data)]
            result = _run([*run_as, *pg_ctl, "-l", str(log), "-o", options], tmp)
            started = result.returncode == 0
            if started:
                break
        if not started:
            server_log = log.read_text() if log.exists() else ""
            raise RuntimeError(f"pg_ctl start failed:\n{result.stderr}{server_log}")

        server = f"postgresql://postgres@127.0.0.1:{port}"
        with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
        yield f"{server}/{DATABASE}"
    finally:
        # Also after a failed start: a timed-out `pg_ctl -w` can leave a server behind.
        if (data / "postmaster.pid").exists():
            stop = [str(bindir / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(data)]
            _run([*run_as, *stop], tmp)
        shutil.rmtree(tmp, ignore_errors=True)


def fresh_database(url: str) -> str:
    """Create a new, empty, uniquely named database on url's server and return its URL.

    Databases are not dropped: they go away with the throwaway server.
    """
    name = f"{DATABASE}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))
