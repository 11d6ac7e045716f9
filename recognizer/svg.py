"""Stroke drawings as SVG for the admin: crisp at any size, and their stroke order can be replayed.

The strokes come from a client and are stored as JSON, so nothing here trusts them: every value
written into the SVG is a number this module formatted itself. Anything else (a string, a
nested list where a number should be, NaN) is skipped, never copied.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from recognizer.ink import PEN_SHARE
from recognizer.models import Drawing

INK, PAPER, ORDER = "#1b1f24", "#fff", "#2f6fde"
GAP_S = 0.25  # the pause between strokes in a replay (the real pauses can last seconds)
STROKE_S = (0.15, 2.0)  # a stroke replays in its real time (with t) within these bounds ...
UNTIMED_STROKE_S = 0.5  # ... or in this time when its points have no t


def _finite(value: object) -> float | None:
    """The value as a float if it is a real, finite number (not a bool, not a string)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _number(value: float) -> str:
    """A number as SVG reads it: only digits, a minus sign and a decimal point."""
    return f"{value:.1f}".removesuffix(".0")


def clean_strokes(strokes: object) -> list[list[tuple[float, float, float | None]]]:
    """The strokes' points as (x, y, t or None), dropping whatever is not a point of finite numbers."""
    if not isinstance(strokes, list):
        return []
    cleaned = []
    for stroke in strokes:
        if not isinstance(stroke, list):
            continue
        points = []
        for point in stroke:
            if not isinstance(point, list | tuple) or len(point) < 2:
                continue
            x, y = _finite(point[0]), _finite(point[1])
            if x is not None and y is not None:
                points.append((x, y, _finite(point[2]) if len(point) > 2 else None))
        if points:
            cleaned.append(points)
    return cleaned


def _path(points: list[tuple[float, float, float | None]]) -> str:
    coordinates = [f"{_number(x)} {_number(y)}" for x, y, _ in points]
    if len(coordinates) == 1:
        coordinates *= 2  # a lone point: a zero-length line, which round caps draw as a dot (as the canvas does)
    return "M" + coordinates[0] + " L" + " ".join(coordinates[1:])


def _timings(strokes: list[list[tuple[float, float, float | None]]]) -> Iterable[tuple[float, float]]:
    """(delay, duration) in seconds for each stroke of a replay, in the order drawn."""
    start = 0.0
    for points in strokes:
        times = [t for _, _, t in points if t is not None]
        duration = (max(times) - min(times)) / 1000 if len(times) > 1 else UNTIMED_STROKE_S
        duration = min(max(duration, STROKE_S[0]), STROKE_S[1])
        yield start, duration
        start += duration + GAP_S


def strokes_svg(
    strokes: object, width: object, height: object, pen: object = None, *, css_class: str = "", detail: bool = False
) -> SafeString:
    """An inline <svg> of the strokes on a canvas of width x height, one <path> per stroke.

    `detail` adds what the change and review pages show: the stroke order as small numbers at
    each stroke's start, and per-stroke timings for the replay (recognizer/static/recognizer/strokes.js).
    `css_class` must be a constant of the caller's, never a stored value.
    """
    w = max(_finite(width) or 0.0, 1.0)
    h = max(_finite(height) or 0.0, 1.0)
    line = _finite(pen)
    line = line if line is not None and line > 0 else max(2.0, w * PEN_SHARE)  # as recognizer.ink's default
    cleaned = clean_strokes(strokes)
    paths = []
    for (delay, duration), points in zip(_timings(cleaned), cleaned, strict=True):
        timing = f' pathLength="1" style="--delay:{_number(delay * 1000)}ms;--duration:{_number(duration * 1000)}ms"'
        paths.append(f'<path d="{_path(points)}"{timing if detail else ""}/>')
    order = ""
    if detail and cleaned:
        size = max(10.0, w * 0.06)
        # Up and left of where each stroke starts, clear of the ink, and kept inside the picture.
        numbers = "".join(
            f'<text x="{_number(max(x - line / 2, size * 0.7))}" y="{_number(max(y - line / 2, size))}">{n}</text>'
            for n, (x, y, _) in enumerate((points[0] for points in cleaned), start=1)
        )
        order = (  # a white halo keeps the numbers readable over the ink
            f'<g class="digits-order" fill="{ORDER}" stroke="{PAPER}" stroke-width="{_number(size / 5)}" '
            f'paint-order="stroke" text-anchor="end" font-size="{_number(size)}" font-family="sans-serif" '
            f'font-weight="bold">{numbers}</g>'
        )
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="digits-strokes {escape(css_class)}" '
        f'viewBox="0 0 {_number(w)} {_number(h)}" role="img" aria-label="the drawing, {len(cleaned)} stroke(s)">'
        f'<rect width="100%" height="100%" fill="{PAPER}"/>'
        f'<g fill="none" stroke="{INK}" stroke-width="{_number(line)}" stroke-linecap="round" '
        f'stroke-linejoin="round">{"".join(paths)}</g>{order}</svg>'
    )
    # Safe: built above from formatted numbers, counts and constants, never a stored string.
    return mark_safe(svg)


def drawing_svg(drawing: Drawing, *, css_class: str = "", detail: bool = False) -> SafeString:
    """A stroke drawing (one with `strokes` set) as inline SVG."""
    return strokes_svg(drawing.strokes, drawing.width, drawing.height, drawing.pen, css_class=css_class, detail=detail)
