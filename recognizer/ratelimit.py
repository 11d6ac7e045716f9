"""Per-client limits, counted in Redis so that they hold across web processes.

A client is its address as the server sees it: `scope["client"]` / REMOTE_ADDR, which uvicorn
sets from X-Forwarded-For only for the proxies in TRUSTED_PROXIES (digitsite/stack.py), so it
cannot be spoofed by anyone else. `client_key` turns it into the bucket every limit counts in.

Buckets: drawings (RATE_LIMIT a minute), reads (READ_RATE_LIMIT a minute: websocket `status`,
GET of a drawing, feedback) and open websockets (MAX_CONNECTIONS_PER_CLIENT). While Redis is
unreachable nothing is limited: an outage must not turn people away.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
import weakref

import redis.asyncio as aioredis
from django.conf import settings
from django.http import HttpRequest
from redis.exceptions import RedisError

from recognizer import metrics
from recognizer.errors import Refused

log = logging.getLogger(__name__)
WINDOW = 60  # seconds; RATE_LIMIT is drawings per minute
BYTE_WINDOW = 3600  # seconds; BYTE_BUDGET is bytes per hour
# One client per event loop: an asyncio connection pool cannot cross loops.
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = weakref.WeakKeyDictionary()


def _redis() -> aioredis.Redis:
    loop = asyncio.get_running_loop()
    if loop not in _clients:
        _clients[loop] = aioredis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    return _clients[loop]


def client_key(address: str) -> str:
    """The bucket a client's limits count in, from its address (REMOTE_ADDR or `scope["client"][0]`).

    IPv4 as is. IPv6 by its /64: a subscriber is handed a whole /64, so keying single IPv6
    addresses would give one person 2**64 buckets. An IPv4-mapped IPv6 address (::ffff:a.b.c.d,
    from a dual-stack socket) is the IPv4 client it maps. Anything else (a unix socket, a test
    client's name, nothing) is used as given.
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # without an IPv6 zone (fe80::1%eth0)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def request_client(request: HttpRequest) -> str:
    """The client key of an HTTP request: REMOTE_ADDR, which uvicorn sets to the real client behind a trusted proxy."""
    return client_key(request.META.get("REMOTE_ADDR", ""))


async def _over(client: str, counts: list[tuple[str, int, int, int]]) -> tuple[str, int] | None:
    """Count `client`'s use in each (bucket, window in seconds, limit, amount) whose limit is set, in
    one round trip to Redis: the first bucket over its limit and the seconds until its window
    ends, or None. Fixed windows.
    """
    if not (counts := [count for count in counts if count[2]]):
        return None
    now = time.time()
    keys = [f"ratelimit:{bucket}:{client}:{int(now // window)}" for bucket, window, _, _ in counts]
    try:
        async with _redis().pipeline(transaction=False) as pipe:
            for key, (_, window, _, amount) in zip(keys, counts, strict=True):
                pipe.incrby(key, amount).expire(key, window + 1)
            replies = await pipe.execute()
    except (RedisError, OSError):
        log.warning("%s limits not checked: Redis is unreachable", "/".join(bucket for bucket, *_ in counts))
        return None
    for (bucket, window, limit, _), spent in zip(counts, replies[::2], strict=True):
        if spent > limit:
            metrics.RATE_LIMITED.labels(bucket).inc()
            return bucket, max(1, window - int(now) % window)
    return None


async def read_retry_after(client: str) -> int:
    """Count one read of `client`: a drawing's status (websocket or GET) or feedback; 0 while
    within READ_RATE_LIMIT a minute, else the seconds to wait.

    Reads are cheap but not free (a database query each), and a client polling for a result
    makes several per drawing, so READ_RATE_LIMIT is more generous than RATE_LIMIT.
    """
    over = await _over(client, [("reads", WINDOW, settings.READ_RATE_LIMIT, 1)])
    return over[1] if over else 0


def refusal(retry_after: int, what: str = "drawings") -> Refused:
    """The answer to a client over its limit, alike over HTTP (429, Retry-After) and the websocket."""
    return Refused("rate_limited", f"too many {what} from this client: try again in {retry_after} s", 429, retry_after)


async def admit(client: str, size: int) -> Refused | None:
    """Count one drawing of `size` bytes from `client` (a `client_key`); the refusal once it is over
    RATE_LIMIT drawings a minute or BYTE_BUDGET bytes an hour (429, with the seconds to wait).

    Both in one round trip to Redis, counted as received, before anything is decoded or stored:
    what bounds the disk is the bytes a client makes us handle, so a drawing refused for the rate
    still spends its bytes. Fixed windows of a minute and an hour.
    """
    limits = [("drawings", WINDOW, settings.RATE_LIMIT, 1), ("bytes", BYTE_WINDOW, settings.BYTE_BUDGET, size)]
    if (over := await _over(client, limits)) is None:
        return None
    bucket, wait = over
    if bucket == "drawings":
        metrics.DRAWINGS_REFUSED.labels("rate_limited").inc()
        return refusal(wait)
    metrics.DRAWINGS_REFUSED.labels("byte_budget").inc()
    message = f"this client sent over {settings.BYTE_BUDGET} bytes of drawings this hour: try again in {wait} s"
    return Refused("byte_budget", message, 429, wait)


# Open websockets per client: a sorted set per client, one member per connection scored with
# when it last said it was alive. A connection refreshes its member every CONNECTION_REFRESH
# seconds and removes it when it closes; members not refreshed for CONNECTION_TTL seconds (their
# web process crashed) no longer count, so a crash frees its slots within CONNECTION_TTL.
CONNECTION_REFRESH = 60
CONNECTION_TTL = 150


def _connections_key(client: str) -> str:
    return f"connections:{client}"


async def open_connection(client: str, connection: str) -> bool:
    """Count websocket `connection` against `client`'s cap: False (and not counted) when the cap is reached."""
    cap = settings.MAX_CONNECTIONS_PER_CLIENT
    if not cap:
        return True
    key, now = _connections_key(client), time.time()
    try:
        async with _redis().pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(key, "-inf", now - CONNECTION_TTL).zadd(key, {connection: now})
            _, _, count, _ = await pipe.zcard(key).expire(key, CONNECTION_TTL).execute()
        if count <= cap:
            return True
        await _redis().zrem(key, connection)
    except (RedisError, OSError):
        log.warning("connection cap not checked: Redis is unreachable")
        return True
    metrics.RATE_LIMITED.labels("connections").inc()
    return False


async def hold_connection(client: str, connection: str) -> None:
    """Keep `connection` counted while it is open (run as a task; cancelled when it closes)."""
    if not settings.MAX_CONNECTIONS_PER_CLIENT:
        return
    key = _connections_key(client)
    while True:
        await asyncio.sleep(CONNECTION_REFRESH)
        try:
            async with _redis().pipeline(transaction=True) as pipe:
                await pipe.zadd(key, {connection: time.time()}).expire(key, CONNECTION_TTL).execute()
        except (RedisError, OSError):
            log.warning("connection count not refreshed: Redis is unreachable")


async def close_connection(client: str, connection: str) -> None:
    """Stop counting `connection`; when Redis is unreachable its member expires by itself."""
    if not settings.MAX_CONNECTIONS_PER_CLIENT:
        return
    try:
        await _redis().zrem(_connections_key(client), connection)
    except (RedisError, OSError):
        log.warning("connection not uncounted: Redis is unreachable; it expires in %s s", CONNECTION_TTL)


def too_many_connections() -> Refused:
    cap = settings.MAX_CONNECTIONS_PER_CLIENT
    return Refused("too_many_connections", f"at most {cap} open websockets per client: close one first", 429)
