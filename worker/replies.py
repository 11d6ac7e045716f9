"""Sending a batch's results to the sockets and requests that wait for them: one Redis round trip.

channels-redis's `send` costs four round trips per message (trim, count, add, expire). A batch's
results mostly go to the same few web processes, whose channels share one sorted set each, so
the worker writes them the way `send` would (same key, same serialisation, same expiry), in
one pipeline per web process.

Capacity is not checked: the set is trimmed of messages past the layer's expiry on every write
and expires as a whole, so a web process that stopped reading holds at most a minute of results.
"""

from __future__ import annotations

import time
from collections import defaultdict

from channels_redis.core import RedisChannelLayer


async def send_all(layer: RedisChannelLayer, messages: list[tuple[str, dict]]) -> None:
    """Send each (process-specific channel, message) as `layer.send` would, one pipeline per Redis set."""
    sets: dict[tuple[int, str], list[bytes]] = defaultdict(list)
    for channel, message in messages:
        key = layer.prefix + layer.non_local_name(channel)
        payload = layer.serialize({**message, "__asgi_channel__": channel})
        sets[(layer.consistent_hash(channel), key)].append(payload)
    for (index, key), payloads in sets.items():
        now = time.time()
        async with layer.connection(index).pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(key, min=0, max=int(now) - int(layer.expiry))
            pipe.zadd(key, dict.fromkeys(payloads, now))
            pipe.expire(key, int(layer.expiry))
            await pipe.execute()
