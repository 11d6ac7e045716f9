"""Number drawings through the worker's task: batched with digit drawings, stored, pushed, failing alone."""

from __future__ import annotations

import numpy as np
import pytest
import requests

from benchmarks.hostile import bars_png
from recognizer import segmentation
from recognizer.models import NUMBER_MAX_DIGITS, Drawing
from tests.factories import drawing, ink_drawing, not_yet_stale
from tests.test_batching import Listening
from tests.test_segmentation import number_body, png_of
from training import samples
from worker import active_model, tasks

pytestmark = pytest.mark.django_db(transaction=True)


def queued_number(body: dict | None = None, image: bytes | None = None) -> Drawing:
    """A number drawing waiting for the worker: strokes (a body) or an image file."""
    waiting = {"digit": None, "confidence": None, "status": "queued", "enqueued_at": not_yet_stale(), "mode": "number"}
    if image is not None:
        return drawing(image=image, width=body["width"], height=body["height"], **waiting)
    return ink_drawing(body, **waiting)


def stored(batch: list[Drawing]) -> list[Drawing]:
    rows = {d.pk: d for d in Drawing.objects.filter(pk__in=[d.pk for d in batch])}
    return [rows[d.pk] for d in batch]


def test_number_drawings_are_read_in_the_same_model_call_as_digit_drawings(monkeypatch):
    body = number_body([2, 0, 4, 8])
    batch = [
        queued_number(body),
        drawing(digit=None, confidence=None, image=samples.SEVEN, status="queued", enqueued_at=not_yet_stale()),
        queued_number(body, image=png_of(body)),
        queued_number(number_body([6])),
    ]
    model = active_model.current()
    calls = []

    def counted(images):
        calls.append(len(images))
        return type(model).predict(model, images)

    monkeypatch.setattr(model, "predict", counted)
    listening = Listening([d.pk for d in batch])
    tasks.predict_drawing(str(batch[0].pk))
    strokes, seven, image, six = stored(batch)
    # The seven and each number's likeliest candidates in one call; a second only for any that could beat them.
    assert len(calls) <= 2 and calls[0] > 4
    assert (strokes.status, strokes.number, image.number) == ("done", "2048", "2048")
    assert [d["digit"] for d in strokes.digits] == [2, 0, 4, 8] and len(strokes.digits[0]["probabilities"]) == 10
    assert strokes.digit is None and strokes.probabilities is None  # four digits: no one digit
    product = 1.0
    for digit in strokes.digits:
        product *= digit["confidence"]
    assert strokes.confidence == pytest.approx(product, rel=1e-4)
    assert strokes.uncertain == (strokes.confidence < model.uncertain_below)
    assert strokes.preprocess_ms is not None and strokes.predict_ms is not None and strokes.model_version
    # A number of one digit: its digit and probabilities too, as DESIGN.md says.
    assert (six.number, six.digit, len(six.probabilities)) == ("6", 6, 10)
    # Digit mode as before: its number and digits are derived when read, never stored.
    assert (seven.digit, seven.number, seven.digits) == (7, None, None)
    pushed = {r["id"]: r for r in listening.received()}
    assert pushed[str(strokes.pk)]["number"] == "2048" and pushed[str(seven.pk)]["number"] == "7"


def test_a_number_that_cannot_be_read_fails_alone(monkeypatch):
    body = number_body([3, 1])
    broken = queued_number(body)
    Drawing.objects.filter(pk=broken.pk).update(strokes=[[[1, 2], "not a point"]])
    blank = queued_number({"strokes": [], "width": 600, "height": 200, "pen": 9})
    batch = [queued_number(body), broken, blank]
    tasks.predict_drawing(str(batch[0].pk))
    good, broken, blank = stored(batch)
    assert (good.status, good.number) == ("done", "31")
    assert (broken.status, broken.error) == ("failed", "the image could not be read")
    assert (blank.status, blank.number, blank.digits) == ("blank", None, None)


def test_a_failing_choice_fails_that_number_alone(monkeypatch):
    real = tasks.reading.choose

    def choose(candidates, probabilities):
        if len(candidates.candidates) == 1:
            raise ValueError("a bug in choosing")
        return real(candidates, probabilities)

    monkeypatch.setattr(tasks.reading, "choose", choose)
    batch = [queued_number(number_body([5, 9])), queued_number(number_body([1]))]
    tasks.predict_drawing(str(batch[0].pk))
    good, failed = stored(batch)
    assert (good.status, good.number) == ("done", "59")
    assert (failed.status, failed.error, failed.number) == ("failed", "the number could not be read", None)


def test_a_number_whose_later_candidates_cannot_be_drawn_fails_alone(monkeypatch):
    real = tasks.reading.to_read

    def to_read(candidates, rows):
        if len(candidates.candidates) == 1 and not np.isnan(rows).all():  # the lone 1, once read
            raise ValueError("a bug in choosing what to read next")
        return real(candidates, rows)

    monkeypatch.setattr(tasks.reading, "to_read", to_read)
    seven = drawing(digit=None, confidence=None, image=samples.SEVEN, status="queued", enqueued_at=not_yet_stale())
    batch = [queued_number(number_body([5, 9])), queued_number(number_body([1])), seven]
    tasks.predict_drawing(str(batch[0].pk))
    good, failed, digit = stored(batch)
    assert (good.status, good.number) == ("done", "59") and (digit.status, digit.digit) == ("done", 7)
    assert (failed.status, failed.error, failed.number) == ("failed", "the number could not be read", None)


def test_a_number_longer_than_a_drawing_stores_fails_alone():
    too_long = queued_number(number_body([1] * (NUMBER_MAX_DIGITS + 1), gap=30))
    batch = [queued_number(number_body([4, 2])), too_long]
    tasks.predict_drawing(str(batch[0].pk))
    good, too_long = stored(batch)
    assert (good.status, good.number) == ("done", "42")
    assert (too_long.status, too_long.error, too_long.number) == (
        "failed",
        f"more than {NUMBER_MAX_DIGITS} digits",
        None,
    )


def test_a_drawing_of_more_marks_than_a_number_has_fails_alone_before_it_costs_the_worker():
    bars = bars_png(300)
    batch = [queued_number(number_body([4, 2])), queued_number({"width": 3040, "height": 200}, image=bars)]
    tasks.predict_drawing(str(batch[0].pk))
    good, bars = stored(batch)
    assert (good.status, good.number) == ("done", "42")
    assert (bars.status, bars.error) == ("failed", str(segmentation.TooLong()))
    assert bars.preprocess_ms < 1000  # grouping them all took 74 s


def test_a_real_worker_reads_a_number_sent_over_http(live_server_url):
    body = number_body([1, 9, 8, 4])
    response = requests.post(f"{live_server_url}/api/drawings/?wait=10", json={**body, "mode": "number"}, timeout=20)
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["mode"], result["number"], result["digit"]) == ("number", "1984", None)
    assert [d["digit"] for d in result["digits"]] == [1, 9, 8, 4]
    boxes = [d["box"] for d in result["digits"]]
    assert boxes == sorted(boxes) and all(0 <= box[0] < box[2] <= body["width"] for box in boxes)


def test_a_number_in_units_of_0_1_has_its_boxes_as_finely_as_in_pixels():
    # A box was stored to 0.1 in the drawing's own unit: a tenth of the height of a number sent
    # in units of 0-1 (its canvas 1 high), where the pixels' boxes are to 0.1 px.
    pixels = number_body([4, 2])
    side = pixels["height"]
    unit = {
        "strokes": [[[x / side, y / side] for x, y in stroke] for stroke in pixels["strokes"]],
        "width": max(1, round(pixels["width"] / side)),
        "height": 1,
        "pen": pixels["pen"] / side,
    }
    batch = [queued_number(pixels), queued_number(unit)]
    tasks.predict_drawing(str(batch[0].pk))
    in_pixels, in_units = stored(batch)
    assert in_pixels.number == in_units.number == "42"
    boxes = np.array([d["box"] for d in in_pixels.digits])
    assert np.allclose(np.array([d["box"] for d in in_units.digits]) * side, boxes, atol=0.5)
