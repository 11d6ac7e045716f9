"""The backlog: shedding load when too many drawings wait, and telling the sweeper what the queue holds.

The Celery queue is a Redis list (kombu's Redis transport); each message is JSON whose headers
name the task and whose base64 body holds its args: the ids of one or more drawings. A message
a worker has taken but not yet acknowledged sits in the transport's `unacked` hash until the
task ends.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time

from django.conf import settings
from django.db import DatabaseError, connection

from digitsite.celery import app as celery_app
from recognizer import metrics
from recognizer.errors import Refused
from recognizer.models import Drawing

log = logging.getLogger(__name__)
QUEUE = metrics.QUEUE  # Celery's default queue
# A reading of the backlog serves every drawing of this process for this long: the check costs
# one indexed count a second per process, not one per drawing.
READING_SECONDS = 1.0
RETRY_AFTER = 5  # seconds; the backlog is about 9 s of work, so a retry soon may get in
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

# database name -> (monotonic time of the reading, depth). Kept per database so that tests on
# another one get readings of their own.
_readings: dict[str, tuple[float, int]] = {}


async def depth() -> int:
    """Drawings waiting for a prediction, as read at most READING_SECONDS ago by this process.

    Counted in the database, not in the broker: a message carries one drawing or several
    that arrived together (recognizer.publisher), so the queue's length says little about
    the work waiting. 0 when the database cannot say: the check only decides whether to shed load.
    """
    key = connection.settings_dict["NAME"]
    read_at, last = _readings.get(key, (float("-inf"), 0))
    if time.monotonic() - read_at < READING_SECONDS:
        return last
    # Stamped before the read, so that the drawings arriving meanwhile use the last figure
    # instead of each reading it again.
    _readings[key] = (time.monotonic(), last)
    try:
        current = await Drawing.objects.queued().acount()
    except DatabaseError:
        log.warning("the backlog is unknown: the database did not answer")
        current = 0
    _readings[key] = (time.monotonic(), current)
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
