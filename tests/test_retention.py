"""Retention: old unreviewed drawings are deleted in batches; labelled drawings and model versions stay."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from recognizer import retention
from recognizer.models import Drawing, ModelVersion
from tests import factories

pytestmark = pytest.mark.django_db


def received(days_ago: float, **fields) -> Drawing:
    return factories.drawing(created_at=timezone.now() - timedelta(days=days_ago), **fields)


@pytest.fixture
def history():
    """Old and recent drawings, some labelled, and a model version."""
    long_ago = timezone.now() - timedelta(days=400)
    return {
        "old": [received(40) for _ in range(5)],
        "old_labelled": [received(40, label=7), received(400, label=10)],
        "old_queued": [received(40, status="queued", digit=None)],
        "recent": [received(29), received(0)],
        "version": ModelVersion.objects.create(version="v-old", artifact=b"keras", created_at=long_ago),
    }


def ids(drawings: list[Drawing]) -> set:
    return {d.pk for d in drawings}


def test_it_deletes_old_unreviewed_drawings_and_keeps_labelled_ones(history):
    assert retention.purge(30) == 6
    kept = set(Drawing.objects.values_list("pk", flat=True))
    assert kept == ids(history["old_labelled"]) | ids(history["recent"])
    assert ModelVersion.objects.filter(pk=history["version"].pk).exists()


def test_it_deletes_in_batches(history):
    with CaptureQueriesContext(connection) as queries:
        assert retention.purge(30, batch=2) == 6
    deletes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("DELETE")]
    assert len(deletes) == 3  # 2 + 2 + 2 rows, never one statement for all


def test_it_refuses_a_period_of_zero_days():
    with pytest.raises(ValueError):
        retention.purge(0)


def test_the_command_purges_with_the_given_period(history):
    out = io.StringIO()
    call_command("purge_drawings", "--older-than", "30", stdout=out)
    assert "6 unreviewed drawings older than 30 days deleted" in out.getvalue()
    assert Drawing.objects.count() == 4


def test_the_command_needs_a_period_when_drawings_are_kept_for_ever(history, settings):
    settings.RETAIN_DAYS = 0
    with pytest.raises(CommandError, match="--older-than"):
        call_command("purge_drawings")
    assert Drawing.objects.count() == 10


def test_beat_runs_the_same_purge_every_day_with_retain_days(history, settings):
    from worker.tasks import purge_old_drawings

    entry = settings.CELERY_BEAT_SCHEDULE["purge-old-drawings"]
    assert entry["task"] == purge_old_drawings.name
    assert entry["schedule"].remaining_estimate(timezone.now()) <= timedelta(days=1)
    settings.RETAIN_DAYS = 0
    assert purge_old_drawings() == 0 and Drawing.objects.count() == 10  # 0: kept for ever
    settings.RETAIN_DAYS = 30
    assert purge_old_drawings() == 6 and Drawing.objects.count() == 4
