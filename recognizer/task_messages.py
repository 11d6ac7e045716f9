"""Prediction tasks published as Celery messages written straight to Redis: one LPUSH, no kombu.

Celery's `send_task` costs more Python than the publish itself: routing, kombu's producer and
retry wrapper, a new Redis client object for every message. `benchmarks/task_queries.py` on the
project's 2-core machine: 1.55 ms a message through `send_task`, 0.29 ms here (2.80 and 1.16 ms
with 100 ms between messages, as at light load, where every drawing is a message on the way from
stored to its worker). So the message is written here: Celery's task protocol 2 in kombu's Redis
envelope, as `send_task` writes it for this app's configuration (the default queue, priority 0,
JSON), so any Celery worker runs it. tests/test_publisher.py compares the two messages field by
field, so an upgrade of Celery or kombu that changes the format fails there.

A publish that fails raises RedisError or OSError: the caller's drawings are stored and queued,
and the sweeper publishes them again.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
import uuid

import redis
from celery.utils.saferepr import saferepr
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry

# What Celery puts in a task's "embed" and its headers' argsrepr limit (Celery's defaults).
EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
ARGSREPR_MAXSIZE = 1024
# Who published, as Celery names a process that is not a worker (gen<pid>@<host>): informational.
HOST = socket.gethostname()

_clients: dict[str, redis.Redis] = {}
_lock = threading.Lock()


def broker() -> redis.Redis:
    """This process's Redis client for publishing (redis-py's pool is thread-safe and starts anew after a fork)."""
    url = settings.CELERY_BROKER_URL
    if client := _clients.get(url):  # the common case, without the lock
        return client
    with _lock:
        if url not in _clients:
            options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
            _clients[url] = redis.Redis.from_url(
                url,
                socket_timeout=options["socket_timeout"],
                socket_connect_timeout=options["socket_connect_timeout"],
                # One retry, as CELERY_TASK_PUBLISH_RETRY_POLICY allowed `send_task`.
                retry=Retry(NoBackoff(), 1),
            )
        return _clients[url]


def message(task: str, args: list, queue: str) -> bytes:
    """The message `celery_app.send_task(task, args=args)` would write to Redis for `queue`."""
    task_id = str(uuid.uuid4())
    body = json.dumps([args, {}, EMBED]).encode()
    headers = {
        "lang": "py",
        "task": task,
        "id": task_id,
        "shadow": None,
        "eta": None,
        "expires": None,
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": [None, None],
        "root_id": task_id,
        "parent_id": None,
        "argsrepr": saferepr(args, ARGSREPR_MAXSIZE),
        "kwargsrepr": "{}",
        "origin": f"gen{os.getpid()}@{HOST}",  # the pid now: a forked child is not its parent
        "ignore_result": None,
        "replaced_task_nesting": 0,
        "stamped_headers": None,
        "stamps": {},
    }
    properties = {
        "correlation_id": task_id,
        "reply_to": str(uuid.uuid4()),
        "delivery_mode": 2,
        "delivery_info": {"exchange": "", "routing_key": queue},
        "priority": 0,
        "body_encoding": "base64",
        "delivery_tag": str(uuid.uuid4()),
    }
    envelope = {
        "body": base64.b64encode(body).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": headers,
        "properties": properties,
    }
    return json.dumps(envelope).encode()


def publish(task: str, args: list, queue: str) -> None:
    """Queue `task(*args)` on `queue` (its Redis list: priority 0 has no suffix); raises what Redis raised."""
    broker().lpush(queue, message(task, args, queue))
