"""The ``dockyard`` command line."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from rich.console import Console

from dockyard.api.agent_hub import DEFAULT_AGENT_TIMEOUT
from dockyard.api.identity import (
    DEFAULT_ACCESS_KEY,
    DEFAULT_SECRET_KEY,
    IdentityConfigError,
    parse_identity_flag,
)
from dockyard.app import create_app
from dockyard.config import DEFAULT_ACCOUNT_ID, DEFAULT_LOST_HOST_GRACE, ServerConfig
from dockyard.store.store import Store

app = typer.Typer(
    help="Dockyard: ECS and ECR on your own machines.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)

Host = Annotated[str, typer.Option(help="Address to listen on.")]
Port = Annotated[int, typer.Option(help="Port for the API and the registry.")]
DataDir = Annotated[Path, typer.Option(help="Where state and blobs are kept.")]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(help="postgresql://USER@HOST:PORT/DB instead of SQLite in the data dir."),
]
AccountId = Annotated[str, typer.Option(help="The AWS account id in every ARN.")]
RegistryAddress = Annotated[
    str | None,
    typer.Option(help="HOST:PORT docker uses for the registry (default: the listen address)."),
]
AgentTimeout = Annotated[
    float,
    typer.Option(help="Seconds without a poll after which an agent shows agentConnected false."),
]
LostHostGrace = Annotated[
    float,
    typer.Option(
        metavar="SECONDS",
        help="Seconds without a poll after which an agent's host is lost: its tasks are "
        "STOPPED (stopCode InfrastructureHealth) and services replace them. At least "
        "--agent-timeout.",
    ),
]
IdentityFlags = Annotated[
    list[str] | None,
    typer.Option(
        "--identity",
        help="Extra identity KEY:SECRET[:NAME[:admin|user]]; repeatable. "
        "identities.json in the data dir is read too.",
    ),
]


def _config(
    host: str,
    port: int,
    data_dir: Path,
    database_url: str | None,
    account_id: str,
    identity: list[str] | None,
    registry_address: str | None = None,
    agent_timeout: float = DEFAULT_AGENT_TIMEOUT,
    lost_host_grace: float = DEFAULT_LOST_HOST_GRACE,
) -> ServerConfig:
    if not (len(account_id) == 12 and account_id.isdigit()):
        raise typer.BadParameter("must be 12 digits", param_hint="--account-id")
    try:
        extra = tuple(parse_identity_flag(i) for i in identity or [])
    except IdentityConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="--identity") from None
    if agent_timeout <= 0:
        raise typer.BadParameter(
            "must be a positive number of seconds", param_hint="--agent-timeout"
        )
    if lost_host_grace < agent_timeout:
        # A healthy agent may be between polls for up to a third of the agent timeout.
        raise typer.BadParameter(
            f"must be at least --agent-timeout ({agent_timeout:g} s): an agent still in "
            "contact must never count as lost",
            param_hint="--lost-host-grace",
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    config = ServerConfig(
        host,
        port,
        data_dir.resolve(),
        database_url,
        account_id,
        extra,
        registry_address,
        agent_timeout=agent_timeout,
        lost_host_grace=lost_host_grace,
    )
    try:
        config.identities()
    except IdentityConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="identities.json") from None
    return config


def _serve(config: ServerConfig, notes: Sequence[str] = ()) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    store = Store.open(config.database_url, config.data_dir)
    endpoint = f"http://{config.host}:{config.port}"
    console.print(f"Dockyard API   {endpoint}  (use --endpoint-url {endpoint})")
    console.print(
        f"Credentials    AWS_ACCESS_KEY_ID={DEFAULT_ACCESS_KEY} "
        f"AWS_SECRET_ACCESS_KEY={DEFAULT_SECRET_KEY}  account {config.account_id}"
    )
    console.print(f"Registry       {config.advertised_address}")
    console.print(f"State          {config.database_url or config.data_dir / 'dockyard.db'}")
    for note in notes:
        console.print(note)
    # Placement keeps snapshots of every instance of busy clusters (thousands of
    # objects each) between calls; at the default thresholds the collector walks all
    # of them every few hundred RunTask calls, stopping every thread for tens of ms.
    # Reference counting frees nearly everything anyway: full passes ten times rarer.
    gc.set_threshold(700, 10, 100)
    uvicorn.run(create_app(config, store), host=config.host, port=config.port, log_level="warning")


@app.command()
def server(
    host: Host = "127.0.0.1",
    port: Port = 4566,
    data_dir: DataDir = Path(".dockyard"),
    database_url: DatabaseUrl = None,
    account_id: AccountId = DEFAULT_ACCOUNT_ID,
    identity: IdentityFlags = None,
    registry_address: RegistryAddress = None,
    agent_timeout: AgentTimeout = DEFAULT_AGENT_TIMEOUT,
    lost_host_grace: LostHostGrace = DEFAULT_LOST_HOST_GRACE,
) -> None:
    """Run the control plane and registry."""
    _serve(
        _config(
            host,
            port,
            data_dir,
            database_url,
            account_id,
            identity,
            registry_address,
            agent_timeout=agent_timeout,
            lost_host_grace=lost_host_grace,
        )
    )


@app.command()
def up(
    port: Port = 4566,
    data_dir: DataDir = Path(".dockyard"),
    database_url: DatabaseUrl = None,
    account_id: AccountId = DEFAULT_ACCOUNT_ID,
    identity: IdentityFlags = None,
    agent_timeout: AgentTimeout = DEFAULT_AGENT_TIMEOUT,
    lost_host_grace: LostHostGrace = DEFAULT_LOST_HOST_GRACE,
) -> None:
    """Everything on this machine: the server, and an agent on the local Docker Engine
    joining cluster ``default``."""
    config = _config(
        "127.0.0.1",
        port,
        data_dir,
        database_url,
        account_id,
        identity,
        agent_timeout=agent_timeout,
        lost_host_grace=lost_host_grace,
    )
    agent_process, note = _start_local_agent(config)
    try:
        _serve(config, [note])
    finally:
        if agent_process is not None:
            _stop_process(agent_process)


ServerUrl = Annotated[str, typer.Option(help="The Dockyard server, e.g. http://127.0.0.1:4566.")]
ConfigFile = Annotated[
    Path | None,
    typer.Option(
        "--config", help="An ecs.config file (default /etc/ecs/ecs.config, if it exists)."
    ),
]
InstanceCpu = Annotated[
    int | None, typer.Option(help="CPU units this instance offers (default 1024 per core).")
]
InstanceMemory = Annotated[
    int | None, typer.Option(help="MiB of memory this instance offers (default the host's).")
]
AgentDataDir = Annotated[
    Path | None, typer.Option(help="ECS_DATADIR: the agent's state (default /var/lib/ecs/data).")
]
AvailabilityZone = Annotated[
    str | None, typer.Option(help="Registered as the attribute ecs.availability-zone.")
]
MetadataPort = Annotated[
    int,
    typer.Option(
        envvar="DOCKYARD_METADATA_PORT",
        help="Port of the task metadata endpoint (0: any free port).",
    ),
]


@app.command()
def agent(
    server: ServerUrl,
    config_file: ConfigFile = None,
    cpu: InstanceCpu = None,
    memory: InstanceMemory = None,
    data_dir: AgentDataDir = None,
    availability_zone: AvailabilityZone = None,
    metadata_port: MetadataPort = 51679,
) -> None:
    """Join this host to a cluster and run its tasks on the local Docker Engine.

    Settings come from the ecs.config file, overridden by ECS_* environment variables,
    overridden by these options. The agent signs with AWS_ACCESS_KEY_ID /
    AWS_SECRET_ACCESS_KEY (default test/test) in AWS_REGION or AWS_DEFAULT_REGION
    (default us-east-1): the cluster is the one of that name in that region."""
    from dockyard.agent.config import ConfigError, load_config
    from dockyard.agent.docker_runtime import DockerRuntime
    from dockyard.agent.main import AgentOptions, Deregistered, run_agent
    from dockyard.agent.runtime import EngineError
    from dockyard.agent.serving import docker_host_facts

    flags = {
        "DOCKYARD_INSTANCE_CPU": cpu,
        "DOCKYARD_INSTANCE_MEMORY": memory,
        "ECS_DATADIR": data_dir,
        "DOCKYARD_AVAILABILITY_ZONE": availability_zone,
    }
    environ = {**os.environ, **{k: str(v) for k, v in flags.items() if v is not None}}
    try:
        agent_config = load_config(config_file, environ)
    except ConfigError as error:
        console.print(f"[red]dockyard agent: {error}[/red]")
        raise typer.Exit(1) from None
    logging.basicConfig(
        level=agent_config.log_level.logging_level,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    if agent_config.log_level.logging_level > logging.DEBUG:
        logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per poll otherwise
    log = logging.getLogger("dockyard.agent")
    for warning in agent_config.warnings:
        log.warning("%s", warning)
    if agent_config.unknown:
        log.info("not used by Dockyard: %s", ", ".join(agent_config.unknown))
    try:
        runtime = DockerRuntime()
    except EngineError as error:
        console.print(f"[red]dockyard agent: no Docker Engine: {error.reason}[/red]")
        raise typer.Exit(1) from None
    gateway, stats = docker_host_facts()
    options = AgentOptions(
        metadata_port=metadata_port,
        metadata_hosts=("127.0.0.1", gateway) if gateway else ("127.0.0.1",),
        stats=stats,
    )
    try:
        asyncio.run(run_agent(server, agent_config, runtime, options))
    except (ConfigError, EngineError, OSError) as error:
        console.print(f"[red]dockyard agent: {error}[/red]")
        raise typer.Exit(1) from None
    except Deregistered as error:
        console.print(f"[red]dockyard agent: {error}[/red]")
        raise typer.Exit(5) from None
    finally:
        runtime.close()


def _start_local_agent(config: ServerConfig) -> tuple[subprocess.Popen[bytes] | None, str]:
    """``dockyard agent`` for ``up``, as a child process (its failures stay its own), or
    None and why not."""
    from dockyard.agent.docker_runtime import DockerRuntime
    from dockyard.agent.runtime import EngineError

    try:
        probe = DockerRuntime()
        try:
            probe.info()
        finally:
            probe.close()
    except EngineError as error:
        return None, (
            f"Agent          none started: no Docker Engine reachable ({error.reason}); "
            "tasks stay PENDING until an agent joins"
        )
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    env = {
        **os.environ,
        "ECS_CLUSTER": "default",
        "AWS_ACCESS_KEY_ID": DEFAULT_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": DEFAULT_SECRET_KEY,
        "AWS_DEFAULT_REGION": region,
    }
    env.pop("AWS_REGION", None)
    env.pop("AWS_SESSION_TOKEN", None)
    agent_dir = config.data_dir / "agent"
    command = [sys.executable, "-m", "dockyard.cli", "agent"]
    command += ["--server", f"http://127.0.0.1:{config.port}", "--data-dir", str(agent_dir)]
    process = subprocess.Popen(command, env=env, preexec_fn=_die_with_parent)
    return (
        process,
        f"Agent          cluster default in {region}, on this Docker Engine ({agent_dir})",
    )


def _die_with_parent() -> None:
    """In the child: SIGTERM when ``up`` dies, even by kill -9 (Linux only)."""
    if sys.platform == "linux":
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


if __name__ == "__main__":
    app()
