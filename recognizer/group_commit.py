"""Storing the drawings that arrive together in one transaction: group commit, per event loop.

Each drawing used to be a transaction of its own, and a transaction costs per call, not per
row: on SQLite a take of the one write lock, on PostgreSQL a flush of its log. Under load on
SQLite the web committed a drawing every few milliseconds, and the worker, which needs the
same lock to claim and to store a batch, spent a third of its time asleep in the lock's busy
handler (py-spy, 300 strokes a second: 20 % in BEGIN IMMEDIATE, 11 % in the claim's UPDATE).

Now a drawing waits only for the transaction that is running, if one is: the drawings that
arrive meanwhile are stored together in the next, one thread hop and one commit for all of
them. A drawing that comes alone is stored at once, as before.
"""

from __future__ import annotations

import asyncio
import contextvars
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from channels.db import database_sync_to_async

Item = TypeVar("Item")


@dataclass
class _Waiting:
    items: list[tuple[object, asyncio.Future]] = field(default_factory=list)
    storing: asyncio.Task | None = None  # the task storing them, while there are any


class GroupCommit(Generic[Item]):
    """Runs `store(items)` in the database thread for the items put while the previous call ran."""

    def __init__(self, store: Callable[[list[Item]], None], most: int) -> None:
        self.store, self.most = store, most
        # One queue per event loop: a future belongs to its loop (tests run a loop per request).
        self.loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Waiting] = weakref.WeakKeyDictionary()

    async def put(self, item: Item) -> None:
        """Return once `item` is stored with its group; raise what storing the group raised."""
        loop = asyncio.get_running_loop()
        waiting = self.loops.setdefault(loop, _Waiting())
        done = loop.create_future()
        waiting.items.append((item, done))
        if waiting.storing is None or waiting.storing.done():
            # In a context of its own: it outlives the request that started it, whose context
            # would send its database hops to that request's thread, shut down when it ends.
            waiting.storing = loop.create_task(self._store_all(waiting), context=contextvars.Context())
        # Shielded: a caller that goes away (a socket closed) leaves its drawing to be stored.
        await asyncio.shield(done)

    async def _store_all(self, waiting: _Waiting) -> None:
        while waiting.items:
            group, waiting.items = waiting.items[: self.most], waiting.items[self.most :]
            try:
                await database_sync_to_async(self.store)([item for item, _ in group])
            except Exception as exc:
                for _, done in group:
                    done.set_exception(exc)
            else:
                for _, done in group:
                    done.set_result(None)
