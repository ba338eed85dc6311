"""Registry throughput: Dockyard against distribution 2.8, same machine, same clients.

    .venv/bin/python bench/registry/run.py [--blob-mib 1024] [--layers 10]
                                           [--layer-mib 20] [--repeat 3]

Starts ``dockyard server`` (SQLite, filesystem blobs) and Debian's ``docker-registry``
(filesystem storage, no auth) on loopback ports in one temporary directory, then
measures, alternating between the two so that drift hits both alike:

- a raw blob push (POST, one PATCH streamed from a file, PUT ?digest=) and pull (GET,
  read and dropped) with the standard library's http.client, which costs little CPU
  next to either server;
- an image of N random uncompressed layers in an OCI layout, pushed and pulled with
  ``skopeo copy`` (parallel blob transfers, as real clients do). Every repetition has
  fresh layers: skopeo remembers where it saw a blob and would mount it instead.

Prints the median MB/s (10^6 bytes per second) of each and the ratio
Dockyard/distribution against the goals (pull >= 1.0x, push >= 0.9x).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # run as a script: tests/ has the server harness

from tests.e2e.oci_layout import Layout, tar_of  # noqa: E402
from tests.live import LiveServer, free_port  # noqa: E402

MIB = 1 << 20
GIB = 1 << 30
IO_BLOCK = MIB
GOALS = {"push": 0.9, "pull": 1.0}
DISTRIBUTION = "/usr/bin/docker-registry"
DISTRIBUTION_CONFIG = """\
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""


@dataclass
class Target:
    """One registry under test: where it is, its credentials, how to make a repo."""

    name: str
    address: str
    pid: int  # the server process, for its CPU time
    creds: str | None = None  # USER:PASSWORD, or None for no authentication
    create_repository: Callable[[str], None] = lambda _name: None

    @property
    def headers(self) -> dict[str, str]:
        if self.creds is None:
            return {}
        return {"Authorization": "Basic " + base64.b64encode(self.creds.encode()).decode()}

    def skopeo_flags(self, side: str) -> list[str]:
        """skopeo copy's flags for this registry as the "src" or "dest" side."""
        flags = [f"--{side}-tls-verify=false"]
        return flags + ([f"--{side}-creds={self.creds}"] if self.creds else [])


@dataclass
class Results:
    """Wall-clock and server CPU seconds per run, by (operation, target name)."""

    seconds: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    cpu: dict[tuple[str, str], list[float]] = field(default_factory=dict)

    def measure(
        self, operation: str, target: Target, size: int, action: Callable[[], None]
    ) -> None:
        cpu_before, started = cpu_seconds(target.pid), time.perf_counter()
        action()
        seconds = time.perf_counter() - started
        self.seconds.setdefault((operation, target.name), []).append(seconds)
        self.cpu.setdefault((operation, target.name), []).append(
            (cpu_seconds(target.pid) - cpu_before) * GIB / size
        )
        print(f"  {operation} {target.name}: {size / seconds / 1e6:.0f} MB/s", file=sys.stderr)

    def mb_per_s(self, operation: str, target: str, size: int) -> float:
        return size / statistics.median(self.seconds[(operation, target)]) / 1e6

    def cpu_per_gib(self, operation: str, target: str) -> float:
        return statistics.median(self.cpu[(operation, target)])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def dockyard(workdir: Path) -> Iterator[Target]:
    server = LiveServer(workdir / "dockyard").start()
    try:
        ecr = server.client("ecr")
        token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
        assert server.process is not None
        yield Target(
            "Dockyard",
            f"127.0.0.1:{server.port}",
            server.process.pid,
            base64.b64decode(token).decode(),  # "AWS:" + the registry token
            lambda name: ecr.create_repository(repositoryName=name),
        )
    finally:
        server.stop()


@contextmanager
def distribution(workdir: Path) -> Iterator[Target]:
    port = free_port()
    config = workdir / "distribution.yml"
    config.write_text(DISTRIBUTION_CONFIG.format(root=workdir / "distribution", port=port))
    with (workdir / "distribution.log").open("wb") as log:
        process = subprocess.Popen([DISTRIBUTION, "serve", str(config)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((workdir / "distribution.log").read_text()[-2000:])
            time.sleep(0.1)
        yield Target("distribution", f"127.0.0.1:{port}", process.pid)
    finally:
        process.terminate()
        process.wait(10)


# Raw blobs, with http.client


def request(
    target: Target,
    method: str,
    url: str,
    body: object = None,
    headers: dict[str, str] | None = None,
) -> http.client.HTTPResponse:
    """One request on a new connection; the caller reads the response."""
    parts = urlsplit(url)
    host, port = target.address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=600, blocksize=IO_BLOCK)
    headers = {**target.headers, **(headers or {})}
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    connection.request(method, path, body=body, headers=headers)  # type: ignore[arg-type]
    return connection.getresponse()


def expect(response: http.client.HTTPResponse, status: int) -> http.client.HTTPResponse:
    if response.status != status:
        raise RuntimeError(f"expected {status}, got {response.status}: {response.read()[:500]!r}")
    return response


def push_blob(target: Target, repository: str, path: Path, digest: str) -> None:
    size = path.stat().st_size
    posted = expect(request(target, "POST", f"/v2/{repository}/blobs/uploads/"), 202)
    posted.read()
    with path.open("rb") as data:
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        patched = expect(request(target, "PATCH", posted.headers["Location"], data, headers), 202)
        patched.read()
    location = patched.headers["Location"]
    separator = "&" if "?" in location else "?"
    put = request(target, "PUT", f"{location}{separator}digest={digest}", b"")
    expect(put, 201).read()


def pull_blob(target: Target, repository: str, digest: str, size: int) -> None:
    buffer = memoryview(bytearray(IO_BLOCK))
    received = 0
    response = expect(request(target, "GET", f"/v2/{repository}/blobs/{digest}"), 200)
    while read := response.readinto(buffer):
        received += read
    if received != size:
        raise RuntimeError(f"{target.name} served {received} bytes of {size}")


def random_file(path: Path, size: int) -> str:
    """``size`` random bytes written to ``path``; returns their digest."""
    hasher = hashlib.sha256()
    with path.open("wb") as out:
        for _ in range(size // MIB):
            chunk = os.urandom(MIB)
            hasher.update(chunk)
            out.write(chunk)
    return "sha256:" + hasher.hexdigest()


# Images, with skopeo


def image_layout(root: Path, layers: int, layer_size: int) -> int:
    """An OCI layout tagged ``img`` with ``layers`` fresh random layers; its layer bytes."""
    layout = Layout(root)
    tars = [tar_of({f"layer{i}": os.urandom(layer_size)}) for i in range(layers)]
    layout.tag(layout.add_image(tars, "amd64", compress=False), "img")
    return sum(len(tar) for tar in tars)


def skopeo(*args: str) -> None:
    subprocess.run(["skopeo", "copy", "--quiet", *args], check=True)


def push_image(target: Target, layout: Path, repository: str) -> None:
    remote = f"docker://{target.address}/{repository}:v1"
    skopeo(*target.skopeo_flags("dest"), f"oci:{layout}:img", remote)


def pull_image(target: Target, repository: str, out: Path) -> None:
    remote = f"docker://{target.address}/{repository}:v1"
    skopeo(*target.skopeo_flags("src"), remote, f"oci:{out}:img")
    shutil.rmtree(out)


# The run


def run(args: argparse.Namespace, workdir: Path, targets: list[Target]) -> None:
    results = Results()
    blob_size = args.blob_mib * MIB
    print(f"generating a {args.blob_mib} MiB blob ...", file=sys.stderr)
    blob = workdir / "blob"
    digest = random_file(blob, blob_size)
    for repetition in range(args.repeat):
        # Who goes first alternates, so neither always gets the warmer cache.
        targets.reverse()
        repository = f"bench/blob{repetition}"
        for target in targets:
            target.create_repository(repository)
            push = partial(push_blob, target, repository, blob, digest)
            results.measure("blob push", target, blob_size, push)
        for target in targets:
            pull = partial(pull_blob, target, repository, digest, blob_size)
            results.measure("blob pull", target, blob_size, pull)
    blob.unlink()

    image_size = 0
    for repetition in range(args.repeat):
        layout = workdir / f"layout{repetition}"
        image_size = image_layout(layout, args.layers, args.layer_mib * MIB)
        targets.reverse()
        repository = f"bench/image{repetition}"
        for target in targets:
            target.create_repository(repository)
            push = partial(push_image, target, layout, repository)
            results.measure("image push", target, image_size, push)
        for target in targets:
            out = workdir / f"pulled-{target.name}"
            pull = partial(pull_image, target, repository, out)
            results.measure("image pull", target, image_size, pull)
        shutil.rmtree(layout)

    report(results, args, blob_size, image_size)


def report(results: Results, args: argparse.Namespace, blob_size: int, image_size: int) -> None:
    image = f"{args.layers}x{args.layer_mib} MiB"
    print(f"\nmedian of {args.repeat} runs; MB/s = 10^6 bytes/s; ratio = Dockyard/distribution")
    print(f"{'':26}{'Dockyard':>9}{'distrib.':>9}{'ratio':>7}  {'goal':15}server CPU s/GiB")
    for operation, size, what in (
        ("blob push", blob_size, f"{args.blob_mib} MiB"),
        ("blob pull", blob_size, f"{args.blob_mib} MiB"),
        ("image push", image_size, image),
        ("image pull", image_size, image),
    ):
        ours = results.mb_per_s(operation, "Dockyard", size)
        theirs = results.mb_per_s(operation, "distribution", size)
        goal = GOALS[operation.split()[1]]
        verdict = f">= {goal}x " + ("met" if ours / theirs >= goal else "MISSED")
        cpu = "{:.2f} vs {:.2f}".format(
            results.cpu_per_gib(operation, "Dockyard"),
            results.cpu_per_gib(operation, "distribution"),
        )
        label = f"{operation} ({what})"
        print(f"{label:26}{ours:9.0f}{theirs:9.0f}{ours / theirs:6.2f}x  {verdict:15}{cpu}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--blob-mib", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=10)
    parser.add_argument("--layer-mib", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for tool, package in ((DISTRIBUTION, "docker-registry"), ("skopeo", "skopeo")):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: apt-get install {package}")
    with tempfile.TemporaryDirectory(prefix="bench-registry-") as tmp:
        workdir = Path(tmp)
        with dockyard(workdir) as ours, distribution(workdir) as theirs:
            run(args, workdir, [ours, theirs])


if __name__ == "__main__":
    main()
