"""One read for many callers, never older than any caller.

Concurrent RunTask calls on a cluster each need a snapshot of it read after the call
began (a call must see what its client did before it, e.g. PutAttributes). Reading
one per call makes tens of large reads contend for the database and the GIL; instead
at most one read per key runs at a time, and the callers that arrive while it runs
wait for the next one, which starts as soon as it ends and serves all of them. Every
caller thus gets a read that started after it arrived.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar, cast

T = TypeVar("T")


class _Read(Generic[T]):
    def __init__(self, after: _Read[T] | None) -> None:
        self.after = after  # the read that must end before this one starts
        self.done = threading.Event()
        self.value: T | None = None
        self.error: BaseException | None = None


class _Slot(Generic[T]):
    def __init__(self) -> None:
        self.running: _Read[T] | None = None
        self.queued: _Read[T] | None = None  # not started: anyone arriving may join it


class SharedReads(Generic[T]):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[Hashable, _Slot[T]] = {}

    def read(self, key: Hashable, read: Callable[[], T]) -> T:
        """``read()``'s value from a call of it that began after this call did."""
        with self._lock:
            slot = self._slots.setdefault(key, _Slot())
            lead = slot.queued is None
            if lead:
                this = _Read(after=slot.running)
                if slot.running is None:
                    slot.running = this
                else:
                    slot.queued = this
            else:
                assert slot.queued is not None
                this = slot.queued
        if lead:
            self._lead(slot, this, read)
        this.done.wait()
        if this.error is not None:
            raise this.error
        return cast(T, this.value)

    def _lead(self, slot: _Slot[T], this: _Read[T], read: Callable[[], T]) -> None:
        if this.after is not None:
            this.after.done.wait()
            with self._lock:
                slot.running, slot.queued = this, None
        try:
            this.value = read()
        except BaseException as error:
            this.error = error
        finally:
            with self._lock:
                if slot.running is this:
                    slot.running = None
            this.done.set()
