"""The agent's outgoing traffic that must not hold up the engine: task reports and
registry credentials.

``ReportSender`` keeps the newest report per task (each report is the task's whole
state, so a newer one supersedes an older one unsent) and sends them in order of first
change with SubmitTaskStateChange. While the server is away it retries with backoff;
a report the server refuses (the task is unknown, or no longer on this instance) is
dropped with a warning.

``RegistryCredentials`` holds an ECR token for the server's own registry and gives
pulls from that registry ``RegistryAuth("AWS", token, address)``; pulls from other
registries get ECS_ENGINE_AUTH_DATA's credentials, or none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Final

from dockyard.agent.assignment import TaskReport
from dockyard.agent.auth_data import split_image
from dockyard.agent.channel import AgentClient, Backoff, ChannelError, RegistryToken
from dockyard.agent.config import AgentConfig, credentials_for
from dockyard.agent.runtime import RegistryAuth

log = logging.getLogger(__name__)

MIN_TOKEN_REFRESH: Final = 60.0  # seconds


class ReportSender:
    """``put`` from the engine (never blocks); ``run`` as a task sends."""

    def __init__(self, client: AgentClient, instance_arn: Callable[[], str | None]) -> None:
        self._client = client
        self._instance_arn = instance_arn
        self._pending: dict[str, TaskReport] = {}
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def put(self, report: TaskReport) -> None:
        self._pending.pop(report.task_arn, None)
        self._pending[report.task_arn] = report
        self._idle.clear()
        self._wake.set()

    def wake(self) -> None:
        """Try again now (the agent has just registered)."""
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for every queued report to be sent."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        if self._pending:
            log.warning("%d task report(s) not sent", len(self._pending))
        return not self._pending

    async def run(self) -> None:
        backoff = Backoff()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                instance = self._instance_arn()
                if instance is None:
                    break  # not registered yet: wake() comes after registration
                arn, report = next(iter(self._pending.items()))
                try:
                    await self._client.submit_task(report, instance)
                except ChannelError as error:
                    if error.retryable:
                        delay = backoff.next()
                        log.warning("report of %s failed (%s); retry in %.1f s", arn, error, delay)
                        await asyncio.sleep(delay)
                        continue
                    log.warning("the server refused the report of %s: %s", arn, error)
                else:
                    backoff.reset()
                    log.debug("reported %s %s", arn, report.last_status.wire)
                if self._pending.get(arn) is report:  # not superseded while sending
                    del self._pending[arn]
            if not self._pending:
                self._idle.set()


class RegistryCredentials:
    """``auth_for`` is the engine's: synchronous, so it only reads the cached token."""

    def __init__(self, client: AgentClient, config: AgentConfig) -> None:
        self._client = client
        self._config = config
        self._token: RegistryToken | None = None
        self._ready = asyncio.Event()

    def auth_for(self, image: str) -> RegistryAuth | None:
        host, _ = split_image(image)
        token = self._token
        if token is not None and host == token.auth.server.lower():
            return token.auth
        credentials = credentials_for(self._config, image)
        if credentials is None:
            return None
        return RegistryAuth(credentials.username, credentials.password, host)

    async def wait_ready(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._ready.wait()

    async def run(self) -> None:
        backoff = Backoff(cap=60.0)
        while True:
            try:
                self._token = token = await self._client.get_registry_auth()
            except ChannelError as error:
                delay = backoff.next()
                log.warning("no registry token (%s); retry in %.1f s", error, delay)
            else:
                self._ready.set()
                backoff.reset()
                delay = max(MIN_TOKEN_REFRESH, (token.expires_at - time.time()) / 2)
            await asyncio.sleep(delay)
