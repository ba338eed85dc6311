"""Wake-ups for the service loop: handlers that change what a service sees (its own
configuration, its tasks' states, its cluster's instances) call ``wake`` from any
thread; the loop waits on ``changed``. A missed wake-up costs at most one tick.
"""

from __future__ import annotations

import asyncio
import threading
from contextlib import suppress


class ControlHub:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dirty: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None

    def attach(self) -> asyncio.Event:
        """Call on the event loop that waits; returns the event ``wake`` sets."""
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        return self._event

    def wake(self, cluster_arn: str) -> None:
        """The services of ``cluster_arn`` should be looked at again; safe from any thread."""
        with self._lock:
            self._dirty.add(cluster_arn)
        loop, event = self._loop, self._event
        if loop is None or event is None:
            return  # no loop is running (tests of handlers alone): nothing to wake
        with suppress(RuntimeError):  # the loop has closed: the server is stopping
            loop.call_soon_threadsafe(event.set)

    def take(self) -> set[str]:
        """The clusters woken since the last call."""
        with self._lock:
            dirty, self._dirty = self._dirty, set()
        return dirty
