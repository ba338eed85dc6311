"""Server settings: flags, with embedded defaults that need no set-up."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dockyard.api.agent_hub import DEFAULT_AGENT_TIMEOUT
from dockyard.api.identity import DEFAULT_IDENTITY, Identities, Identity, load_identities_file

DEFAULT_ACCOUNT_ID = "000000000000"
IDENTITIES_FILE = "identities.json"
# Seconds an agent may stay silent before its host is lost and its tasks are STOPPED
# (dockyard/control/instance_health.py). ECS has no such limit: the tasks stay for ever.
DEFAULT_LOST_HOST_GRACE = 300.0


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 4566
    data_dir: Path = Path(".dockyard")
    database_url: str | None = None  # None: SQLite in data_dir
    account_id: str = DEFAULT_ACCOUNT_ID
    extra_identities: tuple[Identity, ...] = field(default=())
    registry_address: str | None = None  # None: HOST:PORT (127.0.0.1 for a wildcard host)
    agent_timeout: float = DEFAULT_AGENT_TIMEOUT  # seconds of silence: agentConnected false
    lost_host_grace: float = DEFAULT_LOST_HOST_GRACE  # seconds of silence: tasks STOPPED

    @property
    def advertised_address(self) -> str:
        if self.registry_address:
            return self.registry_address
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"{host}:{self.port}"

    def identities(self) -> Identities:
        """The default admin, then identities.json in the data dir, then flags."""
        path = self.data_dir / IDENTITIES_FILE
        from_file = load_identities_file(path) if path.exists() else []
        return Identities([DEFAULT_IDENTITY, *from_file, *self.extra_identities])
