"""The prediction task: take queued drawings, predict them together, store, then send each result to its waiter.

Micro-batching without waiting: a task always starts at once, and takes with its own
drawing any others queued behind it (up to PREDICT_BATCH drawings and PREDICT_BATCH_PIXELS
pixels, oldest first). Their own tasks arrive later, find them answered, and do nothing.

One drawing never stops the others: each is read alone, and whatever goes wrong with it (an
exception, the time limit) fails that drawing with a reason while the rest are answered. A
drawing whose tries never finish (the worker died on it) ends failed after MAX_ATTEMPTS.

A number drawing (mode "number") is cut into candidate digits (recognizer/segmentation.py) while
it is read, and the likeliest of them by their shapes are drawn: they go into the batch's model call
with the digit drawings' inputs. A second call, for every number drawing at once, reads those that
could still change a reading (`reading.to_read`); the rest are never drawn or read. Each
drawing's reading is chosen from its own rows.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import numpy as np
from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import task_prerun, worker_init, worker_process_init
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone
from redis.exceptions import RedisError

from recognizer import ink, reading, retention, segmentation, services
from recognizer.models import NUMBER_MAX_DIGITS, Drawing
from recognizer.preprocessing import BlankDrawing
from worker import active_model, replies

log = logging.getLogger(__name__)
_push_loop: asyncio.AbstractEventLoop | None = None


@worker_init.connect
def refuse_to_start_without_a_model(**kwargs) -> None:
    # In the main process, before it takes any message: SystemExit is the one exception Celery's
    # signals let through, so the worker stops here with the reason.
    active_model.fallback_or_exit()


@worker_process_init.connect
def load_model_before_the_first_drawing(**kwargs) -> None:
    # In each pool child, after the fork (an interpreter must not cross one): load and plan now.
    active_model.current()


@task_prerun.connect
def drop_broken_connections(**kwargs) -> None:
    # Connections are kept between tasks (CELERY_DB_REUSE_MAX); one that failed is replaced.
    close_old_connections()


@shared_task(name="worker.tasks.predict_drawing", bind=True)
def predict_drawing(self, *drawing_ids: str) -> None:
    """Predict these drawings and any queued behind them. Idempotent: an answered drawing is not stored again.

    A message names one drawing, or several that reached the web's publisher together.
    """
    now = timezone.now()
    # Only the queued ones are read whole: under load most of a message's drawings were answered
    # by an earlier batch, and decoding their strokes again was half the JSON work of the worker.
    own = Drawing.objects.load(drawing_ids, queued=True)
    others = set(drawing_ids) - {str(d.pk) for d in own}
    answered = Drawing.objects.existing(others)
    for missing in others - answered:
        log.warning("drawing %s does not exist", missing)
    if answered and (self.request.delivery_info or {}).get("redelivered"):
        # A message given back (its worker died, or stopped, before acknowledging it) whose
        # drawings were stored: their results may never have been sent. Sent again; a client
        # that has one already ignores the second. A batch-mate's own message, however late
        # it comes in a long queue, was not given back: its batch sent the result.
        push(list(Drawing.objects.without_payload().filter(pk__in=answered)))
    if not own and not answered:
        # Deleted (purged) or never stored: no drawing of its own to start a batch with. The queued
        # drawings it would take have messages of their own (and a worker that takes them from a
        # message of nothing would race whatever handles them).
        return
    batch, left = Drawing.objects.claim(
        own, now, settings.PREDICT_BATCH, settings.CLAIM_SECONDS, settings.PREDICT_BATCH_PIXELS
    )
    if left:
        # Over the batch's budget, or not to be tried with a drawing tried before: their own message.
        services.send([str(d.pk) for d in left])
    if batch:
        push(record(batch))


@shared_task(name="worker.tasks.requeue_stale_drawings", ignore_result=True)
def requeue_stale_drawings() -> int:
    """The sweeper, run by Celery beat: nothing accepted stays queued for ever."""
    count = services.requeue_stale(settings.STALE_AFTER)
    if count:
        log.info("queued %d stale drawing(s) again", count)
    return count


@shared_task(name="worker.tasks.purge_old_drawings", ignore_result=True)
def purge_old_drawings() -> int:
    """Retention, run daily by Celery beat: what `manage.py purge_drawings` does, with RETAIN_DAYS."""
    if not settings.RETAIN_DAYS:
        return 0  # keep every drawing
    return retention.purge(settings.RETAIN_DAYS)


@dataclass
class Outcome:
    drawing: Drawing
    fields: dict = field(default_factory=dict)
    image: np.ndarray | None = None  # a digit drawing's input
    candidates: segmentation.Segmentation | None = None  # a number drawing's candidate digits,
    rows: np.ndarray | None = None  # the model's rows for them (NaN: unread),
    wanted: tuple[list[int], np.ndarray] | None = None  # and those to read next with their inputs
    timed_out: bool = False  # the task's soft time limit struck while this drawing was read

    @property
    def ready(self) -> bool:
        return self.image is not None or self.candidates is not None


def record(batch: list[Drawing]) -> list[Drawing]:
    """Predict a batch in one model call and store each outcome, unless another worker stored it first.

    Drawings the task had no time left to read are given back, queued, for the next task.
    """
    outcomes = prepare_in_time(batch)
    if untried := batch[len(outcomes) :]:
        Drawing.objects.release(untried, batch[0].started_at)
        log.warning("out of time: %d of %d drawings left for the next task", len(untried), len(batch))
    ready = [o for o in outcomes if o.ready]
    if ready:
        predict(ready)
    finished = timezone.now()
    for outcome in outcomes:
        outcome.fields["finished_at"] = finished
        for name, value in outcome.fields.items():
            setattr(outcome.drawing, name, value)
    fields = sorted({name for o in outcomes for name in o.fields})
    return Drawing.objects.store_outcomes([o.drawing for o in outcomes], fields)


def prepare_in_time(batch: list[Drawing]) -> list[Outcome]:
    """Outcomes for the first drawings of the batch, as many as the task's time allows (at least one).

    The pixel budget keeps a batch far from the soft time limit; this is the backstop (a slow
    machine, a slow decoder): past half the limit no further drawing is started, and once the
    limit struck none is.
    """
    deadline = time.monotonic() + settings.CELERY_TASK_SOFT_TIME_LIMIT / 2
    outcomes: list[Outcome] = []
    for drawing in batch:
        if outcomes and (outcomes[-1].timed_out or time.monotonic() > deadline):
            break
        outcomes.append(prepare(drawing))
    return outcomes


def prepare(drawing: Drawing) -> Outcome:
    """Decode and preprocess one drawing; a drawing that cannot be predicted gets its status here.

    Whatever goes wrong fails this drawing alone, with the reason stored.
    """
    outcome = Outcome(drawing, {"status": Drawing.Status.DONE})
    if drawing.attempts > settings.MAX_ATTEMPTS:
        # Every earlier try ended with its worker or task gone before storing: another would too.
        outcome.fields.update(status=Drawing.Status.FAILED, error=f"gave up after {settings.MAX_ATTEMPTS} attempts")
        return outcome
    t0 = time.perf_counter()
    try:
        if drawing.mode == Drawing.Mode.NUMBER:
            candidates = segment(drawing)
            outcome.rows = reading.unread(candidates)
            outcome.wanted = wanted(candidates, outcome.rows)
            outcome.candidates = candidates  # ready to read only once all of this is done
        else:
            outcome.image = drawing.model_input()
    except BlankDrawing as exc:
        outcome.fields.update(status=Drawing.Status.BLANK, error=str(exc))
    except segmentation.TooLong as exc:
        outcome.fields.update(status=Drawing.Status.FAILED, error=str(exc))
    except SoftTimeLimitExceeded:
        log.error("drawing %s took too long to read", drawing.id)
        outcome.fields.update(status=Drawing.Status.FAILED, error="the image took too long to read")
        outcome.timed_out = True
    except Exception as exc:
        # A file that passed the upload check can still make Pillow or numpy raise nearly
        # anything (SyntaxError, MemoryError...): it fails alone, and its batch goes on.
        log.warning("drawing %s could not be read: %r", drawing.id, exc)
        outcome.fields.update(status=Drawing.Status.FAILED, error="the image could not be read")
    outcome.fields["preprocess_ms"] = round((time.perf_counter() - t0) * 1000, 3)
    return outcome


def segment(drawing: Drawing) -> segmentation.Segmentation:
    """A number drawing's candidate digits, from its strokes or its image; or BlankDrawing."""
    if drawing.strokes is not None:
        return segmentation.from_ink(ink.Ink.from_stored(drawing.strokes, drawing.width, drawing.height, drawing.pen))
    return segmentation.from_image(bytes(drawing.image))


def wanted(candidates: segmentation.Segmentation, rows: np.ndarray) -> tuple[list[int], np.ndarray]:
    """A number drawing's candidates to read next, drawn: (their indices, their inputs)."""
    return reading.inputs(candidates, reading.to_read(candidates, rows))


def predict(ready: list[Outcome]) -> None:
    """One model call for the batch: the digit drawings' inputs and the number drawings' first
    candidates; then one for the candidates that could still change a number's reading, if any
    (a third is never needed: see reading.to_read)."""
    model = active_model.current()
    digits = [o for o in ready if o.image is not None]
    numbers = [o for o in ready if o.candidates is not None]
    t0 = time.perf_counter()
    try:
        # (A number whose every piece proved unreadable offers nothing to read: it adds no rows.)
        probabilities = model.predict(np.concatenate([o.image[None] for o in digits] + [o.wanted[1] for o in numbers]))
        reading.read_in([o.rows for o in numbers], [o.wanted for o in numbers], probabilities[len(digits) :])
        while more := [o for o in numbers if wants_more(o)]:
            rows = model.predict(np.concatenate([o.wanted[1] for o in more]))
            reading.read_in([o.rows for o in more], [o.wanted for o in more], rows)
    except SoftTimeLimitExceeded:
        # Not queued again: drawings that hang the model once would hang it every time.
        log.error("a batch of %d drawings took too long to predict", len(ready))
        for outcome in ready:
            outcome.fields.update(status=Drawing.Status.FAILED, error="the prediction took too long")
        return
    # The whole call's time: this drawing waited for all of it.
    done = {"model_version": model.version, "predict_ms": round((time.perf_counter() - t0) * 1000, 3)}
    for outcome, row in zip(digits, probabilities[: len(digits)], strict=True):
        digit = int(row.argmax())
        outcome.fields.update(
            digit=digit,
            confidence=round(float(row[digit]), 6),
            probabilities=[round(float(p), 6) for p in row],
            uncertain=bool(row[digit] < model.uncertain_below),
            **done,
        )
    for outcome in numbers:
        if outcome.fields["status"] == Drawing.Status.DONE:  # not failed drawing its later candidates
            outcome.fields.update(read_number(outcome, model.uncertain_below), **done)


def wants_more(outcome: Outcome) -> bool:
    """Whether a number drawing has candidates left to read (drawn now); one that fails to draw fails alone."""
    if outcome.fields["status"] != Drawing.Status.DONE:
        return False
    try:
        outcome.wanted = wanted(outcome.candidates, outcome.rows)
    except SoftTimeLimitExceeded:
        raise
    except Exception as exc:
        log.warning("drawing %s could not be read as a number: %r", outcome.drawing.id, exc)
        outcome.fields.update(status=Drawing.Status.FAILED, error="the number could not be read")
        return False
    return bool(outcome.wanted[0])


def read_number(outcome: Outcome, uncertain_below: float) -> dict:
    """A number drawing's fields from its candidates' rows; what goes wrong fails this drawing alone."""
    try:
        chosen = reading.choose(outcome.candidates, outcome.rows)
    except Exception as exc:
        log.warning("drawing %s could not be read as a number: %r", outcome.drawing.id, exc)
        return {"status": Drawing.Status.FAILED, "error": "the number could not be read"}
    if not chosen.digits:  # only specks
        return {"status": Drawing.Status.BLANK, "error": "no digit found"}
    if len(chosen.digits) > NUMBER_MAX_DIGITS:
        # Longer than the number column holds: storing it would fail the whole batch's write.
        return {"status": Drawing.Status.FAILED, "error": f"more than {NUMBER_MAX_DIGITS} digits"}
    one = chosen.digits[0] if len(chosen.digits) == 1 else None
    confidence = round(chosen.confidence, 6)
    # Boxes as finely as the points: to 0.1 in units of 0-1 they were a tenth of the drawing off.
    places = ink.stored_places(max(outcome.drawing.width or 1, outcome.drawing.height or 1))
    return {
        "number": chosen.number,
        "digits": [d.as_dict(places) for d in chosen.digits],
        "confidence": confidence,
        # A digit and its ten probabilities only where exactly one digit was read (DESIGN.md).
        "digit": one.digit if one else None,
        "probabilities": [round(p, 6) for p in one.probabilities] if one else None,
        "uncertain": confidence < uncertain_below,
    }


def push(drawings: list[Drawing]) -> None:
    """Send each stored result to whoever waits for it; the database already has them all.

    The channels are read again now: a client that asked for a drawing's status from another
    socket while it was predicted has added its own (`add_waiter`), and such an addition either
    happened before the results were stored, and is seen here, or found them stored.
    """
    global _push_loop
    waiting = Drawing.objects.reply_channels(d.pk for d in drawings)
    messages = [
        (channel, {"type": "drawing.result", "drawing": d.result()})
        for d in drawings
        for channel in waiting.get(d.pk, "").split()  # usually one: the socket or request that sent it
    ]
    if not messages:
        return
    # One event loop per process, kept, so the channel layer's Redis connections are
    # reused rather than opened and closed for each batch (as async_to_sync would).
    if _push_loop is None:
        _push_loop = asyncio.new_event_loop()
    try:
        _push_loop.run_until_complete(replies.send_all(get_channel_layer(), messages))
    except (RedisError, OSError) as exc:
        log.warning("could not send %d result(s) (%s); clients can ask for them", len(messages), exc)
