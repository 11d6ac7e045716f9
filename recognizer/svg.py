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

from recognizer.ink import default_pen
from recognizer.models import Drawing

INK, PAPER, ORDER, BOX = "#1b1f24", "#fff", "#2f6fde", "#d9480f"
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


def _size(width: object, height: object) -> tuple[float, float]:
    return max(_finite(width) or 0.0, 1.0), max(_finite(height) or 0.0, 1.0)


def clean_digits(digits: object) -> list[tuple[int, float | None, tuple[float, float, float, float]]]:
    """The digits read as (digit, confidence or None, box), dropping any entry that is not one."""
    cleaned = []
    for read in digits if isinstance(digits, list) else []:
        if not isinstance(read, dict) or not isinstance(read.get("box"), list) or len(read["box"]) != 4:
            continue
        digit, box = read.get("digit"), [_finite(value) for value in read["box"]]
        if isinstance(digit, int) and not isinstance(digit, bool) and 0 <= digit <= 9 and None not in box:
            cleaned.append((digit, _finite(read.get("confidence")), tuple(box)))
    return cleaned


def boxes(digits: object, width: float, height: float) -> str:
    """A number drawing's boxes, each with its digit and confidence under it, as an SVG group.

    Under, kept inside the picture: the stroke order's numbers are above the strokes' starts.
    Written only from numbers formatted here: the entries are stored JSON.
    """
    size = max(10.0, height * 0.07)
    rects, labels = [], []
    for digit, confidence, (x0, y0, x1, y1) in clean_digits(digits):
        rects.append(
            f'<rect x="{_number(x0)}" y="{_number(y0)}" width="{_number(max(x1 - x0, 0))}" '
            f'height="{_number(max(y1 - y0, 0))}"/>'
        )
        sure = "" if confidence is None else f" {confidence:.0%}"
        below = min(y1 + size, height - size * 0.2)
        labels.append(f'<text x="{_number(x0)}" y="{_number(below)}">{digit}{sure}</text>')
    return (
        f'<g class="digits-boxes"><g fill="none" stroke="{BOX}" stroke-width="{_number(max(1.0, width / 200))}">'
        f"{''.join(rects)}</g>"
        # A white halo keeps the labels readable over the ink.
        f'<g fill="{BOX}" stroke="{PAPER}" stroke-width="{_number(size / 5)}" paint-order="stroke" '
        f'font-size="{_number(size)}" font-family="sans-serif" font-weight="bold">{"".join(labels)}</g></g>'
    )


def stroke_order(cleaned: list[list[tuple[float, float, float | None]]], width: float, line: float) -> str:
    """Each stroke's place in the order drawn, in a round badge up and left of where it starts, clear of
    the ink and inside the picture: white on blue, so that no one reads it as a digit drawn."""
    size = max(10.0, width * 0.06)
    radius = size * 0.65
    centres = [
        (n, _number(max(x - line / 2 - radius / 2, radius)), _number(max(y - line / 2 - radius / 2, radius)))
        for n, (x, y, _) in enumerate((points[0] for points in cleaned), start=1)
    ]
    badges = "".join(f'<circle cx="{x}" cy="{y}" r="{_number(radius)}"/>' for _, x, y in centres)
    numbers = "".join(f'<text x="{x}" y="{y}">{n}</text>' for n, x, y in centres)
    return (
        f'<g class="digits-order" stroke="{PAPER}" stroke-width="{_number(size / 8)}">'
        f'<g fill="{ORDER}">{badges}</g><g fill="{PAPER}" stroke="none" text-anchor="middle" '
        f'dominant-baseline="central" font-size="{_number(size * 0.8)}" font-family="sans-serif" '
        f'font-weight="bold">{numbers}</g></g>'
    )


def strokes_svg(
    strokes: object,
    width: object,
    height: object,
    pen: object = None,
    *,
    css_class: str = "",
    detail: bool = False,
    digits: object = None,
) -> SafeString:
    """An inline <svg> of the strokes on a canvas of width x height, one <path> per stroke.

    `detail` adds what the change and review pages show: the stroke order as small numbers at
    each stroke's start, per-stroke timings for the replay (recognizer/static/recognizer/strokes.js),
    and the boxes of the `digits` read in number mode.
    `css_class` must be a constant of the caller's, never a stored value.
    """
    w, h = _size(width, height)
    line = _finite(pen)
    line = line if line is not None and line > 0 else max(2.0, default_pen(w, h))  # as recognizer.ink's default
    cleaned = clean_strokes(strokes)
    paths = []
    for (delay, duration), points in zip(_timings(cleaned), cleaned, strict=True):
        timing = f' pathLength="1" style="--delay:{_number(delay * 1000)}ms;--duration:{_number(duration * 1000)}ms"'
        paths.append(f'<path d="{_path(points)}"{timing if detail else ""}/>')
    order = boxes(digits, w, h) if detail and digits else ""
    if detail and cleaned:
        order += stroke_order(cleaned, w, line)
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
    """A stroke drawing (one with `strokes` set) as inline SVG; with `detail`, a number drawing's boxes too."""
    return strokes_svg(
        drawing.strokes,
        drawing.width,
        drawing.height,
        drawing.pen,
        css_class=css_class,
        detail=detail,
        digits=drawing.digits,
    )


def image_boxes_svg(drawing: Drawing, image_url: str, *, css_class: str = "") -> SafeString:
    """An image drawing with a number drawing's boxes over it: the image at `image_url` inside an inline <svg>."""
    w, h = _size(drawing.width, drawing.height)
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="digits-strokes {escape(css_class)}" '
        f'viewBox="0 0 {_number(w)} {_number(h)}" role="img" aria-label="the drawing, with the digits read">'
        f'<rect width="100%" height="100%" fill="{PAPER}"/>'
        f'<image href="{escape(image_url)}" width="{_number(w)}" height="{_number(h)}"/>'
        f"{boxes(drawing.digits, w, h)}</svg>"
    )
    # Safe: formatted numbers, constants, and the escaped URL the caller reversed.
    return mark_safe(svg)
