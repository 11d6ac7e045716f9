"""The review queue and quality figures behind the admin's review and quality pages."""

from __future__ import annotations

import io
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db.models import Count, F, Q
from django.db.models.functions import TruncDate
from django.http import QueryDict
from django.utils import timezone
from PIL import Image

from recognizer.errors import Refused
from recognizer.model_files import read_metadata, shipped_path
from recognizer.models import NOT_A_DIGIT, Drawing, ModelVersion, number_validators
from recognizer.preprocessing import BlankDrawing


def model_input_png(drawing: Drawing) -> bytes | None:
    """The 28x28 image the model saw, as a PNG (white ink on black, as in MNIST)."""
    try:
        pixels = drawing.model_input()
    except (BlankDrawing, Refused, OSError, ValueError):  # nothing drawn, or unreadable
        return None
    buffer = io.BytesIO()
    Image.fromarray((pixels * 255).round().astype("uint8")).save(buffer, "PNG")
    return buffer.getvalue()


def chosen_label(drawing: Drawing, form: QueryDict) -> tuple[int | None, str | None]:
    """The (label, number) a review-page form chose, or ValidationError saying why it is none.

    `label` is 0-9, "x" (not a digit), "confirm" (what the model read: a number drawing's number)
    or "number", with the corrected digits in `number`. A digit for a number drawing is its number,
    of that one digit.
    """
    choice = form.get("label", "")
    if choice == "number":
        number = form.get("number", "").strip()
        for check in number_validators:
            check(number)
        drawing.check_label(None, number)
        return None, number
    if choice == "confirm" and drawing.mode == Drawing.Mode.NUMBER and drawing.number:
        return None, drawing.number
    labels = {str(d): d for d in range(10)} | {"x": NOT_A_DIGIT, "confirm": drawing.digit}
    if labels.get(choice) is None:
        raise ValidationError(f"{choice!r} is not a label; use 0-9, Enter or X.")
    if drawing.mode == Drawing.Mode.NUMBER and choice.isdigit():
        return None, choice
    return labels[choice], None


def percent(share: float | None) -> str:
    """A share as the admin shows it: 98.89 %, not 0.9888888888888889."""
    return "–" if share is None else f"{share:.2%}".replace("%", " %")


def live_version() -> str:
    active = ModelVersion.active()
    if active:
        return active.version
    return read_metadata(shipped_path())["version"]


def quality(days: int = 30) -> dict:
    """Accuracy on reviewed drawings (overall, live model, per version), confusion matrix, volume per day."""
    # Drawings staff labeled as a digit, that the model read as one.
    reviewed = Drawing.objects.filter(label__isnull=False).exclude(label=NOT_A_DIGIT).filter(digit__isnull=False)
    # Number drawings staff gave the digits of, and how many the model read whole.
    numbers = Drawing.objects.filter(label_number__isnull=False).aggregate(
        total=Count("id"), right=Count("id", filter=Q(number=F("label_number")))
    )
    live = live_version()
    per_version = [
        {**row, "accuracy": row["right"] / row["total"], "percent": percent(row["right"] / row["total"])}
        for row in reviewed.values("model_version")
        .annotate(total=Count("id"), right=Count("id", filter=Q(label=F("digit"))))
        .order_by("-model_version")
    ]
    matrix = [[0] * 10 for _ in range(10)]
    for row in reviewed.values("label", "digit").annotate(n=Count("id")):
        matrix[row["label"]][row["digit"]] = row["n"]
    since = timezone.now() - timedelta(days=days)
    per_day = list(
        Drawing.objects.filter(created_at__gte=since)
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(n=Count("id"))
        .order_by("day")
    )
    live_row = next((row for row in per_version if row["model_version"] == live), None)
    return {
        "live_version": live,
        "live": live_row,
        "per_version": per_version,
        "matrix": matrix,
        "per_day": per_day,
        "busiest_day": max((row["n"] for row in per_day), default=0),
        "numbers": numbers,
        "reviewed": Drawing.objects.reviewed().count(),
        "to_review": Drawing.objects.review_queue().count(),
    }
