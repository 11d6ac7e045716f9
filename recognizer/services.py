"""Submitting drawings and waiting for their results; shared by the HTTP API and the websocket."""

from __future__ import annotations

import asyncio
import logging
import uuid

from channels.layers import get_channel_layer
from django.db import transaction

from recognizer.images import CheckedImage
from recognizer.models import Drawing, group_for
from worker.celery import app as celery_app

log = logging.getLogger(__name__)
PREDICT_TASK = "worker.tasks.predict_drawing"


def submit(image: CheckedImage, source: str, drawing_id: uuid.UUID | None = None) -> Drawing:
    """Store the drawing as queued, then queue its prediction once the row is committed."""
    with transaction.atomic():
        drawing = Drawing.objects.create(
            id=drawing_id or uuid.uuid4(),
            image=image.data,
            content_type=image.content_type,
            width=image.width,
            height=image.height,
            source=source,
        )
        transaction.on_commit(lambda: enqueue(drawing.id))
    return drawing


def enqueue(drawing_id: uuid.UUID) -> None:
    """Queue the prediction by name: the web process must not import the model code."""
    try:
        celery_app.send_task(PREDICT_TASK, args=[str(drawing_id)])
    except Exception:
        # The drawing is stored and stays queued; it is not lost, only late.
        log.exception("could not queue drawing %s", drawing_id)


async def wait_for_result(drawing_id: uuid.UUID, timeout: float) -> dict | None:
    """The drawing's result once it is no longer queued, or None when `timeout` runs out.

    Listens on the drawing's group instead of polling, so a waiting request holds no thread.
    """
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(group_for(drawing_id), channel)
    try:
        # Subscribed first, then checked: a result stored in between is not missed.
        drawing = await Drawing.objects.aget(pk=drawing_id)
        if drawing.status != Drawing.Status.QUEUED:
            return drawing.result()
        try:
            message = await asyncio.wait_for(layer.receive(channel), timeout)
        except TimeoutError:
            return None
        return message["drawing"]
    finally:
        await layer.group_discard(group_for(drawing_id), channel)
