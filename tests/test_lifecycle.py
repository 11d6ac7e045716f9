"""A drawing's life cycle on the real database: queued, claimed, stored, labeled (Drawing and its QuerySet)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from recognizer.models import NOT_A_DIGIT, Drawing
from tests.factories import arrived, drawing

pytestmark = pytest.mark.django_db


def queued(**fields) -> Drawing:
    return arrived(image=b"png", content_type="image/png", width=1, height=1, source="api", **fields)


def test_a_new_drawing_is_queued_now():
    new = queued()
    assert new.status == "queued" and new.created_at == new.enqueued_at and new.started_at is None


def test_only_drawings_queued_long_ago_are_queued_again_oldest_first():
    old, older, fresh = queued(), queued(), queued()
    now = timezone.now()
    Drawing.objects.filter(pk=old.pk).update(enqueued_at=now - timedelta(seconds=60))
    Drawing.objects.filter(pk=older.pk).update(enqueued_at=now - timedelta(seconds=90))
    drawing(enqueued_at=now - timedelta(seconds=90))  # answered: never queued again
    assert Drawing.objects.mark_stale_queued_again(30, limit=1) == [older.pk]
    assert Drawing.objects.mark_stale_queued_again(30, limit=10) == [old.pk]
    assert Drawing.objects.mark_stale_queued_again(30, limit=10) == []  # stamped as queued now
    assert Drawing.objects.get(pk=fresh.pk).enqueued_at == fresh.enqueued_at


def test_a_claim_takes_its_own_drawing_first_then_the_oldest_free_ones():
    first, second, third = queued(), queued(), queued()
    taken = queued(started_at=timezone.now())  # another worker's, within its hold
    now = timezone.now()
    claim = lambda own, at, limit: Drawing.objects.claim(own, at, limit=limit, hold=5, pixels=10**9)[0]  # noqa: E731
    batch = claim([third], now, 2)
    assert batch == [third, first] and all(d.started_at == now for d in batch)
    assert claim([], now, 10) == [second]
    assert claim([], now, 10) == []
    later = now + timedelta(seconds=10)  # every hold ran out: the oldest come back, alone as they were tried
    assert [claim([], later, 10) for _ in range(4)] == [[first], [second], [third], [taken]]


def test_a_message_of_several_drawings_takes_them_within_the_budget_and_leaves_the_rest():
    older, *own = queued(), queued(), queued(), queued()
    now = timezone.now()
    size = own[0].width * own[0].height
    batch, left = Drawing.objects.claim(own, now, limit=64, hold=5, pixels=2 * size)
    assert (batch, left) == (own[:2], own[2:])  # its own first, the oldest other not at all: full
    batch, left = Drawing.objects.claim(own[2:], now, limit=2, hold=5, pixels=10**9)
    assert (batch, left) == ([own[2], older], [])


def test_of_several_drawings_tried_before_the_first_goes_alone_and_the_rest_are_left():
    tried, also_tried, fresh = queued(attempts=1), queued(attempts=1), queued()
    batch, left = Drawing.objects.claim([tried, also_tried, fresh], timezone.now(), 64, 5, 10**9)
    assert (batch, left) == ([tried], [also_tried, fresh])


def test_outcomes_are_stored_only_on_drawings_still_queued():
    mine, answered_meanwhile = queued(), queued()
    Drawing.objects.filter(pk=answered_meanwhile.pk).update(status="done", digit=1)
    finished = timezone.now()
    for d in (mine, answered_meanwhile):
        d.status, d.digit, d.finished_at = "done", 7, finished
    written = Drawing.objects.store_outcomes([mine, answered_meanwhile], ["digit", "finished_at", "status"])
    assert written == [mine]
    assert Drawing.objects.get(pk=mine.pk).digit == 7
    assert Drawing.objects.get(pk=answered_meanwhile.pk).digit == 1  # its first answer stands


def test_labels_confirmations_and_clearing_define_reviewed(admin_user):
    seven, blank, scribble = drawing(), drawing(digit=None, confidence=None), drawing(confidence=0.3)
    assert list(Drawing.objects.review_queue()) == [scribble, seven, blank]  # least confident first
    assert Drawing.objects.filter(pk__in=[seven.pk, blank.pk]).confirm(admin_user) == 1  # blank has no prediction
    Drawing.objects.filter(pk=scribble.pk).label(NOT_A_DIGIT, admin_user)
    assert set(Drawing.objects.reviewed()) == {seven, scribble}
    assert Drawing.objects.get(pk=seven.pk).label == 7 and Drawing.objects.get(pk=seven.pk).labeled_by == admin_user
    scribble.label_as(None, admin_user)
    assert set(Drawing.objects.unreviewed()) == {blank, scribble}
    assert Drawing.objects.get(pk=scribble.pk).labeled_at is None
