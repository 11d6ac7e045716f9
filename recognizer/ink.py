"""Pen strokes: checked as they arrive (web process), drawn straight into the model's 28x28 input (worker).

A drawing may arrive as the pen's traces instead of a PNG (DESIGN.md, Contracts):
`{"strokes": [[[x, y], [x, y], ...], ...], "width": 280, "height": 280, "pen": 18}`, points in
canvas pixels (origin top left, y down), optionally `[x, y, t]` with t in milliseconds.

`parse` checks such a body against the limits below and gives an `Ink`, or refuses it with
`InvalidStrokes` (400 `invalid_strokes`) saying what is wrong and where. Strokes and points are
counted from 0, as they are indexed in the JSON arrays: "stroke 3, point 7: x is not a finite number".

`rasterise` turns an Ink into the model's input by the image path's own recipe
(recognizer/preprocessing.py: the ink's box fitted to 20x20 keeping its aspect ratio, area-averaged
anti-aliasing, normalised to peak 1, centre of mass at the centre of 28x28) without painting a
canvas: the points go straight into the 20 px box and the pen is drawn there, so a drawing costs
the worker a fraction of decoding its PNG.

Limits, generous for people and tight for scripts: a 5-digit number written slowly on a 4K
screen with a 1000 Hz mouse is a few thousand points; a digit on a phone is 30-200.

- at most MAX_STROKES strokes and MAX_POINTS points in all; an empty list of strokes is a blank
  drawing (answered `blank`, as a blank canvas is), a stroke with no points is refused;
- every number is a JSON number (int or float; never a boolean, a string or null);
- x and y within ±MAX_COORDINATE. Points may lie off the canvas (negative, or past width or
  height): a pen dragged over the canvas's edge keeps drawing (the page captures the pointer).
  They are kept and drawn: the strokes hold the whole digit, where an image would have cut it;
- t, when given, finite and within ±MAX_TIME ms (an epoch in ms fits), on every point or on none;
- width and height from 1 to MAX_COORDINATE (whole pixels: a fraction is rounded); missing (or
  null), a side is the smallest canvas from the origin holding every point, and at least the ink's
  own extent (ink left of or above the origin);
- pen from MIN_PEN to MAX_PEN pixels; missing (or null), the page's pen (`default_pen`: 18 px on 280).
  It is drawn no finer than FINEST and no bolder than BOLDEST of the ink's size, as the model learnt.

The worker's cost is bounded whatever the frame: the pen is drawn in the 20 px box, so a stroke
costs by its length there (MAX_BETWEEN and MAX_WORK bound the rest).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from itertools import accumulate, chain, pairwise

import numpy as np

from recognizer.errors import Refused
from recognizer.preprocessing import (
    BOLDEST,
    BOX,
    FINEST,
    MIN_EXTENT_SHARE,
    BlankDrawing,
    canvas_side,
    fitted_size,
    in_field,
)

MAX_STROKES = 64
MAX_POINTS = 10_000  # in all strokes together
MAX_COORDINATE = 10_000  # pixels: |x|, |y|, and the largest width or height
MAX_TIME = 1e13  # ms: |t| (epoch milliseconds until the year 2286)
MIN_PEN, MAX_PEN = 0.01, 1_000.0  # pixels
PEN_SHARE = 0.064  # the page's pen as a share of the canvas's shorter side: 18 px on 280

# Drawing: each pen position paints a disc, anti-aliased by its distance to each pixel's centre, on a
# grid SUPERSAMPLE times finer than the 20 px box, then averaged down as MNIST's resizing did.
SUPERSAMPLE = 2
# A stroke is drawn as discs on its points and between them, close enough that their union falls
# short of the round pen's stroke by at most this much (fine pixels) between two discs.
DEPTH = 0.1
# A frame made to be slow (thousands of long segments across the box) is drawn with discs further
# apart: at most this many between its points ...
MAX_BETWEEN = 10_000
# ... and when the discs would touch more than this many fine pixels in all, discs close together
# are merged on a grid just coarse enough. A digit on the page touches 3,000-7,000.
MAX_WORK = 100_000


_LIMITS = np.array([MAX_COORDINATE, MAX_COORDINATE, MAX_TIME])  # |x|, |y|, |t|


class InvalidStrokes(Refused):
    """Strokes that break the format or its limits: 400 `invalid_strokes` with what and where."""

    def __init__(self, message: str) -> None:
        super().__init__("invalid_strokes", message, 400)


@dataclass(frozen=True, eq=False)
class Ink:
    """A checked drawing: pen-down traces in the order drawn, in canvas pixels."""

    strokes: tuple[np.ndarray, ...]  # float32 (n, 2): x, y of each point
    width: int  # the canvas, in pixels
    height: int
    pen: float  # the line's width, in pixels
    times: tuple[np.ndarray, ...] | None = None  # float64 (n,): t of each point in ms, when sent

    @property
    def points(self) -> int:
        """How many points, in all strokes."""
        return sum(len(stroke) for stroke in self.strokes)

    def to_json(self) -> list[list[list[float]]]:
        """The strokes as JSON-ready lists to store: x, y to 0.1 px on a canvas of 100-1,000 px (the page
        sends no finer) and as finely for a smaller one (stored_places), t to 1 ms."""
        places = stored_places(max(self.width, self.height))
        if self.times is None:
            return [np.round(stroke.astype(np.float64), places).tolist() for stroke in self.strokes]
        return [
            np.column_stack([np.round(stroke.astype(np.float64), places), np.round(times)]).tolist()
            for stroke, times in zip(self.strokes, self.times, strict=True)
        ]

    @classmethod
    def from_stored(cls, strokes: list, width: int | None, height: int | None, pen: float | None) -> Ink:
        """The Ink of a stored drawing (its `strokes` JSON, width, height and pen), for drawing it (no times).

        Checked when it arrived (`parse`), so only rebuilt here, in a fifth of parse's time: the
        worker does this for every stroke drawing. A row edited by hand into something else
        raises (ValueError, TypeError, ...), which fails that drawing alone.
        """
        if pen is None or width is None or height is None:
            return parse({"strokes": strokes, "width": width, "height": height, "pen": pen})
        xy = tuple(np.asarray(stroke, np.float32).reshape(len(stroke), -1)[:, :2] for stroke in strokes)
        return cls(xy, int(width), int(height), float(pen))  # no times: drawing does not need them


def stored_places(side: int) -> int:
    """The decimal places a point is stored to on a canvas whose longer side is `side`: a step of a
    ten-thousandth to a thousandth of the side (0.1 px on the page's 280 px; 0.0001 on a canvas of 1),
    so that a drawing in any unit of length (normalised to 0-1, say) is stored about as finely as in
    pixels; never coarser than 0.1."""
    return max(1, 4 - math.ceil(math.log10(side)))


# --- checking ------------------------------------------------------------------------------------


def parse(body: dict) -> Ink:
    """The Ink in a JSON-parsed body's `strokes`, `width`, `height` and `pen`, or InvalidStrokes."""
    strokes = body.get("strokes")
    if not isinstance(strokes, list):
        raise InvalidStrokes(f"strokes must be a list of strokes, each a list of [x, y] points, not {_kind(strokes)}")
    if len(strokes) > MAX_STROKES:
        raise InvalidStrokes(f"at most {MAX_STROKES} strokes, not {len(strokes)}")
    width = _number(body, "width", 1, MAX_COORDINATE)
    height = _number(body, "height", 1, MAX_COORDINATE)
    pen = _number(body, "pen", MIN_PEN, MAX_PEN)
    values = _values(strokes)
    xy = values[:, :2].astype(np.float32)
    if width is None or height is None:
        # The smallest canvas from the origin that holds every point; as wide and high as the ink at
        # least, for ink left of or above the origin (a canvas of 1 px made its pen a hairline).
        far, near = (xy.max(axis=0).tolist(), xy.min(axis=0).tolist()) if len(xy) else ([1.0, 1.0], [0.0, 0.0])
        side = [far[i] - min(near[i], 0.0) for i in (0, 1)]
        width = width if width is not None else max(1.0, math.ceil(side[0]))
        height = height if height is not None else max(1.0, math.ceil(side[1]))
    width, height = max(1, round(width)), max(1, round(height))
    if pen is None:
        pen = min(max(default_pen(width, height), MIN_PEN), MAX_PEN)
    # Each stroke a view of the one array (slices: np.split cost more than all the checks).
    bounds = list(pairwise([0, *accumulate(map(len, strokes))]))
    times = tuple(values[start:end, 2] for start, end in bounds) if values.shape[1] == 3 else None
    return Ink(tuple(xy[start:end] for start, end in bounds), width, height, pen, times)


def _number(body: dict, key: str, low: float, high: float) -> float | None:
    """An optional number in [low, high] (None when missing or null), or InvalidStrokes."""
    value = body.get(key)
    if value is None:
        return None
    if type(value) not in (int, float):
        raise InvalidStrokes(f"{key} must be a number, not {_kind(value)}")
    if not low <= value <= high:  # also false for NaN
        raise InvalidStrokes(f"{key} must be from {low:g} to {high:g}, not {_shown(value)}")
    return float(value)


def _shown(value: float) -> str:
    """A number for a message: short (:g), unless that rounds it (10000.0001 would read as the limit
    it is past); JSON's integers may be past a float's range, where :g raises."""
    try:
        short = f"{value:g}"
    except OverflowError:
        return "a number past 1e308"
    if isinstance(value, int):
        return str(value) if abs(value) < 10**15 else short
    return short if float(short) == value or math.isnan(value) else repr(value)


def _values(strokes: list) -> np.ndarray:
    """Every point's numbers, checked, as one float64 array (points, 2 or 3).

    The checks run over all points at once (C loops: `map`, `np.fromiter`, numpy comparisons);
    only a drawing that fails one is walked point by point, to say where and what.
    """
    if not all(isinstance(stroke, list) and stroke for stroke in strokes):
        raise _first_problem(strokes)
    total = sum(map(len, strokes))
    if total > MAX_POINTS:
        raise InvalidStrokes(f"at most {MAX_POINTS} points in all strokes together, not {total}")
    if not strokes:
        return np.zeros((0, 2))
    try:
        sizes = set(map(len, chain.from_iterable(strokes)))
        numbers = set(map(type, chain.from_iterable(chain.from_iterable(strokes))))
    except TypeError:  # a point without a length, or not iterable
        raise _first_problem(strokes) from None
    if len(sizes) != 1 or not sizes <= {2, 3} or not numbers <= {int, float}:
        raise _first_problem(strokes)
    columns = sizes.pop()
    try:
        flat = np.fromiter(chain.from_iterable(chain.from_iterable(strokes)), np.float64, total * columns)
    except OverflowError:  # an integer past float's range
        raise _first_problem(strokes) from None
    values = flat.reshape(total, columns)
    # Comparisons with NaN are false, so these also catch non-finite numbers (Python's json reads
    # NaN, Infinity and 1e400).
    if not (np.abs(values) <= _LIMITS[:columns]).all():
        raise _first_problem(strokes)
    return values


def _first_problem(strokes: list) -> InvalidStrokes:
    """The first thing wrong with these strokes, in drawing order, said as precisely as we can."""
    columns = None
    for i, stroke in enumerate(strokes):
        if not isinstance(stroke, list):
            return InvalidStrokes(f"stroke {i}: must be a list of [x, y] points, not {_kind(stroke)}")
        if not stroke:
            return InvalidStrokes(f"stroke {i}: has no points (leave it out)")
        for j, point in enumerate(stroke):
            where = f"stroke {i}, point {j}"
            if not isinstance(point, list | tuple):
                return InvalidStrokes(f"{where}: must be a list [x, y] or [x, y, t], not {_kind(point)}")
            count = f"{len(point)} value" + ("" if len(point) == 1 else "s")
            if len(point) not in (2, 3):
                return InvalidStrokes(f"{where}: has {count}; a point is [x, y] or [x, y, t]")
            if columns is not None and len(point) != columns:
                values = f"this one has {len(point)} values, the first point {columns}"
                return InvalidStrokes(f"{where}: t must be on every point or on none ({values})")
            columns = len(point)
            for name, value in zip("xyt", point, strict=False):
                problem = _value_problem(name, value)
                if problem:
                    return InvalidStrokes(f"{where}: {problem}")
    return InvalidStrokes("strokes are not valid")  # not reached: callers found a problem first


def _value_problem(name: str, value: object) -> str | None:
    if isinstance(value, list):
        return f"{name} is a list, not a number (nested too deep: a point is [x, y] or [x, y, t])"
    if type(value) not in (int, float):
        return f"{name} must be a number, not {_kind(value)}"
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        return f"{name} is not a finite number"
    limit = MAX_TIME if name == "t" else MAX_COORDINATE
    if abs(number) > limit:
        return f"{name} is {_shown(value)}, beyond ±{limit:g}"
    return None


def _kind(value: object) -> str:
    """What a JSON value is, for messages."""
    kinds = {bool: "a boolean", str: "a string", list: "a list", dict: "an object", type(None): "null"}
    return kinds.get(type(value), "a number" if isinstance(value, int | float) else type(value).__name__)


# --- drawing -------------------------------------------------------------------------------------


def rasterise(ink: Ink) -> np.ndarray:
    """The model's 28x28 float32 input in [0, 1] for an Ink, by the image path's recipe; or BlankDrawing.

    Blank as an image would be: no points, or ink whose longer side (pen included) is under
    MIN_EXTENT_SHARE of the canvas's size (`canvas_side`); and a tap (`refuse_tap`).
    """
    if not ink.points:
        raise BlankDrawing("the canvas is blank")
    points = np.concatenate(ink.strokes, dtype=np.float32)
    (left, top), (right, bottom) = points.min(axis=0).tolist(), points.max(axis=0).tolist()
    refuse_blank(right - left, bottom - top, ink.pen, canvas_side(ink.width, ink.height))
    # Drawn no bolder than BOLDEST and no finer than FINEST: share = pen / (extent + pen). (The blank
    # checks take the pen as drawn: what the person saw.)
    extent = max(right - left, bottom - top)
    radius = min(max(ink.pen, FINEST * extent / (1 - FINEST)), BOLDEST * extent / (1 - BOLDEST)) / 2
    width, height = right - left + 2 * radius, bottom - top + 2 * radius
    size = fitted_size(width, height)
    # Into the fine grid, each axis scaled so that the ink's box fills the fitted size exactly: the
    # image path stretches its crop to that size too (by under half a pixel). The pen keeps the
    # longer side's scale: stretching it as well changed nothing measurable.
    sx, sy = size[0] * SUPERSAMPLE / width, size[1] * SUPERSAMPLE / height
    fine = points * np.array([sx, sy], np.float32) - np.array([(left - radius) * sx, (top - radius) * sy], np.float32)
    radius *= BOX * SUPERSAMPLE / max(width, height)
    centres = _pen_positions(fine, list(accumulate(map(len, ink.strokes))), radius)
    return in_field(_box_average(_discs(centres, radius, size), SUPERSAMPLE))


def refuse_dots(drawing: Ink) -> Ink:
    """The drawing, or BlankDrawing where it is only taps far apart: spanning a digit's size, they were
    read as a sure 1 in digit mode, where number mode leaves each out as a speck. (Short strokes that
    a bold pen blots together are a small digit: they lie within a few pens.)"""
    if drawing.points:
        points = np.concatenate(drawing.strokes)
        apart = float((points.max(axis=0) - points.min(axis=0)).max()) > 3 * drawing.pen
        if apart and all(float(np.ptp(stroke, axis=0).max()) < drawing.pen for stroke in drawing.strokes):
            raise BlankDrawing("the drawing is only dots")
    return drawing


def default_pen(width: float, height: float) -> float:
    """The pen the page draws with on a canvas of width x height (canvas.js: the shorter side's share,
    so that a wide strip for a number is drawn in the pen of a square as high)."""
    return PEN_SHARE * min(width, height)


def refuse_blank(width: float, height: float, pen: float, canvas: float) -> None:
    """BlankDrawing for points spanning `width` x `height`, drawn in `pen`, on a canvas whose size
    (`canvas_side`) is `canvas`: a tap (`refuse_tap`), or a speck under MIN_EXTENT_SHARE of the canvas."""
    refuse_tap(width, height, pen)
    if max(width, height) + pen < MIN_EXTENT_SHARE * canvas:
        raise BlankDrawing("the canvas holds only a speck")


def refuse_tap(width: float, height: float, pen: float) -> None:
    """BlankDrawing where the points span less than the pen is wide, however large the canvas: a tap
    or a dot, not a digit. (A canvas left to default is the ink's own: a dot near the origin would
    otherwise fill it, and be read as a confident 0.)"""
    if max(width, height) < pen:
        raise BlankDrawing("the drawing is only a dot")


def _pen_positions(points: np.ndarray, ends: list[int], radius: float) -> np.ndarray:
    """Where to put a disc of the pen: on every point, and along each segment close enough together
    that the discs' union is the round pen's stroke, less a sliver of DEPTH at the edges."""
    step = 2 * math.sqrt(max(2 * radius * DEPTH - DEPTH**2, 0.01))
    # Points as complex numbers x + iy (a view, no copy): one np.interp then moves along both axes.
    path = points.view(np.complex64)[:, 0]
    lengths = np.abs(path[1:] - path[:-1])
    if len(ends) > 1:
        lengths[[end - 1 for end in ends[:-1]]] = 0  # no ink between one stroke's end and the next one's start
    along = np.empty(len(points), np.float32)
    along[0] = 0
    np.add.accumulate(lengths, out=along[1:])
    # A frame made to be slow (thousands of long segments) gets its discs further apart.
    step = max(step, along[-1] / MAX_BETWEEN)
    # Positions at equal steps along the path (none falls inside a zero-length jump between strokes).
    at = np.arange(step, along[-1], step)
    centres = np.empty((len(points) + len(at), 2), np.float32)
    centres[: len(points)] = points
    centres[len(points) :].view(np.complex64)[:, 0] = np.interp(at, along, path)
    return centres


def _discs(centres: np.ndarray, radius: float, size: tuple[int, int]) -> np.ndarray:
    """Coverage (0..1) on the fine grid of the union of pen discs at `centres`.

    A disc covers each pixel of its window by how far the pixel's centre lies inside its edge, over
    a ramp 1 px wide (a straight edge's area coverage); the union takes the most any disc gives.
    """
    columns, rows = size[0] * SUPERSAMPLE, size[1] * SUPERSAMPLE
    # A pixel is touched when its centre is within radius + 0.5 of the disc's centre, and that centre
    # lies in its cell [0, 1)^2: pixels up to int(radius + 1) cells away on either side.
    half = int(radius + 1)
    if len(centres) * (2 * half + 1) ** 2 > MAX_WORK:
        pitch = math.sqrt(columns * rows * (2 * half + 1) ** 2 / MAX_WORK)
        centres = _merged(centres, max(pitch, 0.25), (columns, rows))
    # The canvas has a margin of half + 1 all round: no window falls outside, even from a centre a
    # rounding error outside the grid.
    margin = half + 1
    stride = columns + 2 * margin
    centres_in_pixel, window, flat = _window(half, margin, stride)
    cells = np.floor(centres)
    # Discs on the last axis throughout: numpy's loops then run along them, not along 5-pixel rows.
    reach = centres_in_pixel - (centres - cells).T[:, None, :]  # (2, window, discs): to its pixels, per axis
    reach *= reach
    coverage = reach[0, None, :, :] + reach[1, :, None, :]  # (window rows, window columns, discs)
    np.sqrt(coverage, out=coverage)
    np.subtract(radius + 0.5, coverage, out=coverage)
    np.minimum(coverage, 1, out=coverage)  # negatives leave the canvas's zeros as they are
    corners = (cells @ flat).astype(np.intp)  # each disc's cell in the flat canvas
    canvas = np.zeros((rows + 2 * margin) * stride, np.float32)
    np.maximum.at(canvas, (window + corners).ravel(), coverage.ravel())
    return canvas.reshape(-1, stride)[margin : margin + rows, margin : margin + columns]


@functools.lru_cache(maxsize=256)
def _window(half: int, margin: int, stride: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For discs whose windows reach `half` pixels round their centre's cell, on a flat canvas `stride`
    wide with `margin` pixels round the grid: the window's pixel centres from the cell's corner per
    axis, its pixels' flat offsets from the cell's, and the weights that make a cell (x, y) flat."""
    offsets = np.arange(-half, half + 1)
    centres_in_pixel = (offsets + 0.5).astype(np.float32)[:, None]
    window = (offsets[:, None] * stride + offsets + margin * stride + margin)[:, :, None]
    return centres_in_pixel, window, np.array([1, stride], np.float32)


def _merged(centres: np.ndarray, pitch: float, size: tuple[int, int]) -> np.ndarray:
    """Centres snapped to the middle of their cell on a grid of `pitch` pixels, one per occupied cell,
    kept within the fine grid of `size` (x, y): a cell's middle may lie past its edge."""
    # (Centres may lie a rounding error below 0; cells must not, to pack x and y into one integer.)
    cells = np.unique(np.floor(np.maximum(centres, 0) / pitch).astype(np.int64) @ np.array([1, 1 << 32]))
    merged = np.column_stack([cells & 0xFFFFFFFF, cells >> 32]).astype(np.float32) * pitch + pitch / 2
    return np.minimum(merged, np.array(size, np.float32))


def _box_average(fine: np.ndarray, factor: int) -> np.ndarray:
    """Each factor x factor block's mean: area averaging down to the box's pixels.

    Rows, then columns, summed by strided views: a few times faster than a reshaped mean here.
    """
    if factor == 1:
        return fine
    tall = fine[0::factor]
    for i in range(1, factor):
        tall = tall + fine[i::factor]
    small = tall[:, 0::factor]
    for j in range(1, factor):
        small = small + tall[:, j::factor]
    return small * (1 / factor**2)
