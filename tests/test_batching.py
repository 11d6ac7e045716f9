"""Micro-batching in the worker's task, run in-process against the real database and Redis channel layer."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from channels.layers import get_channel_layer
from django.test import override_settings
from django.utils import timezone

from recognizer.models import Drawing
from tests.factories import drawing
from training import samples
from training.samples import ONE, SEVEN
from worker import tasks

pytestmark = pytest.mark.django_db(transaction=True)


def queued(image: bytes = SEVEN, **fields) -> Drawing:
    return drawing(digit=None, confidence=None, image=image, status="queued", enqueued_at=timezone.now(), **fields)


class Listening:
    """Subscribed to some drawings' groups on the worker's own push loop; collects the pushes that come."""

    def __init__(self, ids: list) -> None:
        if tasks._push_loop is None:
            tasks._push_loop = asyncio.new_event_loop()
        self.loop, self.layer = tasks._push_loop, get_channel_layer()
        self.channel = self.loop.run_until_complete(self.layer.new_channel())
        for drawing_id in ids:
            self.loop.run_until_complete(self.layer.group_add(f"drawing.{drawing_id}", self.channel))

    def received(self, wait: float = 0.5) -> list[dict]:
        results = []
        while True:
            try:
                message = self.loop.run_until_complete(asyncio.wait_for(self.layer.receive(self.channel), wait))
            except TimeoutError:
                return results
            results.append(message["drawing"])


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
    assert listening.received(0.2) == []


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


def test_an_answered_drawing_is_pushed_again_only_when_its_task_comes_back_late():
    recent = drawing(finished_at=timezone.now())
    late = drawing(finished_at=timezone.now() - timedelta(minutes=2))
    listening = Listening([recent.pk, late.pk])
    tasks.predict_drawing(str(recent.pk))
    tasks.predict_drawing(str(late.pk))
    assert [r["id"] for r in listening.received()] == [str(late.pk)]


def test_a_missing_drawing_is_logged_not_raised(caplog):
    tasks.predict_drawing("00000000-0000-0000-0000-000000000000")
    assert "does not exist" in caplog.text
