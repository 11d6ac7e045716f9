"""Synthetic pen-stroke digits for training: the shapes MNIST lacks.

MNIST was written by American census staff and students: its 1s are bars and its 7s have
no crossbar. People drawing on the site also write European 1s (a flag, often a base),
crossed 7s, slashed zeros and open 4s, often with a thin, even pen. A few thousand such
digits, drawn from simple templates with random slant, proportions, pen width and mouse
jitter, and put through the serving preprocessing, teach the model those shapes.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from recognizer.preprocessing import to_mnist

Stroke = list[tuple[float, float]]
CANVAS = 160  # pixels the strokes are drawn on before the serving preprocessing
SUPERSAMPLE = 4  # `antialiased` draws strokes at 4x and averages them down, as a browser anti-aliases by coverage


def arc(cx: float, cy: float, rx: float, ry: float, start: float, end: float) -> Stroke:
    """Points along an ellipse, angles in degrees (0 = right, 90 = down: canvas coordinates)."""
    count = max(4, int(abs(end - start) / 10))
    angles = np.radians(np.linspace(start, end, count))
    return [(cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in angles]


# digit -> shapes people write, each a list of strokes in a unit box (x right, y down).
TEMPLATES: dict[int, list[list[Stroke]]] = {
    0: [
        [arc(0.5, 0.5, 0.32, 0.46, -90, 275)],
        [arc(0.5, 0.5, 0.32, 0.46, -90, 275), [(0.78, 0.12), (0.22, 0.88)]],  # slashed
    ],
    1: [
        [[(0.5, 0.02), (0.5, 0.98)]],
        [[(0.22, 0.32), (0.56, 0.02), (0.56, 0.98)]],  # European: a flag
        [[(0.3, 0.22), (0.55, 0.02), (0.55, 0.98)]],
        [[(0.24, 0.3), (0.55, 0.02), (0.55, 0.98)], [(0.28, 0.98), (0.82, 0.98)]],  # flag and base
    ],
    2: [
        [[*arc(0.5, 0.3, 0.32, 0.27, 190, 380), (0.16, 0.96), (0.86, 0.96)]],
        [[*arc(0.5, 0.3, 0.3, 0.27, 190, 370), (0.3, 0.85), *arc(0.3, 0.9, 0.1, 0.07, 270, 90), (0.86, 0.95)]],
    ],
    3: [
        [arc(0.48, 0.27, 0.3, 0.24, 200, 450) + arc(0.48, 0.73, 0.34, 0.24, 270, 520)],
        [[(0.18, 0.04), (0.8, 0.04), (0.45, 0.42), *arc(0.47, 0.7, 0.35, 0.27, 280, 520)]],  # flat top
    ],
    4: [
        [[(0.62, 0.02), (0.1, 0.66), (0.9, 0.66)], [(0.64, 0.3), (0.64, 0.98)]],
        [[(0.3, 0.02), (0.18, 0.58), (0.86, 0.58)], [(0.7, 0.2), (0.7, 0.98)]],  # open
    ],
    5: [
        [[(0.78, 0.04), (0.26, 0.04), (0.22, 0.44), *arc(0.5, 0.68, 0.34, 0.28, 225, 500)]],
        [[(0.25, 0.04), (0.2, 0.44), *arc(0.5, 0.68, 0.34, 0.28, 225, 500)], [(0.25, 0.04), (0.8, 0.04)]],
    ],
    6: [
        [[(0.72, 0.03), (0.42, 0.25), (0.22, 0.6), *arc(0.5, 0.72, 0.3, 0.24, 180, 540)]],
    ],
    7: [
        [[(0.1, 0.05), (0.9, 0.05), (0.38, 0.98)]],
        [[(0.1, 0.05), (0.9, 0.05), (0.38, 0.98)], [(0.3, 0.52), (0.82, 0.52)]],  # crossed
        [[(0.12, 0.2), (0.12, 0.05), (0.9, 0.05), (0.45, 0.98)]],  # with a serif
    ],
    8: [
        [arc(0.5, 0.27, 0.26, 0.23, 90, 450), arc(0.5, 0.73, 0.32, 0.25, -90, 270)],
        [arc(0.5, 0.27, 0.26, 0.23, 0, 360), arc(0.5, 0.73, 0.32, 0.25, 0, 360)],
    ],
    9: [
        [arc(0.48, 0.3, 0.3, 0.26, 0, 360), [(0.78, 0.3), (0.74, 0.98)]],
        [arc(0.48, 0.3, 0.3, 0.26, 0, 360), [(0.78, 0.3), (0.72, 0.75), (0.45, 0.98)]],  # curved tail
    ],
}


def digits(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` synthetic digits (count, 28, 28) in [0, 1] as the worker preprocesses them, and labels."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 10
    images = np.stack([draw(TEMPLATES[d][rng.integers(len(TEMPLATES[d]))], rng) for d in labels])
    return images, labels.astype(np.uint8)


def draw(strokes: list[Stroke], rng: np.random.Generator) -> np.ndarray:
    """One template, slanted and stretched at random, drawn with a random pen, then preprocessed."""
    points, pen = placed(strokes, rng, CANVAS)
    return to_mnist(paint(points, pen, (CANVAS, CANVAS)))


def paint(strokes: list[Stroke], pen: float, size: tuple[int, int]) -> np.ndarray:
    """The ink (uint8, height x width) of strokes painted on a canvas of `size` as the page paints them."""
    image = Image.new("L", size, 0)
    pen_tool = ImageDraw.Draw(image)
    width = max(1, round(pen))
    for stroke in strokes:
        pen_tool.line(stroke, fill=255, width=width, joint="curve")
        for x, y in (stroke[0], stroke[-1]):  # round caps, as the canvas page draws them
            pen_tool.ellipse((x - pen / 2, y - pen / 2, x + pen / 2, y + pen / 2), fill=255)
    return np.asarray(image)


def antialiased(strokes: list[np.ndarray], size: tuple[int, int], pen: float) -> np.ndarray:
    """Coverage (0..1) of strokes with round caps and joins, as canvas lineCap/lineJoin "round" draw them.

    A round-capped, round-joined polyline is the union of its segments and a disc at every point;
    drawn at 4x and averaged down, each pixel gets the share of it the pen covered.
    """
    big = Image.new("L", (size[0] * SUPERSAMPLE, size[1] * SUPERSAMPLE), 0)
    draw = ImageDraw.Draw(big)
    radius = pen * SUPERSAMPLE / 2
    for stroke in strokes:
        points = [(float(x) * SUPERSAMPLE, float(y) * SUPERSAMPLE) for x, y in stroke]
        if len(points) > 1:
            draw.line(points, fill=255, width=round(pen * SUPERSAMPLE), joint="curve")
        for x, y in points:
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=255)
    small = big.resize(size, Image.Resampling.BOX)
    return np.asarray(small, np.float32) / 255


def placed(strokes: list[Stroke], rng: np.random.Generator, canvas: int) -> tuple[list[Stroke], int]:
    """A template slanted, stretched, turned and jittered at random in the middle of a canvas: its points and pen."""
    height = rng.uniform(0.45, 0.85) * canvas
    width = height * rng.uniform(0.55, 0.95)
    slant, angle = rng.uniform(-0.3, 0.2), math.radians(rng.uniform(-10, 10))
    pen = max(1, round(height * rng.uniform(0.03, 0.16)))
    jitter = rng.uniform(0, 1.5) if rng.random() < 0.5 else 0.0  # a mouse's jagged path
    out = []
    for stroke in strokes:
        points = []
        for x, y in stroke:
            x, y = (x - 0.5) * width, (y - 0.5) * height
            x -= slant * y
            x, y = x * math.cos(angle) - y * math.sin(angle), x * math.sin(angle) + y * math.cos(angle)
            points.append((canvas / 2 + x + rng.normal(0, jitter), canvas / 2 + y + rng.normal(0, jitter)))
        out.append(points)
    return out, pen


def page_drawings(count: int, seed: int, size: int = 280, spacing: float = 4.0) -> tuple[list[dict], np.ndarray]:
    """`count` synthetic digits as the canvas page sends them (pointer events `spacing` px apart, 0.1 px,
    t in ms), as strokes bodies of the API on a size x size canvas, and their labels."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 10
    bodies = []
    for digit in labels:
        points, pen = placed(TEMPLATES[digit][rng.integers(len(TEMPLATES[digit]))], rng, size)
        strokes, t = [], 0
        for stroke in points:
            events = _resampled(np.asarray(stroke), spacing)
            times = t + 8 * np.arange(len(events))  # a pointer event every 8 ms
            strokes.append(
                [[round(float(x), 1), round(float(y), 1), int(ms)] for (x, y), ms in zip(events, times, strict=True)]
            )
            t = int(times[-1]) + 150  # the pen lifts for a moment
        bodies.append({"strokes": strokes, "width": size, "height": size, "pen": pen})
    return bodies, labels.astype(np.uint8)


def _resampled(stroke: np.ndarray, spacing: float) -> np.ndarray:
    """Points every `spacing` along the path, as pointer events report a steady hand."""
    along = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(stroke, axis=0).T))])
    at = np.linspace(0, along[-1], max(2, math.ceil(along[-1] / spacing) + 1))
    return np.stack([np.interp(at, along, stroke[:, 0]), np.interp(at, along, stroke[:, 1])], axis=1)
