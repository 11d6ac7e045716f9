"""The Celery queue's backlog: shedding load when it is too deep, and telling the sweeper what it holds.

The queue is a Redis list (kombu's Redis transport); each message is JSON whose headers name
the task and whose base64 body holds its args: the ids of one or more drawings. A message a worker has taken but not yet
acknowledged sits in the transport's `unacked` hash until the task ends.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import time
import weakref

import redis.asyncio as aioredis
from django.conf import settings
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from digitsite.celery import app as celery_app
from recognizer import metrics
from recognizer.errors import Refused

log = logging.getLogger(__name__)
QUEUE = metrics.QUEUE  # Celery's default queue
# A reading of the queue's depth serves every drawing of this process for this long: the
# check costs one Redis round trip a second per process, not one per drawing.
READING_SECONDS = 1.0
RETRY_AFTER = 5  # seconds; the backlog is about 9 s of work, so a retry soon may get in
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

# url -> (monotonic time of the reading, depth). Kept per URL so that tests on another broker
# get readings of their own.
_readings: dict[str, tuple[float, int]] = {}
# One client per event loop and URL: an asyncio connection pool cannot cross loops.
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, aioredis.Redis]] = weakref.WeakKeyDictionary()


def _redis(url: str) -> aioredis.Redis:
    clients = _clients.setdefault(asyncio.get_running_loop(), {})
    if url not in clients:
        # No retries: redis-py's default (3, with backoff) would turn a silent Redis into
        # seconds of waiting for a figure that only decides whether to shed load.
        clients[url] = aioredis.Redis.from_url(
            url, socket_timeout=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)
        )
    return clients[url]


async def depth() -> int:
    """Messages waiting in the queue, as read at most READING_SECONDS ago by this process.

    0 when Redis cannot say: an outage must not turn people away (the drawings are stored
    and the sweeper queues them once Redis is back).
    """
    url = settings.CELERY_BROKER_URL
    read_at, last = _readings.get(url, (float("-inf"), 0))
    if time.monotonic() - read_at < READING_SECONDS:
        return last
    # Stamped before the read, so that the drawings arriving meanwhile use the last figure
    # instead of each reading it again (or each waiting on a Redis that does not answer).
    _readings[url] = (time.monotonic(), last)
    try:
        current = await _redis(url).llen(QUEUE)
    except (RedisError, OSError):
        log.warning("the queue's depth is unknown: Redis is unreachable")
        current = 0
    _readings[url] = (time.monotonic(), current)
    return current


async def overloaded() -> Refused | None:
    """The refusal for a new drawing while the backlog is over MAX_BACKLOG, else None."""
    limit = settings.MAX_BACKLOG
    if not limit or await depth() < limit:
        return None
    metrics.DRAWINGS_REFUSED.labels("overloaded").inc()
    return Refused(
        "overloaded", f"the service is busy: try again in {RETRY_AFTER} s", status=503, retry_after=RETRY_AFTER
    )


def waiting_drawing_ids(task: str, limit: int) -> set[str] | None:
    """The ids of the drawings whose `task` messages are in the broker: queued or being worked on.

    None when more than `limit` messages are queued: the workers have plenty to do, and a
    drawing the broker lost is found by a later sweep, once the queue is shorter.
    """
    with celery_app.connection_for_read() as connection:
        channel = connection.default_channel
        queued = channel.client.lrange(QUEUE, 0, limit)  # limit + 1 messages at most
        if len(queued) > limit:
            return None
        # Unacknowledged: [message, exchange, routing key]; one per worker process at most.
        taken = [_json(raw) for raw in channel.client.hvals(channel.unacked_key)]
    messages = [_json(raw) for raw in queued] + [entry[0] for entry in taken if isinstance(entry, list) and entry]
    return {drawing_id for message in messages for drawing_id in _drawing_ids(message, task)}


def _json(raw: bytes) -> object:
    try:
        return json.loads(raw)
    except ValueError:  # not kombu's: someone else's junk, which must not stop the sweeper
        return None


def _drawing_ids(message: object, task: str) -> list[str]:
    """The drawing ids a `task` message carries: its args, read from the body (argsrepr is cut short)."""
    headers = message.get("headers") if isinstance(message, dict) else None
    if not isinstance(headers, dict) or headers.get("task") != task:
        return []
    try:
        args = json.loads(base64.b64decode(message["body"]))[0]
    except (KeyError, TypeError, ValueError, IndexError):
        return []
    return [arg for arg in args if isinstance(arg, str) and UUID.fullmatch(arg)] if isinstance(args, list) else []
