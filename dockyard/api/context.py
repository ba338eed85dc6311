"""What a handler knows about the call it serves."""

from __future__ import annotations

from dataclasses import dataclass, field

from dockyard.api.agent_hub import AgentHub
from dockyard.api.identity import Identity
from dockyard.control.hub import ControlHub
from dockyard.registry.service import Registry
from dockyard.store.store import Store


@dataclass(frozen=True)
class RequestContext:
    account_id: str
    region: str  # from the credential scope of the signature
    identity: Identity
    store: Store
    now: float  # epoch seconds; handlers take the clock from here, never from time()
    registry: Registry
    agents: AgentHub = field(default_factory=AgentHub)  # the agent channel's wake-ups
    control: ControlHub = field(default_factory=ControlHub)  # the service loop's wake-ups
    # The container instance an agent's report says it comes from (a signed header).
    caller_instance: str | None = None

    @property
    def principal_arn(self) -> str:
        if self.identity.name == "root":
            return f"arn:aws:iam::{self.account_id}:root"
        return f"arn:aws:iam::{self.account_id}:user/{self.identity.name}"
