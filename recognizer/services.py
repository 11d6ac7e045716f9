"""Submitting drawings and waiting for their results; shared by the HTTP API and the websocket."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from channels.layers import BaseChannelLayer, get_channel_layer
from django.conf import settings
from django.db import transaction
from kombu.exceptions import KombuError
from redis.exceptions import RedisError

from digitsite.celery import app as celery_app
from recognizer import backlog, metrics
from recognizer.images import CheckedImage
from recognizer.models import Drawing, group_for

log = logging.getLogger(__name__)
PREDICT_TASK = "worker.tasks.predict_drawing"
# Joining a drawing's group takes a Redis round trip or two (and a connection, at first): a
# Redis that has not answered in a second is not going to, and a worker cannot push through it
# either, so the wait goes on by polling the database. Leaving the group gets DISCARD_SECONDS
# after the wait, so the answer is at most that late.
SUBSCRIBE_SECONDS = 1.0
DISCARD_SECONDS = 0.2


def submit(image: CheckedImage, source: str, drawing_id: uuid.UUID | None = None) -> Drawing:
    """Store the drawing as queued, then queue its prediction once the row is committed."""
    with transaction.atomic():
        drawing = Drawing.queue(
            id=drawing_id or uuid.uuid4(),
            image=image.data,
            content_type=image.content_type,
            width=image.width,
            height=image.height,
            source=source,
        )
        transaction.on_commit(lambda: enqueue(drawing.id))
    metrics.DRAWINGS_RECEIVED.labels(source).inc()
    return drawing


def enqueue(drawing_id: uuid.UUID) -> None:
    """Queue the prediction by name: the web process must not import the model code."""
    try:
        celery_app.send_task(PREDICT_TASK, args=[str(drawing_id)])
    except Exception:
        # The drawing is stored and stays queued; it is not lost, only late.
        log.exception("could not queue drawing %s", drawing_id)


def requeue_stale(older_than: float, limit: int = 1000) -> int:
    """Queue again the drawings still queued `older_than` seconds after they were last queued
    whose messages the broker no longer holds; the count queued again.

    Catches what the broker lost (a failed publish, a Redis that restarted empty). A drawing
    whose message is still waiting is only late: publishing it again would add work to a queue
    that is already behind, so under a long overload the sweeper would make it worse. Those are
    stamped as queued now and looked at again `older_than` seconds later.
    """
    stale = Drawing.objects.mark_stale_queued_again(older_than, limit)
    if not stale:
        return 0
    # Read after the database: a message taken meanwhile was answered, not lost. Backpressure
    # keeps the queue near MAX_BACKLOG, which bounds this read; past SWEEP_READ_LIMIT nothing is
    # sent this time.
    try:
        waiting = backlog.waiting_drawing_ids(PREDICT_TASK, settings.SWEEP_READ_LIMIT)
    except (RedisError, OSError, KombuError):  # the broker is unreachable: publish, as before
        log.warning("could not read the queue; queuing %d stale drawing(s) again", len(stale))
        waiting = set()
    if waiting is None:
        log.info("the queue is over %d messages: no stale drawing queued again", settings.SWEEP_READ_LIMIT)
        return 0
    lost = [drawing_id for drawing_id in stale if str(drawing_id) not in waiting]
    for drawing_id in lost:
        enqueue(drawing_id)
    return len(lost)


async def wait_for_result(drawing_id: uuid.UUID, timeout: float) -> dict | None:
    """The drawing's result once it is no longer queued, or None when `timeout` runs out.

    Listens on the drawing's group instead of polling, so a waiting request holds no thread.
    Subscribing, the database check and the wait share one deadline: a Redis that stops
    answering (packets dropped, not refused) or a locked database cannot hold the request longer.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    layer = get_channel_layer()
    channel = await layer.new_channel()  # a name made here; no Redis call
    group = group_for(drawing_id)
    try:
        async with asyncio.timeout_at(deadline):
            try:
                async with asyncio.timeout(SUBSCRIBE_SECONDS):
                    await layer.group_add(group, channel)
            except (RedisError, OSError):  # OSError includes TimeoutError: SUBSCRIBE_SECONDS ran out
                log.warning("the channel layer is unreachable: polling for drawing %s", drawing_id)
                return await poll_for_result(drawing_id, deadline - loop.time())
            try:
                # Subscribed first, then checked: a result stored in between is not missed.
                drawing = await Drawing.objects.defer("image").aget(pk=drawing_id)
                if drawing.status != Drawing.Status.QUEUED:
                    return drawing.result()
                try:
                    return (await layer.receive(channel))["drawing"]
                except (RedisError, OSError):  # Redis went away while we listened
                    log.warning("the channel layer failed: polling for drawing %s", drawing_id)
                    return await poll_for_result(drawing_id, deadline - loop.time())
            finally:
                await _leave(layer, group, channel)
    except TimeoutError:
        return None


async def _leave(layer: BaseChannelLayer, group: str, channel: str) -> None:
    """Leave the group, giving up after DISCARD_SECONDS: it also expires in Redis by itself."""
    with contextlib.suppress(RedisError, OSError):  # TimeoutError is an OSError
        async with asyncio.timeout(DISCARD_SECONDS):
            await layer.group_discard(group, channel)


async def poll_for_result(drawing_id: uuid.UUID, timeout: float, every: float = 0.1) -> dict | None:
    """The slow way to wait, for when Redis is down: look at the database until it has a result."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        drawing = await Drawing.objects.defer("image").aget(pk=drawing_id)
        if drawing.status != Drawing.Status.QUEUED:
            return drawing.result()
        if asyncio.get_running_loop().time() + every > deadline:
            return None
        await asyncio.sleep(every)
