"""Queuing predictions from one thread per process, several drawings to a message when they come fast.

Publishing a task costs the web a Redis round trip and the message's building (see
recognizer.task_messages), and the thread that stored the drawing used to wait for both. Now that thread only hands the
id over. The publisher sends what is waiting the moment it is free: a drawing alone when
they come one at a time, several in one message when they come faster than one publish (the
worker micro-batches them anyway), so nothing waits for company and a busy web does less
work per drawing.

A drawing whose publish fails, or whose id is still here when the process ends, is stored and
queued: the sweeper publishes it again (`services.requeue_stale`).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Publisher:
    """Sends waiting ids with `send(ids)`, at most `most` to a message, from a daemon thread of its own."""

    def __init__(self, send: Callable[[list[str]], None], most: int) -> None:
        self.send, self.most = send, most
        self.waiting: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.pid: int | None = None  # the process whose thread publishes (a fork has none)

    def put(self, drawing_id: str) -> None:
        self._start()
        self.waiting.put(drawing_id)

    def _start(self) -> None:
        if self.pid == os.getpid():
            return
        with self.lock:
            if self.pid != os.getpid():
                threading.Thread(target=self._run, name="publisher", daemon=True).start()
                self.pid = os.getpid()

    def _run(self) -> None:
        while True:
            ids = [self.waiting.get()]
            while len(ids) < self.most:
                try:
                    ids.append(self.waiting.get_nowait())
                except queue.Empty:
                    break
            try:
                self.send(ids)
            except Exception:  # the thread must outlive anything `send` lets through
                log.exception("could not queue %d drawing(s): %s", len(ids), ", ".join(ids))
