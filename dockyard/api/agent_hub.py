"""Wake-ups for the agent channel's long polls.

A poll waits on the event loop for its instance's assignments to change; the handlers
that change them (RunTask, StartTask, StopTask, deregistration) run in the threadpool
and call ``notify``, which hops onto the loop with ``call_soon_threadsafe``.

In-process only: with several server replicas, a poll held by another replica misses
the wake-up and sees the change when it returns (at most ``waitSeconds`` later), since
every poll that carries an older version than the stored one is answered at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress

DEFAULT_AGENT_TIMEOUT = 60.0


class AgentHub:
    """``timeout``: seconds without contact after which an agent counts as disconnected."""

    def __init__(self, timeout: float = DEFAULT_AGENT_TIMEOUT) -> None:
        self.timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: dict[str, set[asyncio.Event]] = {}

    @contextmanager
    def watching(self, instance_arn: str) -> Iterator[asyncio.Event]:
        """An event set when ``instance_arn``'s assignments change; call on the loop,
        before reading the version, so a change in between is not missed."""
        self._loop = asyncio.get_running_loop()
        event = asyncio.Event()
        waiters = self._waiters.setdefault(instance_arn, set())
        waiters.add(event)
        try:
            yield event
        finally:
            waiters.discard(event)
            if not waiters:
                self._waiters.pop(instance_arn, None)

    def notify(self, instance_arns: Iterable[str]) -> None:
        """Wake every poll waiting on these instances; safe from any thread."""
        loop, arns = self._loop, list(instance_arns)
        if loop is None or not arns:
            return  # nobody has ever polled: nobody to wake
        with suppress(RuntimeError):  # the loop has closed: the server is stopping
            loop.call_soon_threadsafe(self._wake, arns)

    def _wake(self, instance_arns: list[str]) -> None:
        for arn in instance_arns:
            for event in self._waiters.get(arn, ()):
                event.set()
