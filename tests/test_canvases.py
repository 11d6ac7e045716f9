"""The canvas robustness suite's renderer (benchmarks/canvases.py), and one pass of the suite on the shipped model."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from benchmarks import canvas_suite, canvases
from recognizer import ink
from recognizer.model_files import shipped_path
from recognizer.preprocessing import BlankDrawing, preprocess
from training.strokes import antialiased
from worker.inference import Predictor


def pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG" and image.mode == "RGBA"
        return np.asarray(image)


def ink_mask(drawing: canvases.Drawing) -> np.ndarray:
    """Where anything was drawn: opacity on a transparent canvas, else a difference from the corner colour."""
    rgba = pixels(drawing.png).astype(int)
    if drawing.style == "transparent":
        return rgba[..., 3] > 0
    return (np.abs(rgba - rgba[0, 0]).max(axis=2)) > 0


@pytest.mark.parametrize("style", canvases.STYLES)
@pytest.mark.parametrize("size", [(280, 280), (400, 300), (200, 600)])
def test_a_template_is_drawn_on_a_canvas_of_the_requested_size_and_style(style, size):
    rng = np.random.default_rng(1)
    canvas = canvases.Canvas(*size, style, *canvases.sample_colours(style, rng))
    coverage, facts = canvases.draw_strokes(canvases.bend(canvases.DIGIT_TEMPLATES["7-crossbar"][1], rng), canvas, rng)
    rgba = pixels(canvases.compose(coverage, canvas))
    assert rgba.shape == (size[1], size[0], 4)
    assert 0.25 * 0.98 <= facts["height_share"] <= 0.9
    if style == "transparent":
        assert rgba[0, 0, 3] == 0
    else:
        assert (rgba[..., 3] == 255).all() and tuple(rgba[0, 0]) == canvas.background
    ink = coverage >= 1
    assert ink.any() and (rgba[ink][:, :3] == canvas.ink[:3]).all()


def test_a_transparent_canvas_is_transparent_black_wherever_nothing_was_drawn(test_digits):
    drawings = [canvases.digit_drawing(i, 3, *test_digits) for i in range(40)]
    transparent = [d for d in drawings if d.style == "transparent"]
    assert transparent
    for drawing in transparent:
        rgba = pixels(drawing.png)
        untouched = rgba[..., 3] == 0
        assert untouched.mean() > 0.5 and (rgba[untouched] == 0).all()
        assert rgba[..., 3].max() == 255


def test_every_kind_of_drawing_lands_inside_its_canvas(test_digits):
    drawings = [canvases.digit_drawing(i, 5, *test_digits) for i in range(40)]
    drawings += [canvases.other_drawing(i, 5, kind) for kind in canvases.OTHER_KINDS for i in range(10)]
    for drawing in drawings:
        ink = ink_mask(drawing)
        assert ink.shape == (drawing.size[1], drawing.size[0])
        assert ink.any(), drawing.variant
        border = np.concatenate([ink[0], ink[-1], ink[:, 0], ink[:, -1]])
        assert not border.any(), f"{drawing.variant} is cut by the canvas edge"
    assert {d.source for d in drawings} == {"mnist", "strokes", *canvases.OTHER_KINDS}
    assert {d.style for d in drawings} == set(canvases.STYLES)


def test_a_drawing_is_the_same_for_the_same_seed_and_index(test_digits):
    first = canvases.digit_drawing(11, 7, *test_digits)
    assert canvases.digit_drawing(11, 7, *test_digits) == first
    assert canvases.digit_drawing(11, 8, *test_digits).png != first.png
    assert canvases.other_drawing(4, 7, "letter") == canvases.other_drawing(4, 7, "letter")


@pytest.mark.parametrize("pen", [5.0, 12.0, 28.0])
def test_the_pen_width_measured_on_a_stroke_is_the_pen_it_was_drawn_with(pen):
    strokes = [np.array([[50.0, 40.0], [60.0, 240.0]]), np.array([[100.0, 60.0], [200.0, 60.0], [150.0, 240.0]])]
    measured = canvases.stroke_width(antialiased(strokes, (280, 280), pen))
    assert measured == pytest.approx(pen, rel=0.15)


def test_a_tap_or_a_slip_of_the_pen_is_blank():
    for i in range(20):
        with pytest.raises(BlankDrawing):
            preprocess(canvases.other_drawing(i, 7, "dot").png)


def test_the_shipped_model_reads_nine_in_ten_canvas_digits(test_digits):
    drawings = [canvases.digit_drawing(i, 7, *test_digits) for i in range(100)]
    probabilities, blank = canvas_suite.classify(Predictor.from_file(shipped_path()), drawings)
    labels = np.array([int(d.label) for d in drawings])
    assert not blank.any()
    assert (probabilities.argmax(axis=1) == labels).mean() >= 0.9


# --- drawings made of strokes, sent either way ----------------------------------------------------


def on_ink(drawing: canvases.Drawing) -> float:
    """The share of the strokes body's points that lie on ink in the drawing's PNG: 1 when they are its points."""
    ink = ink_mask(drawing)
    points = np.concatenate([np.asarray(stroke)[:, :2] for stroke in drawing.body["strokes"]])
    columns, rows = np.clip(np.floor(points).astype(int).T, 0, [[drawing.size[0] - 1], [drawing.size[1] - 1]])
    return float(ink[rows, columns].mean())


def agreement(drawings: list[canvases.Drawing]) -> float:
    """The share of drawings the shipped model reads as the same digit from their strokes and from their PNG."""
    predictor = Predictor.from_file(shipped_path())
    answers = [canvas_suite.classify(predictor, drawings, via)[0].argmax(axis=1) for via in ("strokes", "image")]
    return float((answers[0] == answers[1]).mean())


def test_a_template_digit_carries_the_strokes_it_was_drawn_from():
    drawings = [canvases.template_drawing(2 * i + 1, 7) for i in range(100)]
    for drawing in drawings:
        parsed = ink.parse(drawing.body)
        assert (parsed.width, parsed.height) == drawing.size and parsed.pen == pytest.approx(drawing.pen)
        assert on_ink(drawing) == 1.0, drawing.variant
    assert agreement(drawings) >= 0.95


def test_an_mnist_canvas_has_no_strokes_and_non_digits_have_theirs(test_digits):
    assert canvases.digit_drawing(0, 7, *test_digits).body is None
    for kind in canvases.OTHER_KINDS:
        drawing = canvases.other_drawing(3, 7, kind)
        ink.parse(drawing.body)
        assert on_ink(drawing) == 1.0, kind


@pytest.fixture(scope="module")
def held_out() -> list:
    """The first digits of UNIPEN's held-out writers; skipped where the file is absent."""
    digits, reason = canvas_suite.held_out(12)
    if not digits:
        pytest.skip(f"needs UNIPEN's digits, which a bare clone lacks: {reason}")
    return digits


def test_held_out_unipen_digits_are_drawn_both_ways(held_out):
    drawings = [canvases.unipen_drawing(i, 7, digit) for i, digit in enumerate(held_out)]
    for drawing, digit in zip(drawings, held_out, strict=True):
        assert (drawing.source, drawing.label) == ("unipen", str(digit.label))
        parsed = ink.parse(drawing.body)
        assert (parsed.width, parsed.height) == drawing.size and pixels(drawing.png).shape[:2] == drawing.size[::-1]
        ink_on_canvas = ink_mask(drawing)
        assert not np.concatenate(
            [ink_on_canvas[0], ink_on_canvas[-1], ink_on_canvas[:, 0], ink_on_canvas[:, -1]]
        ).any()
        assert on_ink(drawing) == 1.0
    assert agreement(drawings) >= 10 / 12


def test_the_suite_says_why_it_skips_unipen_without_its_file(monkeypatch, tmp_path):
    monkeypatch.setenv("UNIPEN_PATH", str(tmp_path / "absent.json.gz"))
    digits, reason = canvas_suite.held_out(None)
    assert digits == [] and "absent.json.gz" in reason and reason.startswith("UNIPEN: skipped")
