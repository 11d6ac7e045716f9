"""The prediction task: read a stored drawing, predict, store, then push to its group."""

from __future__ import annotations

import asyncio
import logging
import time

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_process_init
from channels.layers import get_channel_layer
from django.conf import settings
from django.utils import timezone
from PIL import Image, UnidentifiedImageError

from recognizer import services
from recognizer.models import Drawing
from worker import active_model
from worker.preprocessing import BlankDrawing, preprocess

log = logging.getLogger(__name__)
_push_loop: asyncio.AbstractEventLoop | None = None


@worker_process_init.connect
def load_model_before_the_first_drawing(**kwargs) -> None:
    # In each pool child, after the fork (TensorFlow must not cross one): load and trace now.
    active_model.current()


@shared_task(name="worker.tasks.predict_drawing")
def predict_drawing(drawing_id: str) -> None:
    """Predict one drawing. Idempotent: a drawing already answered is only pushed again."""
    started = timezone.now()
    drawing = Drawing.objects.filter(pk=drawing_id).first()
    if drawing is None:
        log.warning("drawing %s does not exist", drawing_id)
        return
    if drawing.status == Drawing.Status.QUEUED:
        drawing = record(drawing, started)
    push(drawing)


@shared_task(name="worker.tasks.requeue_stale_drawings", ignore_result=True)
def requeue_stale_drawings() -> int:
    """The sweeper, run by Celery beat: nothing accepted stays queued for ever."""
    count = services.requeue_stale(settings.STALE_AFTER)
    if count:
        log.info("queued %d stale drawing(s) again", count)
    return count


def record(drawing: Drawing, started) -> Drawing:
    """Run the model on the drawing and store the outcome, unless another worker did first."""
    fields = {"started_at": started, "status": Drawing.Status.DONE}
    t0 = time.perf_counter()
    try:
        image = preprocess(bytes(drawing.image))
        t1 = time.perf_counter()
        model = active_model.current()
        probabilities = model.predict(image[None])[0]
        t2 = time.perf_counter()
    except BlankDrawing as exc:
        fields.update(status=Drawing.Status.BLANK, error=str(exc))
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
        log.warning("drawing %s could not be read: %s", drawing.id, exc)
        fields.update(status=Drawing.Status.FAILED, error="the image could not be read")
    except SoftTimeLimitExceeded:
        # Not queued again: a drawing that hangs the model once would hang it every time.
        log.error("drawing %s took too long to predict", drawing.id)
        fields.update(status=Drawing.Status.FAILED, error="the prediction took too long")
    else:
        digit = int(probabilities.argmax())
        fields.update(
            digit=digit,
            confidence=round(float(probabilities[digit]), 6),
            probabilities=[round(float(p), 6) for p in probabilities],
            model_version=model.version,
            preprocess_ms=round((t1 - t0) * 1000, 3),
            predict_ms=round((t2 - t1) * 1000, 3),
        )
    fields["finished_at"] = timezone.now()
    # Only a queued drawing is updated: a second delivery never stores a second answer.
    updated = Drawing.objects.filter(pk=drawing.id, status=Drawing.Status.QUEUED).update(**fields)
    if not updated:
        return Drawing.objects.get(pk=drawing.id)
    for name, value in fields.items():
        setattr(drawing, name, value)
    return drawing


def push(drawing: Drawing) -> None:
    """Send the stored result to the drawing's group; the database already has it."""
    global _push_loop
    # One event loop per process, kept, so the channel layer's Redis connections are
    # reused rather than opened and closed for each drawing (as async_to_sync would).
    if _push_loop is None:
        _push_loop = asyncio.new_event_loop()
    message = {"type": "drawing.result", "drawing": drawing.result()}
    try:
        _push_loop.run_until_complete(get_channel_layer().group_send(drawing.group, message))
    except Exception:
        log.exception("could not push the result of drawing %s; clients can ask for it", drawing.id)
