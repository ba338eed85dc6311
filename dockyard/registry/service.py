"""The registry's parts, bundled: records, blob storage, tokens, and its address."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dockyard.registry.auth import Tokens
from dockyard.registry.storage.driver import BlobStorage
from dockyard.store.models import Repository
from dockyard.store.registry import RegistryStore


@dataclass(frozen=True)
class Registry:
    store: RegistryStore
    storage: BlobStorage
    tokens: Tokens
    address: str  # HOST:PORT that docker uses; repository URIs are ADDRESS/NAME
    # Runs after every manifest push (ECR's lifecycle policies hook in here), so the
    # registry needs no import of the ECR layer above it.
    after_push: Callable[[Registry, Repository, float], object] | None = None

    def repository_uri(self, name: str) -> str:
        return f"{self.address}/{name}"
