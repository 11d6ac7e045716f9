"""Micro-batching in the worker's task, run in-process against the real database and Redis channel layer."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from datetime import timedelta

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from channels import DEFAULT_CHANNEL_LAYER
from channels.layers import channel_layers
from django.contrib.auth.models import User
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from recognizer import preprocessing
from recognizer.models import Drawing
from tests import crafted
from tests.factories import drawing, not_yet_stale
from training import samples
from training.samples import ONE, SEVEN
from worker import tasks

pytestmark = pytest.mark.django_db(transaction=True)


def queued(image: bytes = SEVEN, **fields) -> Drawing:
    return drawing(digit=None, confidence=None, image=image, status="queued", enqueued_at=not_yet_stale(), **fields)


class Listening:
    """Waiting for some drawings' results on the worker's own push loop; collects the results sent."""

    def __init__(self, ids: list) -> None:
        if tasks._push_loop is None:
            tasks._push_loop = asyncio.new_event_loop()
        # A layer of its own to receive on: the shared one stays bound to the loop of whichever
        # test received on it before (test_websocket's), and refuses another.
        self.loop, self.layer = tasks._push_loop, channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
        self.channel = self.loop.run_until_complete(self.layer.new_channel())
        Drawing.objects.filter(pk__in=ids).update(reply_to=self.channel)  # as submit stores it

    def received(self) -> list[dict]:
        """The results sent so far, read up to a marker sent now: no receive is left to time out, for
        channels_redis can lose the next message to a channel whose receive was cancelled while it
        waited (a check that nothing came, then a push, read nothing one time in four)."""
        self.loop.run_until_complete(self.layer.send(self.channel, {"type": "marker"}))
        results = []
        while (message := self.loop.run_until_complete(self.layer.receive(self.channel)))["type"] != "marker":
            results.append(message["drawing"])
        return results


def test_one_task_answers_every_drawing_queued_behind_it_in_one_batch():
    batch = [queued(SEVEN), queued(ONE), queued(samples.blank(style="dark_on_light")), queued(b"\x89PNG broken")]
    listening = Listening([d.pk for d in batch])
    tasks.predict_drawing(str(batch[1].pk))
    stored = {d.pk: d for d in Drawing.objects.filter(pk__in=[d.pk for d in batch])}
    assert [stored[d.pk].status for d in batch] == ["done", "done", "blank", "failed"]
    assert (stored[batch[0].pk].digit, stored[batch[1].pk].digit) == (7, 1)
    assert len({stored[d.pk].started_at for d in batch}) == 1  # one batch
    assert stored[batch[0].pk].uncertain is False and stored[batch[0].pk].model_version
    pushed = listening.received()
    assert sorted(r["id"] for r in pushed) == sorted(str(d.pk) for d in batch)
    # The batch-mates' own tasks come next: nothing left to do, nothing pushed twice.
    for d in batch:
        tasks.predict_drawing(str(d.pk))
    assert listening.received() == []


@override_settings(PREDICT_BATCH=1)
def test_a_batch_of_one_takes_only_its_own_drawing():
    first, second = queued(), queued()
    tasks.predict_drawing(str(second.pk))
    assert Drawing.objects.get(pk=second.pk).status == "done"
    assert Drawing.objects.get(pk=first.pk).status == "queued"


def test_drawings_another_worker_just_took_are_left_to_it_until_the_claim_runs_out():
    taken = queued(started_at=timezone.now())
    abandoned = queued(started_at=timezone.now() - timedelta(minutes=1))
    own = queued()
    tasks.predict_drawing(str(own.pk))
    assert Drawing.objects.get(pk=taken.pk).status == "queued"
    assert Drawing.objects.get(pk=abandoned.pk).status == "done"
    tasks.predict_drawing(str(taken.pk))  # its own task, while the claim holds: left alone
    assert Drawing.objects.get(pk=taken.pk).status == "queued"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL (DATABASE_URL) only")
def test_the_claim_and_the_sweeper_pass_over_a_drawing_a_vanished_worker_holds_locked():
    held, free = queued(), queued()
    # Another worker's write, its network cut midway through a pipelined executemany: its
    # backend holds the row's lock and waits for the rest of the pipeline (not "idle in
    # transaction", so no idle timeout ends it; only the session's TCP keepalives do).
    other = connection.get_new_connection(connection.get_connection_params())
    other.autocommit = True
    try:
        crafted.write_left_halfway(
            other, b"UPDATE recognizer_drawing SET attempts = 0 WHERE id = $1", [str(held.pk).encode()]
        )
        with connection.cursor() as cursor:
            # The settings' session options, which end such a session within seconds.
            cursor.execute("SELECT current_setting('tcp_keepalives_idle'), current_setting('tcp_user_timeout')")
            assert cursor.fetchone() == ("5", "10000")
            cursor.execute("SET lock_timeout = '3s'")  # without the skip, a lock error instead of a hang
            deadline = time.monotonic() + 5
            while cursor.execute(crafted.HOLDS_A_WRITE_LOCK, [other.pgconn.backend_pid]).fetchone()[0] == 0:
                assert time.monotonic() < deadline, "the other session never took its lock"
                time.sleep(0.05)
        started = time.monotonic()
        batch, _ = Drawing.objects.claim([], timezone.now(), limit=64, hold=5, pixels=10**9)
        assert [d.pk for d in batch] == [free.pk] and time.monotonic() - started < 1
        Drawing.objects.filter(pk=free.pk).update(started_at=None)
        assert Drawing.objects.mark_stale_queued_again(older_than=-3600, limit=10) == [free.pk]
    finally:
        other.close()
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")


def test_an_answered_drawing_is_pushed_again_only_when_its_message_was_given_back():
    # A batch-mate's own message, hours late in a long queue, and the same drawing's message
    # given back by a worker that died before acknowledging it (kombu marks it redelivered).
    answered = drawing(finished_at=timezone.now() - timedelta(hours=2))
    listening = Listening([answered.pk])
    tasks.predict_drawing(str(answered.pk))
    assert listening.received() == []
    tasks.predict_drawing.push_request(delivery_info={"redelivered": True})
    try:
        tasks.predict_drawing(str(answered.pk))
    finally:
        tasks.predict_drawing.pop_request()
    assert [r["id"] for r in listening.received()] == [str(answered.pk)]


def test_a_missing_drawing_is_logged_not_raised_and_takes_no_other(caplog):
    waiting = queued(SEVEN)
    tasks.predict_drawing("00000000-0000-0000-0000-000000000000")
    assert "does not exist" in caplog.text
    waiting.refresh_from_db()
    assert waiting.status == "queued" and waiting.started_at is None  # left to its own message


def statuses(batch: list[Drawing]) -> list[str]:
    stored = {d.pk: d for d in Drawing.objects.filter(pk__in=[d.pk for d in batch])}
    return [stored[d.pk].status for d in batch]


def test_files_that_break_the_reader_fail_alone_and_their_batch_is_answered():
    # Stored as they are, past the upload check: what a worker meets if one slips through.
    poison = [
        crafted.bad_compression_after_pixels(b"zTXt"),  # SyntaxError in Pillow's load()
        crafted.bad_compression_after_pixels(b"iCCP"),
        crafted.corrupt_pixels(),  # OSError
        crafted.short_pixels(),
        b"not an image at all",  # UnidentifiedImageError
    ]
    batch = [queued(SEVEN)] + [queued(image) for image in poison] + [queued(ONE)]
    listening = Listening([d.pk for d in batch])
    tasks.predict_drawing(str(batch[0].pk))
    assert statuses(batch) == ["done"] + ["failed"] * len(poison) + ["done"]
    failed = Drawing.objects.filter(status="failed")
    assert {d.error for d in failed} == {"the image could not be read"}
    assert sorted(r["id"] for r in listening.received()) == sorted(str(d.pk) for d in batch)


@pytest.mark.parametrize("error", [KeyError("x"), MemoryError(), RecursionError(), ZeroDivisionError()])
def test_any_exception_while_reading_fails_that_drawing_alone(monkeypatch, error):
    def reader(data: bytes):
        if data == ONE:
            raise error
        return preprocessing.preprocess(data)

    monkeypatch.setattr(Drawing, "model_input", lambda drawing: reader(bytes(drawing.image)))
    batch = [queued(SEVEN), queued(ONE), queued(SEVEN)]
    tasks.predict_drawing(str(batch[0].pk))
    assert statuses(batch) == ["done", "failed", "done"]


def test_a_drawing_that_hits_the_soft_time_limit_fails_and_the_rest_are_answered(monkeypatch):
    """The limit as Celery delivers it: a signal raising SoftTimeLimitExceeded in the middle of a read."""
    slow = samples.digit_canvas(samples.digits(1)[0][0], "dark_on_light")

    def reader(data: bytes):
        if data == slow:
            time.sleep(5)  # hangs: the signal comes first
        return preprocessing.preprocess(data)

    def soft_time_limit(signum, frame):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(Drawing, "model_input", lambda drawing: reader(bytes(drawing.image)))
    batch = [queued(SEVEN), queued(slow), queued(ONE), queued(SEVEN)]
    previous = signal.signal(signal.SIGALRM, soft_time_limit)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    try:
        started = time.monotonic()
        tasks.predict_drawing(str(batch[0].pk))
        took = time.monotonic() - started
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert took < 3
    assert statuses(batch) == ["done", "failed", "queued", "queued"]
    assert Drawing.objects.get(pk=batch[1].pk).error == "the image took too long to read"
    # Those not started are given back untried, free at once: the next task batches them.
    left = Drawing.objects.filter(pk__in=[batch[2].pk, batch[3].pk])
    assert {(d.started_at, d.attempts) for d in left} == {(None, 0)}
    tasks.predict_drawing(str(batch[2].pk))
    assert statuses(batch) == ["done", "failed", "done", "done"]


@override_settings(CELERY_TASK_SOFT_TIME_LIMIT=1)
def test_a_batch_starts_no_drawing_past_half_its_time_and_leaves_the_rest_queued(monkeypatch):
    def reader(data: bytes):
        time.sleep(0.3)  # two reads fit in the half second, the third would not start
        return preprocessing.preprocess(data)

    monkeypatch.setattr(Drawing, "model_input", lambda drawing: reader(bytes(drawing.image)))
    batch = [queued(SEVEN), queued(ONE), queued(SEVEN), queued(ONE)]
    tasks.predict_drawing(str(batch[0].pk))
    assert statuses(batch) == ["done", "done", "queued", "queued"]
    monkeypatch.undo()
    tasks.predict_drawing(str(batch[3].pk))  # the next task: the two left, in one batch
    assert statuses(batch) == ["done"] * 4
    assert Drawing.objects.get(pk=batch[2].pk).started_at == Drawing.objects.get(pk=batch[3].pk).started_at


@override_settings(PREDICT_BATCH_PIXELS=3 * 280 * 280)
def test_a_batch_stops_at_its_pixel_budget_and_its_own_drawing_always_goes():
    canvases = [queued(SEVEN) for _ in range(4)]
    own = queued(SEVEN)
    tasks.predict_drawing(str(own.pk))
    # Its own drawing and the two oldest fill the 3 canvases' worth of pixels.
    assert statuses([*canvases, own]) == ["done", "done", "queued", "queued", "done"]
    huge = queued(crafted.largest_png(), width=crafted.largest_side(), height=crafted.largest_side())
    tasks.predict_drawing(str(huge.pk))  # far over the budget alone: it goes, alone
    assert statuses([huge, *canvases[2:]]) == ["done", "queued", "queued"]
    assert Drawing.objects.get(pk=huge.pk).digit == 7


@override_settings(MAX_ATTEMPTS=3)
def test_a_drawing_taken_max_attempts_times_ends_failed_and_is_pushed():
    long_ago = timezone.now() - timedelta(minutes=5)
    # Taken three times already, each time its worker died (the claim ran out, nothing stored).
    doomed = queued(SEVEN, attempts=3, started_at=long_ago)
    listening = Listening([doomed.pk])
    tasks.predict_drawing(str(doomed.pk))
    stored = Drawing.objects.get(pk=doomed.pk)
    assert (stored.status, stored.error, stored.attempts) == ("failed", "gave up after 3 attempts", 4)
    [pushed] = listening.received()
    assert (pushed["status"], pushed["error"]) == ("failed", "gave up after 3 attempts")


def test_a_drawing_tried_before_is_tried_alone_and_answered():
    long_ago = timezone.now() - timedelta(minutes=5)
    survivor = queued(SEVEN, attempts=2, started_at=long_ago)  # its batch's worker died twice
    fresh = [queued(ONE), queued(SEVEN)]
    tasks.predict_drawing(str(survivor.pk))
    assert statuses([survivor, *fresh]) == ["done", "queued", "queued"]
    assert Drawing.objects.get(pk=survivor.pk).attempts == 3
    # And a fresh drawing's task does not take a tried one into its batch.
    other = queued(SEVEN, attempts=1, started_at=long_ago)
    tasks.predict_drawing(str(fresh[0].pk))
    assert statuses([*fresh, other]) == ["done", "done", "queued"]


def test_every_claim_counts_an_attempt_in_its_one_update(django_assert_max_num_queries):
    batch = [queued(SEVEN), queued(ONE)]
    with django_assert_max_num_queries(3):  # sizes, rows, the conditional UPDATE
        taken, _ = Drawing.objects.claim(batch[:1], timezone.now(), 64, 5, 10**9)
    assert [d.attempts for d in taken] == [1, 1]
    assert list(Drawing.objects.filter(pk__in=[d.pk for d in batch]).values_list("attempts", flat=True)) == [1, 1]


def test_the_tasks_plain_sql_reads_drawings_as_the_orm_does():
    reviewer = User.objects.create_user("staff")
    number = drawing(
        digit=None, mode="number", number="42", digits=[{"digit": 4, "box": [0, 0, 1, 1]}], label_number="42",
        labeled_by=reviewer, labeled_at=timezone.now(), reply_to="specific.abc!def", started_at=timezone.now(),
    )  # fmt: skip
    strokes = queued(image=b"", strokes=[[[1.5, 2.0], [3.0, 4.25]]], pen=12.0, reply_to="")
    image = queued()
    ids = [number.pk, str(strokes.pk), image.pk]  # a task's message names them as strings
    loaded = Drawing.objects.load(ids)
    by_orm = Drawing.objects.filter(pk__in=ids).order_by("enqueued_at")
    assert [d.pk for d in loaded] == [d.pk for d in by_orm]
    for mine, theirs in zip(loaded, by_orm, strict=True):
        fields = [f.attname for f in Drawing._meta.concrete_fields]
        assert {f: getattr(mine, f) for f in fields} == {f: getattr(theirs, f) for f in fields}
        assert not mine._state.adding
    assert Drawing.objects.reply_channels(ids) == {number.pk: "specific.abc!def"}
    assert [d.pk for d in Drawing.objects.load(ids, queued=True)] == [strokes.pk, image.pk]
    gone = uuid.uuid4()
    assert Drawing.objects.existing([*ids, gone]) == {str(number.pk), str(strokes.pk), str(image.pk)}
    assert Drawing.objects.load([]) == [] and Drawing.objects.reply_channels([]) == {}
    assert Drawing.objects.existing([]) == set()
