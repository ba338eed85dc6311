"""The ``dockyard`` command line."""

from __future__ import annotations

import logging
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
from dockyard.config import DEFAULT_ACCOUNT_ID, ServerConfig
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
    )
    try:
        config.identities()
    except IdentityConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="identities.json") from None
    return config


def _serve(config: ServerConfig) -> None:
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
        )
    )


@app.command()
def up(
    port: Port = 4566,
    data_dir: DataDir = Path(".dockyard"),
    database_url: DatabaseUrl = None,
    account_id: AccountId = DEFAULT_ACCOUNT_ID,
    identity: IdentityFlags = None,
) -> None:
    """Everything on this machine with embedded defaults (today: the server)."""
    _serve(_config("127.0.0.1", port, data_dir, database_url, account_id, identity))


if __name__ == "__main__":
    app()
