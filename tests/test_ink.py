"""Pen strokes (recognizer/ink.py): a frame's strokes checked, and drawn as the image path reads the same drawing.

The stroke path must mean what the image path means. Each drawing is made both ways: painted on a
full-size canvas as the page paints it (white, black ink, round caps and joins, the pen's width,
anti-aliased: benchmarks/canvases.py, by way of benchmarks/ink.py) and read by `preprocess` from the
PNG; and drawn by `ink.rasterise` from its strokes. On synthetic stroke digits (always) and UNIPEN's
real pen digits (where ../shared/data holds them) the shipped model must read the same digit on at
least 99.5 % of drawings, and the two inputs must be close. Closeness: the mean absolute difference of the 28x28
inputs (0-1) per drawing, the smaller over shifts of the field by up to one pixel each way (both
paths round the centre of mass to a whole pixel, and a centre near a half pixel may go either way):
at most 0.01 on average over the drawings (0.006 measured) and 0.1 for any one (0.07). A pen 20 %
too wide or too thin, a drawing half a pixel off, strokes without anti-aliasing, or sampling instead
of area averaging each fail it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time

import numpy as np
import pytest

from benchmarks.ink import closeness, page_png, synthetic
from recognizer import ink, segmentation
from recognizer.ink import Ink, InvalidStrokes
from recognizer.model_files import shipped_path
from recognizer.models import Drawing
from recognizer.preprocessing import BlankDrawing, preprocess
from training import unipen
from training.strokes import TEMPLATES
from worker.inference import Predictor

SEED = 20261129  # of the UNIPEN sample
SYNTHETIC = 600
UNIPEN = 800
AGREEMENT = 0.995
MEAN_CLOSENESS, WORST_CLOSENESS = 0.01, 0.1


# --- drawings ------------------------------------------------------------------------------------


def unipen_drawings(count: int) -> list[tuple[dict, int]]:
    """`count` UNIPEN digits spread over the file, on canvases of 200-420 px with random pens and places."""
    try:
        digits = unipen.load()
    except FileNotFoundError as exc:
        pytest.skip(f"needs UNIPEN's digits, which a bare clone lacks ({exc}); set UNIPEN_PATH or add ../shared/data")
    rng = np.random.default_rng(SEED)
    drawings = []
    for index in rng.choice(len(digits), count, replace=False):
        side = int(rng.integers(200, 421))
        canvas = (side, side) if rng.random() < 0.7 else (side, int(side * rng.uniform(0.6, 1.0)))
        height, pen = rng.uniform(0.4, 0.9), rng.uniform(0.03, 0.09) * max(canvas)
        body = unipen.on_canvas(digits[index], canvas, height, tuple(rng.random(2)), pen)
        drawings.append((body, digits[index].label))
    return drawings


@pytest.fixture(scope="module")
def model() -> Predictor:
    return Predictor.from_file(shipped_path())


def both_ways(model: Predictor, drawings: list[tuple[dict, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(digits read from the PNGs, digits read from the strokes, closeness) of drawings given as bodies."""
    inks = [ink.parse(body) for body, _ in drawings]
    images = np.stack([preprocess(page_png(drawing)) for drawing in inks])
    strokes = np.stack([ink.rasterise(drawing) for drawing in inks])
    return model.predict(images).argmax(axis=1), model.predict(strokes).argmax(axis=1), closeness(images, strokes)


# --- the image path and the stroke path agree ----------------------------------------------------


@pytest.mark.parametrize("source", ["synthetic", "unipen"])
def test_the_model_reads_the_same_digit_from_the_strokes_as_from_the_png(model, source):
    drawings = [synthetic(i) for i in range(SYNTHETIC)] if source == "synthetic" else unipen_drawings(UNIPEN)
    from_png, from_strokes, close = both_ways(model, drawings)
    same = from_png == from_strokes
    differing = [(int(i), int(from_png[i]), int(from_strokes[i])) for i in np.flatnonzero(~same)]
    assert same.mean() >= AGREEMENT, f"read differently (drawing, png, strokes): {differing}"
    assert close.mean() <= MEAN_CLOSENESS
    assert close.max() <= WORST_CLOSENESS, f"drawing {int(close.argmax())} differs by {close.max():.3f}"
    labels = np.array([label for _, label in drawings])
    assert (from_strokes == labels).mean() >= 0.9  # and they are read as the digits drawn


@pytest.fixture(scope="module")
def first_pngs_read() -> np.ndarray:
    """The first 100 synthetic drawings as the image path reads them."""
    return np.stack([preprocess(page_png(ink.parse(synthetic(i)[0]))) for i in range(100)])


def wider_pen(monkeypatch, factor):
    parse = ink.parse
    monkeypatch.setattr(ink, "parse", lambda body: dataclasses.replace(parse(body), pen=parse(body).pen * factor))


def no_anti_aliasing(monkeypatch):
    discs = ink._discs
    monkeypatch.setattr(ink, "_discs", lambda *args: (discs(*args) >= 0.5).astype(np.float32))


def pixel_corners_for_centres(monkeypatch):
    window = ink._window.__wrapped__
    monkeypatch.setattr(ink, "_window", lambda *args: (window(*args)[0] - 0.5, *window(*args)[1:]))


def sampled_not_averaged(monkeypatch):
    monkeypatch.setattr(ink, "_box_average", lambda fine, factor: fine[::factor, ::factor])


@pytest.mark.parametrize(
    "mistake",
    [
        pytest.param(lambda monkeypatch: wider_pen(monkeypatch, 1.2), id="pen-20%-wider"),
        pytest.param(lambda monkeypatch: wider_pen(monkeypatch, 0.8), id="pen-20%-thinner"),
        pytest.param(no_anti_aliasing, id="no-anti-aliasing"),
        pytest.param(pixel_corners_for_centres, id="half-a-pixel-off"),
        pytest.param(sampled_not_averaged, id="sampled-not-area-averaged"),
    ],
)
def test_the_closeness_measure_catches_a_rasteriser_slightly_off(mistake, monkeypatch, first_pngs_read):
    mistake(monkeypatch)
    wrong = np.stack([ink.rasterise(ink.parse(synthetic(i)[0])) for i in range(len(first_pngs_read))])
    assert closeness(first_pngs_read, wrong).mean() > MEAN_CLOSENESS


def test_taps_and_slips_are_blank_both_ways_and_a_small_digit_is_not():
    for side, pen, length in [(280, 18, 0), (280, 12, 8), (600, 30, 10), (400, 4, 20)]:
        drawing = ink.parse({"strokes": [[[100, 100], [100 + length, 100]]], "width": side, "height": side, "pen": pen})
        with pytest.raises(BlankDrawing):
            preprocess(page_png(drawing))
        with pytest.raises(BlankDrawing):
            ink.rasterise(drawing)
    small = ink.parse({"strokes": [[[100, 100], [100, 130]]], "width": 280, "height": 280, "pen": 6})
    assert ink.rasterise(small).max() == pytest.approx(1)
    preprocess(page_png(small))


def test_a_drawing_with_no_strokes_is_blank():
    with pytest.raises(BlankDrawing, match="blank"):
        ink.rasterise(ink.parse({"strokes": [], "width": 280, "height": 280}))


def test_the_pen_is_a_round_solid_anti_aliased_disc():
    # One pen position filling the 20 px box, drawn as rasterise draws (on the finer grid, averaged down).
    disc = ink._box_average(ink._discs(np.array([[20, 20]], np.float32), 20.0, (20, 20)), ink.SUPERSAMPLE)
    assert disc.shape == (20, 20)
    assert np.allclose(disc, disc.T, atol=1e-6) and np.allclose(disc, disc[::-1, ::-1], atol=1e-6)  # round
    assert disc[10, 10] == 1 and disc[0, 0] == 0 and 0 < disc[0, 10] < 1  # solid, round, anti-aliased


@pytest.mark.parametrize(
    "body",
    [
        {"strokes": [[[0, 0]]]},  # no canvas: the default one is the ink's own, which the dot would fill
        {"strokes": [[[1e-300, 1e-300], [2e-300, 5e-300]]]},
        {"strokes": [[[140, 140]]], "width": 280, "height": 280, "pen": 40},  # a big pen's tap
        {"strokes": [[[100, 100], [110, 105]], [[104, 102]]], "width": 280, "height": 280, "pen": 18},
    ],
)
def test_a_dot_is_blank_in_digit_and_number_mode_whatever_the_canvas(body):
    drawing = ink.parse(body)
    with pytest.raises(BlankDrawing, match="dot"):
        ink.rasterise(drawing)
    with pytest.raises(BlankDrawing, match="dot"):
        segmentation.from_ink(drawing)


def test_rasterise_gives_the_models_input():
    drawing = ink.parse(synthetic(1)[0])
    image = ink.rasterise(drawing)
    assert image.shape == (28, 28) and image.dtype == np.float32
    assert image.min() == 0 and image.max() == pytest.approx(1)
    rows, cols = np.indices(image.shape)
    assert abs((rows * image).sum() / image.sum() - 14) < 1 and abs((cols * image).sum() / image.sum() - 14) < 1


def test_a_pen_bolder_than_the_model_learnt_is_drawn_at_the_boldest_it_learnt():
    seven = [[60, 30], [220, 30], [120, 220]]  # 160 px wide, 190 px high

    def drawn(pen: float) -> np.ndarray:
        return ink.rasterise(ink.parse({"strokes": [seven], "width": 280, "height": 280, "pen": pen}))

    boldest = ink.BOLDEST * 190 / (1 - ink.BOLDEST)  # pen / (190 + pen) == BOLDEST
    assert np.abs(drawn(3 * boldest) - drawn(boldest)).max() < 1e-5
    assert np.abs(drawn(0.8 * boldest) - drawn(boldest)).max() > 0.1  # a pen within it is drawn as it is


def test_taps_far_apart_are_blank_in_digit_mode_as_in_number_mode():
    body = {"strokes": [[[0, 0]], [[10000, 10000]], [[5000, 20], [5003, 21]]]}
    drawing = Drawing(mode=Drawing.Mode.DIGIT, strokes=body["strokes"], width=None, height=None, pen=None)
    with pytest.raises(BlankDrawing, match="only dots"):
        drawing.model_input()
    assert not segmentation.from_ink(ink.parse(body)).candidates  # number mode: no digit found
    dotted = {"strokes": [[[140, 40], [140, 240]], [[140, 10]]], "width": 280, "height": 280}
    assert ink.refuse_dots(ink.parse(dotted))  # a stroke and a dot: read as drawn


def test_a_pen_finer_than_the_model_learnt_is_drawn_at_the_finest_it_learnt(model):
    seven = [[80, 70], [200, 70], [120, 230]]  # 120 px wide, 160 px high

    def drawn(pen: float) -> np.ndarray:
        return ink.rasterise(ink.parse({"strokes": [seven], "width": 280, "height": 280, "pen": pen}))

    finest = ink.FINEST * 160 / (1 - ink.FINEST)  # pen / (160 + pen) == FINEST
    assert np.abs(drawn(0.05) - drawn(finest)).max() < 1e-5  # a hairline, as a client may send
    assert np.abs(drawn(2 * finest) - drawn(finest)).max() > 0.1  # a pen within it is drawn as it is
    assert model.predict(drawn(0.05)[None]).argmax() == 7  # was a sure 1


@pytest.mark.parametrize("path, least", [("strokes", 0.98), ("image", 0.9)])
def test_a_small_digit_in_a_bold_pen_is_read_about_as_well_as_in_the_pages_pen(model, path, least):
    # A digit drawn small is bold for its size: the page's pen is a share of the canvas. In four times
    # the benchmark's pens these drawings read 84 % both ways, before strokes were drawn at BOLDEST (100 %)
    # and an image's bold pen was thinned towards it (93 %: erosion cannot open a loop the pen filled).
    drawings = [synthetic(i) for i in range(300)]
    labels = np.array([label for _, label in drawings])
    bold = [dataclasses.replace(ink.parse(body), pen=ink.parse(body).pen * 4) for body, _ in drawings]
    draw = ink.rasterise if path == "strokes" else (lambda drawing: preprocess(page_png(drawing)))
    read = model.predict(np.stack([draw(drawing) for drawing in bold])).argmax(axis=1)
    assert (read == labels).mean() >= least


def test_a_pen_leaving_the_canvas_is_drawn_whole():
    # A 7 whose bar was drawn above the canvas (the page keeps the pointer): the strokes hold it all,
    # and it is read as the same 7 drawn lower down, inside the canvas.
    seven = [[60, 30], [220, 30], [120, 260]]
    above = [[[x, y - 60] for x, y in seven]]
    inside = ink.rasterise(ink.parse({"strokes": [seven], "width": 280, "height": 280, "pen": 18}))
    beyond = ink.rasterise(ink.parse({"strokes": above, "width": 280, "height": 280, "pen": 18}))
    assert np.abs(inside - beyond).max() < 1e-5


def test_a_frame_made_to_be_slow_costs_little():
    rng = np.random.default_rng(1)
    zigzag = rng.uniform(0, 4000, (ink.MAX_POINTS, 2)).round(1).tolist()  # 10,000 strokes' worth of crossings
    for pen in (ink.MIN_PEN, 40, ink.MAX_PEN):
        drawing = ink.parse({"strokes": [zigzag], "width": 4000, "height": 4000, "pen": pen})
        started = time.perf_counter()
        ink.rasterise(drawing)
        assert time.perf_counter() - started < 0.2


# --- checking: what parse accepts ----------------------------------------------------------------


def test_parse_reads_points_in_canvas_pixels_with_or_without_time():
    drawing = ink.parse({"strokes": [[[10, 20], [30.5, 40]], [[50, 60]]], "width": 280})
    assert [stroke.tolist() for stroke in drawing.strokes] == [[[10, 20], [30.5, 40]], [[50, 60]]]
    assert all(stroke.dtype == np.float32 for stroke in drawing.strokes) and drawing.times is None
    timed = ink.parse({"strokes": [[[10, 20, 1000], [30, 40, 1016.4]], [[50, 60, 1200]]], "width": 280, "height": 200})
    assert [times.tolist() for times in timed.times] == [[1000, 1016.4], [1200]]
    assert timed.points == 3 and (timed.width, timed.height) == (280, 200)


def test_missing_sizes_and_pen_are_derived_from_the_ink_and_the_page():
    drawing = ink.parse({"strokes": [[[10, 20], [250.2, 130]]]})
    assert (drawing.width, drawing.height) == (251, 130)  # the smallest canvas holding every point
    assert drawing.pen == pytest.approx(ink.PEN_SHARE * 130)  # the page's: a share of the shorter side
    assert ink.parse({"strokes": [[[1, 2]]], "width": 280, "height": 280}).pen == pytest.approx(17.92)
    assert ink.parse({"strokes": [[[1, 2]]], "width": 840, "height": 280}).pen == pytest.approx(17.92)
    # Ink left of and above the origin: a canvas as large as the ink, not 1 px with a hairline pen.
    above = ink.parse({"strokes": [[[-220, -230], [-100, -230], [-180, -70]]]})
    assert (above.width, above.height) == (120, 160) and above.pen == pytest.approx(ink.PEN_SHARE * 120)
    assert ink.parse({"strokes": [[[-20, 5], [100, 60]]]}).width == 120
    nulls = ink.parse({"strokes": [[[1, 2]]], "width": None, "height": None, "pen": None})
    assert (nulls.width, nulls.height) == (1, 2)
    assert ink.parse({"strokes": [], "pen": 5}).width == 1
    assert ink.parse({"strokes": [[[1, 2]]], "width": 280.4, "height": 199.6, "pen": 3}).height == 200


def test_points_in_any_unit_of_length_draw_the_same_input():
    # A client may send its canvas as 0-1 (normalised coordinates): the page's pen is then 0.064,
    # which the lower bound on the pen once raised to half a unit, half the digit's height.
    seven = [[[0.2 + 0.6 * x, 0.1 + 0.8 * y] for x, y in stroke] for stroke in TEMPLATES[7][0]]
    unit = ink.parse({"strokes": seven, "width": 1, "height": 1})
    pixels = ink.parse({"strokes": [[[280 * x, 280 * y] for x, y in s] for s in seven], "width": 280, "height": 280})
    assert unit.pen == pytest.approx(ink.PEN_SHARE) and pixels.pen == pytest.approx(ink.PEN_SHARE * 280)
    assert np.abs(ink.rasterise(unit) - ink.rasterise(pixels)).max() < 1e-3


def test_points_in_any_unit_of_length_are_stored_as_finely(model):
    # The worker draws the strokes as stored (to_json, then from_stored). Stored to 0.1 in any unit,
    # a drawing in units of 0-1 was drawn on a grid of 10x10: 14 of 200 page drawings read wrong.
    def scaled(body: dict, side: float) -> dict:
        """The drawing in units of `side` px, its pen 6.4 % of its canvas's shorter side."""
        strokes = [[[x / side, y / side, *rest] for x, y, *rest in stroke] for stroke in body["strokes"]]
        shorter = min(body["width"], body["height"]) / side
        return {
            "strokes": strokes,
            "width": body["width"] / side,
            "height": body["height"] / side,
            "pen": 0.064 * shorter,
        }

    def as_stored(body: dict) -> np.ndarray:
        drawing = ink.parse(body)
        return ink.rasterise(Ink.from_stored(drawing.to_json(), drawing.width, drawing.height, drawing.pen))

    bodies = [synthetic(i)[0] for i in range(200)]
    pixels = np.stack([as_stored(scaled(body, 1)) for body in bodies])
    units = np.stack([as_stored(scaled(body, min(body["width"], body["height"]))) for body in bodies])  # 0-1
    assert (model.predict(units).argmax(axis=1) == model.predict(pixels).argmax(axis=1)).all()
    assert closeness(units, pixels).max() < 0.01


def test_points_off_the_canvas_are_accepted():
    drawing = ink.parse({"strokes": [[[-40, -3], [300, 290]]], "width": 280, "height": 280})
    assert drawing.strokes[0].tolist() == [[-40, -3], [300, 290]]


def test_to_json_keeps_a_tenth_of_a_pixel_and_whole_milliseconds_and_reads_back():
    drawing = ink.parse({"strokes": [[[10.04, 20.06, 1000.4], [30.56, 40, 1016.6]], [[1, 2, 1200]]], "width": 280})
    stored = drawing.to_json()
    assert stored == [[[10.0, 20.1, 1000.0], [30.6, 40.0, 1017.0]], [[1.0, 2.0, 1200.0]]]
    again = Ink.from_stored(json.loads(json.dumps(stored)), drawing.width, drawing.height, drawing.pen)
    assert again.to_json() == [[point[:2] for point in stroke] for stroke in stored]  # the worker needs no times
    assert (again.width, again.height, again.pen) == (drawing.width, drawing.height, drawing.pen) == (280, 40, 2.56)
    plain = ink.parse({"strokes": [[[10.04, 20.06]]], "width": 280, "height": 280}).to_json()
    assert plain == [[[10.0, 20.1]]]
    # A canvas in another unit is stored as finely for its size: a ten-thousandth of its longer side.
    assert ink.parse({"strokes": [[[0.10004, 0.20006]]], "width": 1, "height": 1}).to_json() == [[[0.1, 0.2001]]]
    assert ink.parse({"strokes": [[[10.04, 20.06]]]}).to_json() == [[[10.04, 20.06]]]  # a canvas of 11x21


# --- checking: what parse refuses, and how it says so --------------------------------------------


def strokes(*points: object) -> dict:
    return {"strokes": [list(points)], "width": 280, "height": 280, "pen": 18}


TOO_MANY_POINTS = {"strokes": [[[1, 1]] * 5000, [[2, 2]] * 5001]}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "strokes must be a list of strokes, each a list of [x, y] points, not null"),
        (
            {"strokes": {"0": [[1, 2]]}},
            "strokes must be a list of strokes, each a list of [x, y] points, not an object",
        ),
        ({"strokes": "[[[1, 2]]]"}, "not a string"),
        ({"strokes": [[[1, 2]]] * 65}, "at most 64 strokes, not 65"),
        (TOO_MANY_POINTS, "at most 10000 points in all strokes together, not 10001"),
        ({"strokes": [[[1, 2]], 5]}, "stroke 1: must be a list of [x, y] points, not a number"),
        ({"strokes": [[[1, 2]], []]}, "stroke 1: has no points (leave it out)"),
        (strokes([1, 2], 3), "stroke 0, point 1: must be a list [x, y] or [x, y, t], not a number"),
        (strokes([1, 2], "3,4"), "stroke 0, point 1: must be a list [x, y] or [x, y, t], not a string"),
        (strokes([1, 2], {"x": 1, "y": 2}), "stroke 0, point 1: must be a list [x, y] or [x, y, t], not an object"),
        (strokes([1]), "stroke 0, point 0: has 1 value; a point is [x, y] or [x, y, t]"),
        (strokes([1, 2, 3, 4]), "stroke 0, point 0: has 4 values"),
        (strokes([1, 2], [3, 4, 5]), "stroke 0, point 1: t must be on every point or on none"),
        ({"strokes": [[[1, 2, 0]], [[3, 4]]]}, "stroke 1, point 0: t must be on every point or on none"),
        (strokes([1, 2], [True, 4]), "stroke 0, point 1: x must be a number, not a boolean"),
        (strokes([1, 2], [3, "4"]), "stroke 0, point 1: y must be a number, not a string"),
        (strokes([1, None]), "stroke 0, point 0: y must be a number, not null"),
        (strokes([1, 2, False]), "stroke 0, point 0: t must be a number, not a boolean"),
        (strokes([[1, 2], [3, 4]]), "stroke 0, point 0: x is a list, not a number (nested too deep"),
        (strokes([1, 2], [3, 4], [math.nan, 1]), "stroke 0, point 2: x is not a finite number"),
        (strokes([1, math.inf]), "stroke 0, point 0: y is not a finite number"),
        (strokes([1, 10**400]), "stroke 0, point 0: y is not a finite number"),
        (strokes([1, 2], [10_000.5, 2]), "stroke 0, point 1: x is 10000.5, beyond ±10000"),
        (strokes([1, 2], [10_000.0001, 2]), "stroke 0, point 1: x is 10000.0001, beyond ±10000"),
        (strokes([1, 10_000_001]), "stroke 0, point 0: y is 10000001, beyond ±10000"),
        ({"strokes": [[[1, 2]]], "width": 10_000.0001}, "width must be from 1 to 10000, not 10000.0001"),
        (strokes([1, -1e30]), "stroke 0, point 0: y is -1e+30, beyond ±10000"),
        (strokes([1, 2, 1e14]), "stroke 0, point 0: t is 1e+14, beyond ±1e+13"),
        (strokes([1, 2, -math.inf]), "stroke 0, point 0: t is not a finite number"),
        ({"strokes": [[[1, 2]]], "width": "280"}, "width must be a number, not a string"),
        ({"strokes": [[[1, 2]]], "width": True}, "width must be a number, not a boolean"),
        ({"strokes": [[[1, 2]]], "width": 0}, "width must be from 1 to 10000, not 0"),
        ({"strokes": [[[1, 2]]], "height": 20_000}, "height must be from 1 to 10000, not 20000"),
        ({"strokes": [[[1, 2]]], "height": math.nan}, "height must be from 1 to 10000, not nan"),
        ({"strokes": [[[1, 2]]], "pen": 0}, "pen must be from 0.01 to 1000, not 0"),
        ({"strokes": [[[1, 2]]], "pen": 1e6}, "pen must be from 0.01 to 1000, not 1e+06"),
        ({"strokes": [[[1, 2]]], "pen": [18]}, "pen must be a number, not a list"),
    ],
)
def test_parse_refuses_what_breaks_the_format_or_a_limit_and_says_what_and_where(body, message):
    with pytest.raises(InvalidStrokes) as refused:
        ink.parse(body)
    assert refused.value.code == "invalid_strokes" and refused.value.status == 400
    assert message in refused.value.message


def test_a_refusal_names_the_first_bad_point_in_drawing_order():
    body = {"strokes": [[[1, 2]] * 5, [[1, 2]] * 7 + [[math.nan, 2]] + [[1e9, 2]], [[1, "y"]]]}
    with pytest.raises(InvalidStrokes, match=r"^stroke 1, point 7: x is not a finite number$"):
        ink.parse(body)
