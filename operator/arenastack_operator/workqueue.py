"""A work queue of object keys with client-go's semantics, for asyncio.

A key is processed by one worker at a time; adding a key that is already waiting does nothing,
and adding one that is being processed runs it once more afterwards, so bursts of watch events
(a pod going Pending -> Running -> Ready) collapse into few reconciles. Failed keys come back
after an exponential backoff, never in a hot loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Final, Generic, TypeVar

K = TypeVar("K", bound=Hashable)

BACKOFF_BASE_S: Final = 0.5
BACKOFF_MAX_S: Final = 300.0


class WorkQueue(Generic[K]):
    def __init__(self, *, delay_s: float = 0.0) -> None:
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._waiting: set[K] = set()
        self._processing: set[K] = set()
        self._failures: dict[K, int] = {}
        self._timers: dict[K, asyncio.TimerHandle] = {}
        self._delay_s = delay_s

    def add(self, key: K) -> None:
        """Queue `key` after the coalescing delay."""
        if self._delay_s > 0:
            self.add_after(key, self._delay_s)
        else:
            self._add_now(key)

    def add_after(self, key: K, delay_s: float) -> None:
        if key in self._waiting:
            return
        timer = self._timers.get(key)
        if timer is not None:
            if timer.when() <= asyncio.get_running_loop().time() + delay_s:
                return
            timer.cancel()
        self._timers[key] = asyncio.get_running_loop().call_later(delay_s, self._fire, key)

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self._add_now(key)

    def _add_now(self, key: K) -> None:
        if key in self._waiting:
            return
        self._waiting.add(key)
        if key not in self._processing:
            self._queue.put_nowait(key)

    async def get(self) -> K:
        key = await self._queue.get()
        self._waiting.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._waiting:
            self._queue.put_nowait(key)

    def retry(self, key: K) -> float:
        """Queue `key` again after its next backoff; returns the delay."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        delay = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2**failures)
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        """Reset the backoff of `key` (after it reconciled cleanly)."""
        self._failures.pop(key, None)

    def discard(self, key: K) -> None:
        """Drop pending timers and backoff of a key whose object is gone."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        self._failures.pop(key, None)

    def __len__(self) -> int:
        return len(self._waiting)


async def serve(
    queue: WorkQueue[K],
    reconcile: Callable[..., Awaitable[None]],
    retriable: type[Exception],
    logger: logging.Logger,
    retry_level: Callable[[Exception], int] = lambda _: logging.INFO,
) -> None:
    """One worker: take a key, reconcile it, and on failure bring it back after the queue's
    backoff. `retriable` errors are expected (a conflict, a pod not created yet) and logged at
    `retry_level`; anything else is logged with its traceback."""
    while True:
        key = await queue.get()
        try:
            await reconcile(*key)
            queue.forget(key)
        except retriable as e:
            delay = queue.retry(key)
            logger.log(retry_level(e), "Reconcile of %s/%s retried in %.1fs: %s", *key, delay, e)
        except Exception:
            delay = queue.retry(key)
            logger.exception("Reconcile of %s/%s failed; retrying in %.1fs", *key, delay)
        finally:
            queue.done(key)
