"""Submitting drawings and waiting for their results; shared by the HTTP API and the websocket."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from channels.layers import get_channel_layer
from django.db import transaction
from redis.exceptions import RedisError

from digitsite.celery import app as celery_app
from recognizer import metrics
from recognizer.images import CheckedImage
from recognizer.models import Drawing, group_for

log = logging.getLogger(__name__)
PREDICT_TASK = "worker.tasks.predict_drawing"


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
    """Queue again the drawings still queued `older_than` seconds after they were last queued.

    Catches what the broker lost. A drawing queued twice is predicted once (the task is idempotent).
    """
    ids = Drawing.objects.mark_stale_queued_again(older_than, limit)
    for drawing_id in ids:
        enqueue(drawing_id)
    return len(ids)


async def wait_for_result(drawing_id: uuid.UUID, timeout: float) -> dict | None:
    """The drawing's result once it is no longer queued, or None when `timeout` runs out.

    Listens on the drawing's group instead of polling, so a waiting request holds no thread.
    """
    layer = get_channel_layer()
    channel = await layer.new_channel()
    try:
        await layer.group_add(group_for(drawing_id), channel)
    except (RedisError, OSError):
        log.warning("the channel layer is unreachable: polling for drawing %s", drawing_id)
        return await poll_for_result(drawing_id, timeout)
    try:
        # Subscribed first, then checked: a result stored in between is not missed.
        drawing = await Drawing.objects.defer("image").aget(pk=drawing_id)
        if drawing.status != Drawing.Status.QUEUED:
            return drawing.result()
        try:
            message = await asyncio.wait_for(layer.receive(channel), timeout)
        except TimeoutError:
            return None
        return message["drawing"]
    finally:
        with contextlib.suppress(RedisError, OSError):
            await layer.group_discard(group_for(drawing_id), channel)


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
