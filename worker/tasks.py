"""The prediction task: take queued drawings, predict them together, store, then push to their groups.

Micro-batching without waiting: a task always starts at once, and takes with its own
drawing any others queued behind it (up to PREDICT_BATCH, oldest first). Their own tasks
arrive later, find them answered, and do nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import task_prerun, worker_process_init
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import Q
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


@task_prerun.connect
def drop_broken_connections(**kwargs) -> None:
    # Connections are kept between tasks (CELERY_DB_REUSE_MAX); one that failed is replaced.
    close_old_connections()


@shared_task(name="worker.tasks.predict_drawing")
def predict_drawing(drawing_id: str) -> None:
    """Predict this drawing and any queued behind it. Idempotent: an answered drawing is not stored again."""
    now = timezone.now()
    own = Drawing.objects.filter(pk=drawing_id).first()
    if own is None:
        log.warning("drawing %s does not exist", drawing_id)
    elif own.status != Drawing.Status.QUEUED:
        repush_if_lost(own, now)
        own = None
    batch = claim(own, now, settings.PREDICT_BATCH)
    if batch:
        push(record(batch))


@shared_task(name="worker.tasks.requeue_stale_drawings", ignore_result=True)
def requeue_stale_drawings() -> int:
    """The sweeper, run by Celery beat: nothing accepted stays queued for ever."""
    count = services.requeue_stale(settings.STALE_AFTER)
    if count:
        log.info("queued %d stale drawing(s) again", count)
    return count


def claim(own: Drawing | None, now, limit: int) -> list[Drawing]:
    """The task's own queued drawing, then the oldest other queued ones, marked as taken.

    A drawing another worker took less than CLAIM_SECONDS ago is left to it. Read, then take
    with one conditional UPDATE: of two workers reading the same drawing, the database lets
    only one change it, and the other learns from the row count and looks again.
    """
    free = Q(started_at__isnull=True) | Q(started_at__lt=now - timedelta(seconds=settings.CLAIM_SECONDS))
    queued = Drawing.objects.filter(free, status=Drawing.Status.QUEUED)
    batch = [own] if own else []
    if len(batch) < limit:  # the oldest others, along the (status, enqueued_at) index
        others = queued.exclude(pk=own.pk) if own else queued
        batch += others.order_by("enqueued_at")[: limit - len(batch)]
    if not batch:
        return []  # a batch-mate's task, the common case under load: no write
    taken = queued.filter(pk__in=[d.pk for d in batch]).update(started_at=now)
    if taken < len(batch):  # another worker holds some (or took them meanwhile)
        batch = marked(batch, started_at=now)
    for drawing in batch:
        drawing.started_at = now
    return batch


def repush_if_lost(drawing: Drawing, now) -> None:
    """Push an answered drawing again when its task comes back long after: the worker died before pushing."""
    if drawing.finished_at and drawing.finished_at < now - timedelta(seconds=settings.CLAIM_SECONDS):
        # Batch-mates' tasks come right after their batch was pushed; only a redelivery comes this late.
        push([drawing])


@dataclass
class Outcome:
    drawing: Drawing
    fields: dict = field(default_factory=dict)
    image: np.ndarray | None = None


def record(batch: list[Drawing]) -> list[Drawing]:
    """Predict a batch in one model call and store each outcome, unless another worker stored it first."""
    outcomes = [prepare(drawing) for drawing in batch]
    ready = [o for o in outcomes if o.image is not None]
    if ready:
        predict(ready)
    finished = timezone.now()
    for outcome in outcomes:
        outcome.fields["finished_at"] = finished
        for name, value in outcome.fields.items():
            setattr(outcome.drawing, name, value)
    return store([o.drawing for o in outcomes], sorted({name for o in outcomes for name in o.fields}))


def prepare(drawing: Drawing) -> Outcome:
    """Decode and preprocess one drawing; a drawing that cannot be predicted gets its status here."""
    outcome = Outcome(drawing, {"status": Drawing.Status.DONE})
    t0 = time.perf_counter()
    try:
        outcome.image = preprocess(bytes(drawing.image))
    except BlankDrawing as exc:
        outcome.fields.update(status=Drawing.Status.BLANK, error=str(exc))
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
        log.warning("drawing %s could not be read: %s", drawing.id, exc)
        outcome.fields.update(status=Drawing.Status.FAILED, error="the image could not be read")
    outcome.fields["preprocess_ms"] = round((time.perf_counter() - t0) * 1000, 3)
    return outcome


def predict(ready: list[Outcome]) -> None:
    model = active_model.current()
    t0 = time.perf_counter()
    try:
        probabilities = model.predict(np.stack([o.image for o in ready]))
    except SoftTimeLimitExceeded:
        # Not queued again: drawings that hang the model once would hang it every time.
        log.error("a batch of %d drawings took too long to predict", len(ready))
        for outcome in ready:
            outcome.fields.update(status=Drawing.Status.FAILED, error="the prediction took too long")
        return
    # The whole call's time: this drawing waited for all of it.
    predict_ms = round((time.perf_counter() - t0) * 1000, 3)
    for outcome, row in zip(ready, probabilities, strict=True):
        digit = int(row.argmax())
        outcome.fields.update(
            digit=digit,
            confidence=round(float(row[digit]), 6),
            probabilities=[round(float(p), 6) for p in row],
            uncertain=bool(row[digit] < model.uncertain_below),
            model_version=model.version,
            predict_ms=predict_ms,
        )


def store(drawings: list[Drawing], fields: list[str]) -> list[Drawing]:
    """Write the outcomes with one prepared conditional UPDATE in one transaction.

    executemany, not bulk_update: bulk_update builds a CASE per field and row, which costs
    more Python time than predicting the batch. Only a still-queued drawing is written, so a
    drawing another worker answered meanwhile keeps its first answer (and is not pushed again).
    """
    columns = [Drawing._meta.get_field(name) for name in fields]
    assignments = ", ".join(f"{connection.ops.quote_name(column.column)} = %s" for column in columns)
    # Table and column names come from the model; every value goes as a parameter.
    sql = f"UPDATE {Drawing._meta.db_table} SET {assignments} WHERE id = %s AND status = %s"
    queued = Drawing.Status.QUEUED.value
    rows = [
        [column.get_db_prep_save(getattr(d, column.attname), connection) for column in columns]
        + [Drawing._meta.pk.get_db_prep_value(d.pk, connection), queued]
        for d in drawings
    ]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(sql, rows)
        written = cursor.rowcount
    if written == len(drawings):
        return drawings
    return marked(drawings, finished_at=drawings[0].finished_at)  # the same for the whole batch


def marked(drawings: list[Drawing], **stamp) -> list[Drawing]:
    """Those of the drawings whose row carries this task's stamp: the ones its conditional UPDATE changed."""
    mine = set(Drawing.objects.filter(pk__in=[d.pk for d in drawings], **stamp).values_list("pk", flat=True))
    return [d for d in drawings if d.pk in mine]


async def send_results(drawings: list[Drawing]) -> list:
    layer = get_channel_layer()
    sends = [layer.group_send(d.group, {"type": "drawing.result", "drawing": d.result()}) for d in drawings]
    return await asyncio.gather(*sends, return_exceptions=True)


def push(drawings: list[Drawing]) -> None:
    """Send each stored result to its drawing's group, all at once; the database already has them."""
    global _push_loop
    # One event loop per process, kept, so the channel layer's Redis connections are
    # reused rather than opened and closed for each batch (as async_to_sync would).
    if _push_loop is None:
        _push_loop = asyncio.new_event_loop()
    outcomes = _push_loop.run_until_complete(send_results(drawings))
    for drawing, outcome in zip(drawings, outcomes, strict=True):
        if isinstance(outcome, Exception):
            log.warning("could not push drawing %s (%s); clients can ask for it", drawing.id, outcome)
