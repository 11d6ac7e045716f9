"""Per-client limits on drawings, counted in Redis so that they hold across web processes."""

from __future__ import annotations

import asyncio
import logging
import time
import weakref

import redis.asyncio as aioredis
from django.conf import settings
from redis.exceptions import RedisError

from recognizer import metrics
from recognizer.errors import Refused

log = logging.getLogger(__name__)
WINDOW = 60  # seconds; RATE_LIMIT is drawings per minute
# One client per event loop: an asyncio connection pool cannot cross loops.
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = weakref.WeakKeyDictionary()


def _redis() -> aioredis.Redis:
    loop = asyncio.get_running_loop()
    if loop not in _clients:
        _clients[loop] = aioredis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    return _clients[loop]


async def retry_after(client: str) -> int:
    """0 when `client` may send a drawing now, else the seconds until it may.

    A fixed one-minute window: one round trip to Redis per drawing. When Redis is down
    drawings are let through: an outage must not turn people away.
    """
    limit = settings.RATE_LIMIT
    if not limit:
        return 0
    now = time.time()
    key = f"ratelimit:{client}:{int(now // WINDOW)}"
    try:
        async with _redis().pipeline(transaction=False) as pipe:
            count, _ = await pipe.incr(key).expire(key, WINDOW + 1).execute()
    except (RedisError, OSError):
        log.warning("rate limit not checked: Redis is unreachable")
        return 0
    if count <= limit:
        return 0
    metrics.DRAWINGS_REFUSED.labels("rate_limited").inc()
    return max(1, WINDOW - int(now) % WINDOW)


def refusal(retry_after: int) -> Refused:
    """The answer to a client over its limit, alike over HTTP (429, Retry-After) and the websocket."""
    return Refused(
        "rate_limited", f"too many drawings from this client: try again in {retry_after} s", 429, retry_after
    )
