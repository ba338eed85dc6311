"""The registry's parts, bundled: records, blob storage, tokens, and its address."""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.registry.auth import Tokens
from dockyard.registry.storage.driver import BlobStorage
from dockyard.store.registry import RegistryStore


@dataclass(frozen=True)
class Registry:
    store: RegistryStore
    storage: BlobStorage
    tokens: Tokens
    address: str  # HOST:PORT that docker uses; repository URIs are ADDRESS/NAME

    def repository_uri(self, name: str) -> str:
        return f"{self.address}/{name}"
