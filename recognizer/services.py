"""Submitting drawings and waiting for their results; shared by the HTTP API and the websocket."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping

from channels.layers import get_channel_layer
from django.conf import settings
from kombu.exceptions import KombuError
from redis.exceptions import RedisError

from digitsite.celery import app as celery_app
from recognizer import backlog, images, ink, metrics, task_messages
from recognizer.errors import Refused
from recognizer.group_commit import GroupCommit
from recognizer.images import CheckedImage
from recognizer.ink import Ink
from recognizer.models import Drawing
from recognizer.publisher import Publisher

log = logging.getLogger(__name__)
PREDICT_TASK = "worker.tasks.predict_drawing"
# A wait keeps this long (or a quarter of it, if shorter) for its last look at the database, then
# looks again this often until its deadline.
LAST_LOOK_SECONDS = 0.25
LAST_POLL_EVERY = 0.05
# The most drawings stored in one transaction (what arrived while the last one committed).
STORE_MOST = 64


async def submit(
    drawn: CheckedImage | Ink,
    source: str,
    drawing_id: uuid.UUID | None = None,
    reply_to: str = "",
    mode: str = Drawing.Mode.DIGIT,
) -> Drawing:
    """Store the drawing (an image or strokes) as queued, then queue its prediction; returns once it is committed.

    `reply_to` is the channel-layer channel the worker sends the result to (empty: nobody waits);
    `mode` says whether to read one digit or a number (checked: see read_mode). It is stored
    with the drawings that arrive meanwhile (recognizer.group_commit).
    """
    drawing = Drawing.arrived(
        id=drawing_id or uuid.uuid4(), source=source, reply_to=reply_to, mode=mode, **stored_fields(drawn)
    )
    await arrivals.put(drawing)
    metrics.DRAWINGS_RECEIVED.labels(source).inc()
    return drawing


def stored_fields(drawn: CheckedImage | Ink) -> dict:
    """The columns that keep what was drawn: the image file as sent, or the strokes (and no image)."""
    if isinstance(drawn, Ink):
        return {"strokes": drawn.to_json(), "pen": drawn.pen, "width": drawn.width, "height": drawn.height}
    return {"image": drawn.data, "content_type": drawn.content_type, "width": drawn.width, "height": drawn.height}


def check_present(body: object) -> None:
    """Refuse a body that holds no drawing: cheap, so the websocket checks it before counting the frame."""
    if not isinstance(body, dict) or ("image" not in body and "strokes" not in body):
        raise Refused("missing_image", 'a drawing is a JSON object with "strokes" or an "image" data URL')


def read_mode(sent: Mapping[str, object]) -> str:
    """The `mode` a JSON body, frame or query string names ("digit" when it names none), or Refused.

    Named, it must be "digit" or "number" exactly: null, "" or "Number" is refused, as the
    OpenAPI document says.
    """
    mode = sent.get("mode", Drawing.Mode.DIGIT)
    if not (isinstance(mode, str) and mode in Drawing.Mode.values):
        raise Refused("invalid_mode", 'mode must be "digit" or "number"')
    return mode


def read_drawing(body: object) -> CheckedImage | Ink:
    """The drawing in a JSON object (an HTTP body or a websocket frame): `image` or `strokes`, checked."""
    check_present(body)
    if "strokes" in body:
        if "image" in body:
            raise Refused("image_and_strokes", 'send a drawing as "image" or as "strokes", not both')
        return ink.parse(body)
    return images.from_data_url(body["image"])


def send(drawing_ids: list[str]) -> None:
    """One message that predicts these drawings, by the task's name: the web must not import the model code."""
    try:
        task_messages.publish(PREDICT_TASK, drawing_ids, celery_app.conf.task_default_queue)
    except Exception:
        # They are stored and stay queued: not lost, only late (the sweeper sends them again).
        log.exception("could not queue %d drawing(s): %s", len(drawing_ids), ", ".join(drawing_ids))


# The web's publisher; a process that never queues a drawing never starts its thread.
publisher = Publisher(send, most=settings.PREDICT_BATCH)


def enqueue(drawing_id: uuid.UUID) -> None:
    """Queue the drawing's prediction, without waiting for the broker (see recognizer.publisher)."""
    publisher.put(str(drawing_id))


def store(drawings: list[Drawing]) -> None:
    """Store drawings that arrived together in one transaction, then queue their predictions.

    Their fields were checked as they arrived: what fails the transaction is the database
    itself, which would fail each of them alone too.
    """

    def queue_predictions() -> None:
        for drawing in drawings:
            enqueue(drawing.id)

    Drawing.store_arrived(drawings, then=queue_predictions)


arrivals = GroupCommit(store, most=STORE_MOST)


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
    lost = [str(drawing_id) for drawing_id in stale if str(drawing_id) not in waiting]
    for drawing_id in lost:
        send([drawing_id])  # one message each: a drawing tried before goes alone anyway
    return len(lost)


async def wait_for_result(drawing_id: uuid.UUID, reply_to: str, timeout: float) -> dict | None:
    """The drawing's result once a worker sends it to `reply_to`, or None when `timeout` runs out.

    The drawing was stored with `reply_to` (see `submit`), so the worker sends there: no group to
    join or leave, and a waiting request holds no thread. A Redis that fails makes the wait go on
    by polling the database; one that stops answering (packets dropped) is waited out, and the
    database has the last word a moment before the deadline.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    layer = get_channel_layer()
    try:
        async with asyncio.timeout_at(deadline - min(LAST_LOOK_SECONDS, timeout / 4)):
            try:
                return (await layer.receive(reply_to))["drawing"]
            except (RedisError, OSError):  # Redis is down or went away while we listened
                log.warning("the channel layer failed: polling for drawing %s", drawing_id)
                return await poll_for_result(drawing_id, deadline - loop.time())
    except TimeoutError:
        pass
    try:
        async with asyncio.timeout_at(deadline):
            # Not pushed here any more once unhooked: a result stored in the wait's last moment is
            # found in the database, so that the wait lasts as long as it was asked to.
            return await last_look(drawing_id, reply_to) or await poll_for_result(
                drawing_id, deadline - loop.time(), every=LAST_POLL_EVERY
            )
    except TimeoutError:
        return None


async def last_look(drawing_id: uuid.UUID, reply_to: str) -> dict | None:
    """The result if the database has one (its push was lost); else nobody waits at `reply_to` any more.

    Unhooking the channel keeps a late result from waiting in this process for a reader that
    left (channels-redis buffers messages for channels it does not know are gone).
    """
    await Drawing.objects.filter(pk=drawing_id).remove_waiter(reply_to)
    drawing = await Drawing.objects.without_payload().filter(pk=drawing_id).afirst()
    return drawing.result() if drawing and drawing.status != Drawing.Status.QUEUED else None


async def poll_for_result(drawing_id: uuid.UUID, timeout: float, every: float = 0.1) -> dict | None:
    """The slow way to wait, for when Redis is down: look at the database until it has a result (None:
    none in time, or the drawing was deleted meanwhile)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        drawing = await Drawing.objects.without_payload().filter(pk=drawing_id).afirst()
        if drawing is None or drawing.status != Drawing.Status.QUEUED:
            return drawing and drawing.result()
        if asyncio.get_running_loop().time() + every > deadline:
            return None
        await asyncio.sleep(every)
