"""What each worker process says about the model it holds, kept in Redis where /healthz reads it.

A worker process (worker/active_model.py) writes its state whenever it switches model or
fails to, and again every HEARTBEAT seconds: one key per process, `worker-model:<host>:<pid>`,
holding JSON {"serving": the version it predicts with, "wanted": the active version it last
looked up (null: none active, so the shipped file), "error": why it is not serving `wanted`,
or null}. The key expires after TTL, so a process that died drops out by itself; the set
`worker-models` names the keys, so a reader needs two commands, not a scan of every key.
Both ends live here, in the web's package, because the web must not import the worker.
"""

from __future__ import annotations

import json

import redis
from django.conf import settings

KEY_PREFIX = "worker-model:"
INDEX = "worker-models"
HEARTBEAT = 5.0  # seconds between a live process's writes
TTL = 3 * HEARTBEAT  # a process silent this long is gone


def client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)


def publish(connection: redis.Redis, worker: str, state: dict) -> None:
    """Write one worker process's state (see the module's docstring for its fields)."""
    key = KEY_PREFIX + worker
    connection.pipeline().set(key, json.dumps(state), ex=round(TTL)).sadd(INDEX, key).execute()


def read(connection: redis.Redis) -> dict[str, dict]:
    """The state of every worker process that wrote within TTL, by `<host>:<pid>`."""
    keys = sorted(connection.smembers(INDEX))
    values = connection.mget(keys) if keys else []
    if gone := [key for key, value in zip(keys, values, strict=True) if value is None]:
        # Expired: that process died. (One that writes again at this instant is named again
        # by its next heartbeat.)
        connection.srem(INDEX, *gone)
    return {
        key.decode().removeprefix(KEY_PREFIX): json.loads(value)
        for key, value in zip(keys, values, strict=True)
        if value is not None
    }
