"""Stored drawings and users for tests."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib.auth.models import Group, User
from django.utils import timezone

from recognizer.models import Drawing
from training import samples


def not_yet_stale() -> datetime:
    """An enqueued_at the session's sweeper leaves alone: it queues again what waited over STALE_AFTER
    (3 s in tests), and the session's live worker would then answer these drawings before the task here."""
    return timezone.now() + timedelta(minutes=10)


def drawing(digit: int | None = 7, confidence: float | None = 0.98, image: bytes = samples.SEVEN, **fields) -> Drawing:
    """A drawing the model already answered (done), unless fields say otherwise."""
    probabilities = None
    if digit is not None:
        rest = (1 - confidence) / 9
        probabilities = [confidence if d == digit else rest for d in range(10)]
    values = {
        "image": image, "content_type": "image/png", "width": 280, "height": 280, "source": "ws",
        "status": "done" if digit is not None else "blank", "digit": digit, "confidence": confidence,
        "probabilities": probabilities, "model_version": "cnn-test",
    }  # fmt: skip
    return Drawing.objects.create(**{**values, **fields})


def arrived(**fields) -> Drawing:
    """A drawing stored as the web stores one that just arrived: queued (its prediction is not)."""
    new = Drawing.arrived(**fields)
    Drawing.store_arrived([new])
    return new


def reviewer(username: str = "reviewer") -> User:
    user = User.objects.create_user(username, password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="reviewer"))
    return user


def ink_drawing(body: dict, **fields) -> Drawing:
    """A drawing that came as strokes (an API strokes body): no image, its strokes and pen stored."""
    ink_fields = {"image": b"", "content_type": "", "strokes": body["strokes"], "pen": body.get("pen")}
    return drawing(**{**ink_fields, "width": body["width"], "height": body["height"], **fields})
