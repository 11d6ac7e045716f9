"""Digits drawn on canvases the way browsers hold them, to measure the model on what people really send.

MNIST accuracy says little about the service: people draw on canvases of any size, with any pen,
anywhere on the canvas, in any colours, often on a transparent background. This module renders
such canvases as PNG bytes, from three sources of digits:

- held-out MNIST test digits, scaled up onto the canvas with the pen made bolder or finer;
- pen strokes from templates of the shapes people write (a European 1 with its flag, a crossed
  7, an open 4, ...), wobbled as a hand would and bent by a random affine, sampled like pointer
  events, jagged as a mouse makes them for part of the drawings, drawn with round caps and
  joins and anti-aliased;
- real pen digits of UNIPEN's held-out writers (training/unipen.py), their own points scaled
  onto the canvas.

A drawing made from strokes also carries them as the strokes body the API takes (`Drawing.body`,
the points the PNG was drawn from), so the same drawing can be sent either way.
Non-digits (scribbles, letters, a tap) check that the service does not answer them confidently.
Every drawing takes its parameters from a numpy Generator seeded by (seed, index, kind), so
drawing i is the same whatever the count, and a failure can be rendered again alone.
"""

from __future__ import annotations

import colorsys
import io
import itertools
import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageChops, ImageFilter

from training import unipen
from training.strokes import SUPERSAMPLE, antialiased

Point = tuple[float, float]
Stroke = list[Point]
RGBA = tuple[int, int, int, int]

STYLES = ("dark_on_light", "light_on_dark", "coloured", "transparent")
OTHER_KINDS = ("scribble", "letter", "dot")
SIDE = (200, 600)  # canvas side in pixels
HEIGHT_SHARE = (0.25, 0.9)  # the digit's height as a share of the canvas's height
PEN = (4.0, 30.0)  # stroke width in pixels ...
PEN_SHARE = 0.2  # ... but never more than this share of the digit's height
ROTATE_DEGREES, SHEAR, ASPECT = 12.0, 0.2, (0.7, 1.2)
WOBBLE = 0.05  # the most a template's strokes are bent out of place, as a share of its height
MOUSE_SHARE = 0.5  # drawings made with a mouse (integer, jittered positions); the rest by touch or pen
WORK = 8  # working pixels per MNIST pixel while an MNIST digit's pen is made bolder or finer
CUT = 0.3  # the grey level where an upscaled MNIST digit's edge is drawn: low, to keep its faint strokes
THINNEST = 0.5  # an MNIST pen is made at most this much finer: beyond, its thin parts break up
MIN_CONTRAST = 3.0  # WCAG contrast ratio a person needs to see their coloured strokes clearly


@dataclass(frozen=True)
class Drawing:
    """One rendered canvas and what it holds."""

    png: bytes
    kind: str  # "digit", or one of OTHER_KINDS
    label: str  # "0".."9" for digits, the letter for letters, else ""
    source: str  # "mnist", "strokes" (templates) or "unipen" for digits, else the kind
    variant: str  # template name ("7-crossbar"), "mnist-<test index>", "unipen-<index>-<writer>", ...
    style: str
    size: tuple[int, int]  # width, height
    pen: float  # stroke width in pixels (measured on the canvas for MNIST digits)
    height_share: float  # ink height / canvas height
    device: str  # "mouse" or "touch" for templates, "tablet" for UNIPEN, "" for MNIST
    # The strokes body (recognizer.ink.parse) the PNG was drawn from; None for MNIST digits.
    body: dict | None = field(default=None, hash=False)


@dataclass(frozen=True)
class Canvas:
    width: int
    height: int
    style: str
    background: RGBA
    ink: RGBA


# --- templates: strokes in a box one unit high (y grows downwards), about 0.6 wide -------------


def arc(cx: float, cy: float, rx: float, ry: float, start: float, end: float, step: float = 8.0) -> Stroke:
    """Points on an ellipse from angle `start` to `end` (degrees; 0 is right, 90 is up, so growing
    angles run anticlockwise on the screen)."""
    count = max(2, int(abs(end - start) / step) + 1)
    angles = np.radians(np.linspace(start, end, count))
    return [(cx + rx * math.cos(a), cy - ry * math.sin(a)) for a in angles]


def bezier(p0: Point, p1: Point, p2: Point, p3: Point, count: int = 16) -> Stroke:
    t = np.linspace(0, 1, count)[:, None]
    curve = (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3
    return [(float(x), float(y)) for x, y in curve]


def chain(*parts: Stroke) -> Stroke:
    """One stroke through several pieces, the pen kept down between them."""
    return [point for part in parts for point in part]


def figure_eight(start: float = 55.0, overlap: float = 25.0) -> Stroke:
    """An 8 in one stroke from its top right: a lemniscate of Gerono, the upper loop the smaller."""
    points = []
    for t in np.radians(np.arange(start, start + 360 + overlap, 6.0)):
        s, c = math.sin(t), math.cos(t)
        width, height = (0.44, 0.44) if s > 0 else (0.6, 0.56)
        points.append((0.3 + width * s * c, 0.44 - height * s))
    return points


def _digit_templates() -> dict[str, tuple[int, list[Stroke]]]:
    oval = arc(0.3, 0.5, 0.3, 0.5, 100, 470)  # drawn anticlockwise from the top, closed with an overlap
    two_top = arc(0.3, 0.27, 0.28, 0.26, 155, -30)
    three_lower = arc(0.3, 0.73, 0.3, 0.27, 100, -150)
    five_belly = arc(0.27, 0.68, 0.3, 0.31, 135, -150)
    six_loop = arc(0.31, 0.7, 0.28, 0.29, 180, 540)
    nine_loop = arc(0.3, 0.27, 0.27, 0.27, 0, 370)
    return {
        "0-oval": (0, [oval]),
        "0-slashed": (0, [oval, [(0.5, 0.12), (0.1, 0.88)]]),
        "1-bar": (1, [[(0.3, 0.0), (0.3, 1.0)]]),
        "1-flag": (1, [[(0.05, 0.3), (0.38, 0.0), (0.38, 1.0)]]),
        "1-flag-base": (1, [[(0.08, 0.28), (0.38, 0.0), (0.38, 1.0)], [(0.1, 1.0), (0.66, 1.0)]]),
        "2-plain": (2, [chain(two_top, [(0.03, 1.0), (0.62, 1.0)])]),
        "2-loop": (
            2,
            # The diagonal curls clockwise into a small loop on the baseline, then runs right.
            [chain(two_top, arc(0.13, 0.87, 0.1, 0.1, -45, -315), [(0.3, 0.99), (0.62, 0.99)])],
        ),
        "3-round": (3, [chain(arc(0.28, 0.25, 0.27, 0.25, 150, -90), three_lower)]),
        "3-flat-top": (3, [chain([(0.04, 0.0), (0.56, 0.0), (0.24, 0.42)], arc(0.3, 0.71, 0.29, 0.29, 95, -150))]),
        "4-open": (4, [[(0.1, 0.0), (0.02, 0.62), (0.62, 0.62)], [(0.46, 0.12), (0.46, 1.0)]]),
        "4-closed": (4, [[(0.64, 0.68), (0.0, 0.68), (0.46, 0.0), (0.46, 1.0)]]),
        "5-one-stroke": (5, [chain([(0.58, 0.0), (0.1, 0.0), (0.06, 0.45)], five_belly)]),
        "5-two-strokes": (5, [chain([(0.1, 0.0), (0.06, 0.45)], five_belly), [(0.1, 0.0), (0.6, 0.0)]]),
        "6-curved": (6, [chain(bezier((0.52, 0.02), (0.2, 0.1), (0.02, 0.4), (0.03, 0.7)), six_loop)]),
        "6-straight": (6, [chain([(0.46, 0.0), (0.04, 0.68)], arc(0.31, 0.71, 0.27, 0.29, 190, 520))]),
        "7-plain": (7, [[(0.0, 0.02), (0.6, 0.02), (0.2, 1.0)]]),
        "7-crossbar": (7, [[(0.0, 0.02), (0.6, 0.02), (0.2, 1.0)], [(0.16, 0.55), (0.58, 0.52)]]),
        "7-serif": (7, [[(0.0, 0.16), (0.02, 0.02), (0.6, 0.02), (0.22, 1.0)]]),
        "8-one-stroke": (8, [figure_eight()]),
        "8-two-loops": (8, [arc(0.3, 0.23, 0.22, 0.23, 0, 370), arc(0.3, 0.72, 0.29, 0.28, 90, 460)]),
        "9-straight": (9, [chain(nine_loop, [(0.57, 0.27), (0.54, 1.0)])]),
        "9-curved": (9, [chain(nine_loop, bezier((0.57, 0.27), (0.58, 0.7), (0.48, 1.0), (0.14, 0.96)))]),
    }


def _letter_templates() -> dict[str, list[Stroke]]:
    return {
        "A": [[(0.0, 1.0), (0.35, 0.0), (0.7, 1.0)], [(0.15, 0.62), (0.55, 0.62)]],
        "B": [
            [(0.0, 0.0), (0.0, 1.0)],
            chain([(0.0, 0.0), (0.3, 0.0)], arc(0.3, 0.25, 0.24, 0.25, 90, -90), [(0.0, 0.5)]),
            chain([(0.0, 0.5), (0.32, 0.5)], arc(0.32, 0.75, 0.28, 0.25, 90, -90), [(0.0, 1.0)]),
        ],
        "C": [arc(0.38, 0.5, 0.38, 0.5, 50, 310)],
        "E": [[(0.6, 0.0), (0.0, 0.0), (0.0, 1.0), (0.6, 1.0)], [(0.0, 0.5), (0.45, 0.5)]],
        "H": [[(0.0, 0.0), (0.0, 1.0)], [(0.6, 0.0), (0.6, 1.0)], [(0.0, 0.5), (0.6, 0.5)]],
        "K": [[(0.0, 0.0), (0.0, 1.0)], [(0.6, 0.0), (0.0, 0.58)], [(0.18, 0.43), (0.62, 1.0)]],
        "M": [[(0.0, 1.0), (0.06, 0.0), (0.4, 0.62), (0.74, 0.0), (0.8, 1.0)]],
        "S": [chain(arc(0.3, 0.25, 0.28, 0.25, 25, 270), arc(0.3, 0.75, 0.3, 0.25, 90, -155))],
        "X": [[(0.0, 0.0), (0.7, 1.0)], [(0.7, 0.0), (0.0, 1.0)]],
        "Z": [[(0.0, 0.0), (0.65, 0.0), (0.0, 1.0), (0.68, 1.0)]],
    }


DIGIT_TEMPLATES = _digit_templates()
LETTER_TEMPLATES = _letter_templates()
VARIANTS = {d: [name for name, (digit, _) in DIGIT_TEMPLATES.items() if digit == d] for d in range(10)}


def scribble(rng: np.random.Generator) -> list[Stroke]:
    """One to three random-walk strokes whose heading wanders: what a bored hand does."""
    strokes = []
    for _ in range(rng.integers(1, 4)):
        headings = rng.uniform(0, 2 * math.pi) + np.cumsum(rng.normal(0, 0.6, rng.integers(15, 50)))
        start = rng.uniform(0, 3, 2)
        steps = np.stack([np.cos(headings), np.sin(headings)], axis=1)
        walk = start + np.concatenate([[[0.0, 0.0]], np.cumsum(steps, axis=0)])
        strokes.append([(float(x), float(y)) for x, y in walk])
    return strokes


# --- geometry: an affine bend, fitting onto the canvas, pointer events ----------------------------


def bend(strokes: list[Stroke], rng: np.random.Generator) -> list[np.ndarray]:
    """A hand's version of a template: wobbled, then a random rotation, shear and aspect, then
    scaled to one unit high with its top left at 0."""
    angle = math.radians(rng.uniform(-ROTATE_DEGREES, ROTATE_DEGREES))
    rotate = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    shear = np.array([[1.0, rng.uniform(-SHEAR, SHEAR)], [0.0, 1.0]])
    aspect = np.diag([rng.uniform(*ASPECT), 1.0])
    matrix = rotate @ shear @ aspect
    arrays = wobble([densify(np.asarray(stroke, float)) for stroke in strokes], rng)
    return normalise([stroke @ matrix.T for stroke in arrays])


def densify(stroke: np.ndarray, step: float = 0.02) -> np.ndarray:
    """Points every `step` along each segment, corners kept, so that a wobble bends straight lines too."""
    pieces = [
        np.linspace(a, b, max(2, math.ceil(math.hypot(*(b - a)) / step) + 1))[:-1]
        for a, b in itertools.pairwise(stroke)
    ]
    return np.concatenate([*pieces, stroke[-1:]])


def wobble(strokes: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """A smooth random displacement of the whole drawing, up to WOBBLE of its height: no hand draws a
    true arc or a straight bar, nor keeps a template's proportions. Three plane waves per axis, of
    about one cycle per digit height, bend the strokes without tearing them apart."""
    amplitude = rng.uniform(0, WOBBLE) / math.sqrt(3)
    frequencies = rng.normal(0, 1.0, (2, 3, 2)) * 2 * math.pi  # axis, wave, (x, y) in radians per unit
    phases = rng.uniform(0, 2 * math.pi, (2, 3))
    return [
        stroke + amplitude * np.sin(np.einsum("pd,awd->paw", stroke, frequencies) + phases).sum(axis=2)
        for stroke in strokes
    ]


def normalise(strokes: list[np.ndarray]) -> list[np.ndarray]:
    every = np.concatenate(strokes)
    low, high = every.min(axis=0), every.max(axis=0)
    return [(stroke - low) / (high[1] - low[1]) for stroke in strokes]


def pointer_events(stroke: np.ndarray, spacing: float) -> np.ndarray:
    """The path resampled at equal steps along it: the positions pointer events report at a steady
    hand speed. The canvas joins them with straight segments, so fast curves become polygons."""
    lengths = np.hypot(*np.diff(stroke, axis=0).T)
    along = np.concatenate([[0.0], np.cumsum(lengths)])
    if along[-1] == 0:
        return stroke[:1]
    at = np.linspace(0, along[-1], max(2, math.ceil(along[-1] / spacing) + 1))
    return np.stack([np.interp(at, along, stroke[:, 0]), np.interp(at, along, stroke[:, 1])], axis=1)


# --- canvases: size, colours, rasterising, PNG ----------------------------------------------------


def sample_canvas(rng: np.random.Generator) -> Canvas:
    """A canvas: mostly square, some landscape or portrait (400x300 and the like), in a random style."""
    width = int(rng.integers(SIDE[0], SIDE[1] + 1))
    height = width
    if rng.random() < 0.3:
        height = int(np.clip(width * rng.choice([0.75, 0.5625, 1.333, 0.8]), SIDE[0], SIDE[1]))
    style = str(rng.choice(STYLES))
    background, ink = sample_colours(style, rng)
    return Canvas(width, height, style, background, ink)


def luminance(rgb: tuple[int, ...]) -> float:
    """WCAG relative luminance of an sRGB colour."""
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in (v / 255 for v in rgb[:3])]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def hsv(rng: np.random.Generator, saturation: tuple[float, float], value: tuple[float, float]) -> RGBA:
    r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(*saturation), rng.uniform(*value))
    return (round(r * 255), round(g * 255), round(b * 255), 255)


def sample_colours(style: str, rng: np.random.Generator) -> tuple[RGBA, RGBA]:
    """(background, ink) for a style."""
    if style == "dark_on_light":  # white or off-white paper, near-black ink
        return hsv(rng, (0, 0.06), (0.92, 1)), hsv(rng, (0, 0.4), (0, 0.2))
    if style == "light_on_dark":  # black or dark grey board, white-ish chalk
        return hsv(rng, (0, 0.15), (0, 0.2)), hsv(rng, (0, 0.08), (0.85, 1))
    if style == "coloured":  # a saturated ink on a light or dark ground, as far apart as a person needs
        while True:
            light = rng.random() < 0.5
            background = hsv(rng, (0, 0.25), (0.85, 1) if light else (0, 0.25))
            ink = hsv(rng, (0.6, 1), (0.5, 1))
            if contrast(background, ink) >= MIN_CONTRAST:
                return background, ink
    # transparent: an untouched canvas exports (0, 0, 0, 0) wherever nothing was drawn; any ink colour
    ink = hsv(rng, (0, 1), (0, 1))
    return (0, 0, 0, 0), ink


def compose(coverage: np.ndarray, canvas: Canvas) -> bytes:
    """The canvas as RGBA PNG bytes, as toDataURL("image/png") gives it."""
    if canvas.style == "transparent":
        # The ink's colour wherever there is any ink, its coverage as alpha (browsers un-premultiply on export).
        pixels = np.zeros((*coverage.shape, 4), np.uint8)
        pixels[..., 3] = np.round(coverage * 255)
        pixels[pixels[..., 3] > 0, :3] = canvas.ink[:3]
    else:
        alpha = coverage[..., None]
        blend = np.asarray(canvas.background, np.float32) * (1 - alpha) + np.asarray(canvas.ink, np.float32) * alpha
        pixels = np.round(blend).astype(np.uint8)
    buffer = io.BytesIO()
    # The fastest zlib level: the pixels are the same, the suite spends less time encoding.
    Image.fromarray(pixels, "RGBA").save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def stroke_width(coverage: np.ndarray) -> float:
    """The pen width of ink (0..1 coverage), from its area and outline as if it were one capsule.

    A capsule of width w and length L has area A = Lw + pi w²/4 and outline P = 2L + pi w, so
    w = (P/2 - sqrt(P²/4 - pi A)) / (pi/2). The outline is the summed gradient of the coverage.
    """
    area = float(coverage.sum())
    outline = float(np.hypot(*np.gradient(coverage.astype(np.float32))).sum())
    if outline == 0:
        return 0.0
    discriminant = outline**2 / 4 - math.pi * area
    return (outline / 2 - math.sqrt(discriminant)) / (math.pi / 2) if discriminant > 0 else 2 * area / outline


def sample_pen(rng: np.random.Generator, ink_height: float) -> float:
    """Log-uniform, so thin and bold pens are equally common, and never over a fifth of the height."""
    return float(math.exp(rng.uniform(math.log(PEN[0]), math.log(min(PEN[1], PEN_SHARE * ink_height)))))


def place(rng: np.random.Generator, ink: tuple[float, float], canvas: Canvas) -> tuple[float, float]:
    """The ink box's top left, anywhere it fits on the canvas with two pixels to spare for anti-aliasing."""
    # max(): a digit fitted to the canvas exactly can overshoot the room by a rounding error.
    return rng.uniform(2, max(2, canvas.width - 2 - ink[0])), rng.uniform(2, max(2, canvas.height - 2 - ink[1]))


def pen_events(strokes: list[np.ndarray], canvas: Canvas, rng: np.random.Generator) -> tuple[list[np.ndarray], dict]:
    """Strokes (one unit high) put on a canvas at a random height, pen, position and input device:
    the pointer events in canvas pixels, to 0.1 px as the page sends them, and the facts."""
    ink_height = rng.uniform(*HEIGHT_SHARE) * canvas.height
    pen = sample_pen(rng, ink_height)
    path_width = max(float(np.concatenate(strokes)[:, 0].max()), 1e-6)
    scale = ink_height - pen  # the path's height: the pen adds half its width above and below
    scale = min(scale, (canvas.width - 4 - pen) / path_width)  # a wide digit on a narrow canvas is drawn smaller
    ink = (path_width * scale + pen, scale + pen)
    left, top = place(rng, ink, canvas)
    mouse = rng.random() < MOUSE_SHARE
    # Pointer events arrive a few pixels apart (more for bigger, faster strokes).
    spacing = max(2.0, rng.uniform(0.015, 0.05) * ink[1])
    jitter = max(0.3, rng.uniform(0.001, 0.006) * ink[1])
    events = []
    for stroke in strokes:
        points = pointer_events(stroke * scale + (left + pen / 2, top + pen / 2), spacing)
        if mouse:  # a mouse reports whole pixels and the hand wobbles: jagged strokes
            points = np.round(points + rng.normal(0, jitter, points.shape))
            # ... kept on the canvas (a wobble past the edge would be lost there anyway).
            points = np.clip(points, pen / 2 + 2, (canvas.width - pen / 2 - 2, canvas.height - pen / 2 - 2))
        events.append(np.round(points, 1))
    return events, {"pen": pen, "height_share": ink[1] / canvas.height, "device": "mouse" if mouse else "touch"}


def draw_strokes(strokes: list[np.ndarray], canvas: Canvas, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Strokes (one unit high) drawn on a canvas at a random height, pen, position and input device."""
    events, facts = pen_events(strokes, canvas, rng)
    return antialiased(events, (canvas.width, canvas.height), facts["pen"]), facts


def strokes_body(events: list[np.ndarray], canvas: Canvas, pen: float) -> dict:
    """The strokes body of the API (recognizer.ink.parse) for pen events on a canvas."""
    strokes = [np.asarray(stroke, np.float64).tolist() for stroke in events]
    return {"strokes": strokes, "width": canvas.width, "height": canvas.height, "pen": pen}


# --- MNIST digits on a canvas ----------------------------------------------------------------------


def thicken(image: Image.Image, steps: int) -> Image.Image:
    """Strokes grown (steps > 0) or shrunk (< 0) by about a pixel on each side per step.

    Grey-level dilation or erosion, alternating a 3x3 square with a plus-shaped neighbourhood:
    after two steps the pen's footprint is an octagon, near enough round, and every step stays a
    3x3 filter (Pillow's rank filters cost size² per pixel; MaxFilter(41) would take ~50x longer).
    The image must have a margin of at least `steps` pixels: the plus-shaped step wraps around.
    """
    rank = ImageFilter.MaxFilter(3) if steps > 0 else ImageFilter.MinFilter(3)
    combine = ImageChops.lighter if steps > 0 else ImageChops.darker
    for step in range(abs(steps)):
        if step % 2 == 0:
            image = image.filter(rank)
        else:
            grown = image
            for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                grown = combine(grown, ImageChops.offset(image, dx, dy))
            image = grown
    return image


def ink_box(values: np.ndarray, level: float) -> tuple[int, int, int, int]:
    """(top, bottom, left, right), inclusive, of the pixels at or above `level`."""
    rows = np.flatnonzero((values >= level).any(axis=1))
    cols = np.flatnonzero((values >= level).any(axis=0))
    return rows[0], rows[-1], cols[0], cols[-1]


@dataclass(frozen=True)
class Upscaled:
    """An MNIST digit scaled up WORK times, with the sizes the canvas needs."""

    grey: Image.Image  # 0..255, the ink with a margin of 4 MNIST pixels
    height: int  # the ink's height in MNIST pixels
    pen: float  # its own pen width in working pixels


def upscale(digit: np.ndarray) -> Upscaled:
    """An MNIST digit (28x28 uint8) scaled up 8x (bicubic) and smoothed, with its height and pen."""
    margin = 4  # MNIST pixels around the ink: room for a bolder pen
    padded = np.pad(digit, margin)
    top, bottom, left, right = ink_box(padded, CUT * 255)
    crop = padded[top - margin : bottom + margin + 1, left - margin : right + margin + 1]
    grey = Image.fromarray(crop).resize((crop.shape[1] * WORK, crop.shape[0] * WORK), Image.Resampling.BICUBIC)
    # Bicubic upscaling leaves MNIST's pixel grid as a wave along every edge; a pen leaves none.
    grey = grey.filter(ImageFilter.GaussianBlur(WORK / 2))
    pen = stroke_width((np.asarray(grey) >= CUT * 255).astype(np.float32))
    return Upscaled(grey, bottom - top + 1, pen)


def mnist_coverage(digit: Upscaled, ink_height: float, pen: float) -> np.ndarray:
    """An upscaled MNIST digit as canvas coverage `ink_height` pixels tall, drawn with about `pen`.

    MNIST's strokes are ~2.5 px wide in a ~20 px tall digit. They are grown or shrunk at the
    working scale towards the pen the canvas asks for, but to no less than half their own width:
    finer than that, MNIST's thinner parts vanish and the digit breaks up (pens much finer than
    MNIST's come from the stroke templates). Then the digit is scaled to the canvas and cut into
    solid ink at 0.3 grey, not half: MNIST's faint strokes are a thin pen's anti-aliasing, and a
    canvas pen is solid wherever it went.
    """
    wanted = pen / ink_height * digit.height * WORK  # in working pixels
    # Each step moves both edges by about a pixel (see thicken()).
    steps = max(round((wanted - digit.pen) / 2), -math.floor(digit.pen * (1 - THINNEST) / 2))
    grey = np.asarray(thicken(digit.grey, steps), np.float32) / 255
    top, bottom, left, right = ink_box(grey, CUT)
    grey = grey[max(top - WORK, 0) : bottom + WORK + 1, max(left - WORK, 0) : right + WORK + 1]
    scale = ink_height / (bottom - top + 1)  # canvas pixels per working pixel
    size = (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale)))
    # Cut at 4x the canvas's resolution and averaged down: solid ink wherever the pen went,
    # anti-aliased by coverage as the strokes are.
    fine = Image.fromarray(grey).resize((size[0] * SUPERSAMPLE, size[1] * SUPERSAMPLE), Image.Resampling.BILINEAR)
    solid = Image.fromarray(np.where(np.asarray(fine) >= CUT, 255, 0).astype(np.uint8))
    return np.asarray(solid.resize(size, Image.Resampling.BOX), np.float32) / 255


def draw_mnist(digit: np.ndarray, canvas: Canvas, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    upscaled = upscale(digit)
    ink_height = rng.uniform(*HEIGHT_SHARE) * canvas.height
    # Nobody draws with a pen over 30 px: a digit so big that even its finest pen (half its own)
    # would be over that is drawn smaller.
    finest = THINNEST * upscaled.pen / WORK / upscaled.height  # as a share of the digit's height
    ink_height = min(ink_height, 0.85 * PEN[1] / finest)  # 0.85: the shrinking steps fall a little short
    pen = sample_pen(rng, ink_height)
    while True:
        piece = mnist_coverage(upscaled, ink_height, pen)
        top, bottom, left, right = ink_box(piece, 0.5)
        ink_w, ink_h = right - left + 1, bottom - top + 1
        fits = min((canvas.width - 4) / ink_w, (canvas.height - 4) / ink_h)
        if fits >= 1:
            break
        ink_height *= 0.98 * fits  # a wide digit on a narrow canvas is drawn smaller
    x, y = place(rng, (ink_w, ink_h), canvas)
    coverage = np.zeros((canvas.height, canvas.width), np.float32)
    # Paste the piece so its ink box lands at (x, y); the faint margin outside the canvas is cut.
    ox, oy = round(x) - left, round(y) - top
    rows = slice(max(oy, 0), min(oy + piece.shape[0], canvas.height))
    cols = slice(max(ox, 0), min(ox + piece.shape[1], canvas.width))
    coverage[rows, cols] = piece[rows.start - oy : rows.stop - oy, cols.start - ox : cols.stop - ox]
    return coverage, {"pen": stroke_width(coverage), "height_share": ink_h / canvas.height, "device": ""}


# --- the drawings ---------------------------------------------------------------------------------


def stroke_drawing(
    events: list[np.ndarray], facts: dict, canvas: Canvas, kind: str, label: str, source: str, variant: str
) -> Drawing:
    """A drawing made of pen events: the canvas PNG drawn from them, and them as a strokes body."""
    coverage = antialiased(events, (canvas.width, canvas.height), facts["pen"])
    size = (canvas.width, canvas.height)
    body = strokes_body(events, canvas, facts["pen"])
    return Drawing(compose(coverage, canvas), kind, label, source, variant, canvas.style, size, **facts, body=body)


def digit_drawing(index: int, seed: int, images: np.ndarray, labels: np.ndarray) -> Drawing:
    """Digit canvas number `index`: even ones from MNIST's test split, odd ones from stroke templates."""
    if index % 2 == 0:
        return mnist_drawing(index, seed, images, labels)
    return template_drawing(index, seed)


def mnist_drawing(index: int, seed: int, images: np.ndarray, labels: np.ndarray) -> Drawing:
    """An MNIST test digit on canvas number `index` (the suite's are even)."""
    rng = np.random.default_rng([seed, index, 0])
    canvas = sample_canvas(rng)
    # The test split in an order fixed by the seed: no digit twice until all were drawn.
    which = int(np.random.default_rng([seed, 0]).permutation(len(images))[index // 2 % len(images)])
    coverage, facts = draw_mnist(images[which], canvas, rng)
    label, size = str(int(labels[which])), (canvas.width, canvas.height)
    return Drawing(compose(coverage, canvas), "digit", label, "mnist", f"mnist-{which}", canvas.style, size, **facts)


def usps_drawing(index: int, seed: int, digit: np.ndarray, label: int) -> Drawing:
    """A scanned USPS digit (its 28x28 input, training/usps.py) on canvas number `index`, scaled up as MNIST's are."""
    rng = np.random.default_rng([seed, index, 2 + len(OTHER_KINDS)])
    canvas = sample_canvas(rng)
    coverage, facts = draw_mnist(np.round(digit * 255).astype(np.uint8), canvas, rng)
    size = (canvas.width, canvas.height)
    return Drawing(compose(coverage, canvas), "digit", str(label), "usps", f"usps-{index}", canvas.style, size, **facts)


def template_drawing(index: int, seed: int) -> Drawing:
    """A stroke template digit on canvas number `index` (the suite's are odd), with its strokes body."""
    rng = np.random.default_rng([seed, index, 0])
    canvas = sample_canvas(rng)
    label = int(rng.integers(10))
    variant = str(rng.choice(VARIANTS[label]))
    events, facts = pen_events(bend(DIGIT_TEMPLATES[variant][1], rng), canvas, rng)
    return stroke_drawing(events, facts, canvas, "digit", str(label), "strokes", variant)


def unipen_drawing(index: int, seed: int, digit: unipen.PenDigit) -> Drawing:
    """A real pen digit (UNIPEN) on canvas number `index`: the suite's canvases, heights, pens and
    places, and the writer's own points scaled onto the canvas (unipen.on_canvas), not resampled."""
    rng = np.random.default_rng([seed, index, 1 + len(OTHER_KINDS)])
    canvas = sample_canvas(rng)
    ink_height = rng.uniform(*HEIGHT_SHARE) * canvas.height
    pen = sample_pen(rng, ink_height)
    # Placed in the canvas less two pixels a side, the room place() leaves for anti-aliasing.
    inner = (canvas.width - 4, canvas.height - 4)
    placed = unipen.on_canvas(digit, inner, ink_height / inner[1], (rng.random(), rng.random()), pen)
    events = [np.round(np.asarray(stroke) + 2, 1) for stroke in placed["strokes"]]
    every = np.concatenate(events)
    facts = {"pen": pen, "height_share": float(np.ptp(every[:, 1]) + pen) / canvas.height, "device": "tablet"}
    return stroke_drawing(events, facts, canvas, "digit", str(digit.label), "unipen", f"unipen-{index}-{digit.writer}")


def other_drawing(index: int, seed: int, kind: str) -> Drawing:
    """Non-digit canvas number `index` of a kind: a scribble, a letter, or a dot (a tap or a slip)."""
    rng = np.random.default_rng([seed, index, 1 + OTHER_KINDS.index(kind)])
    canvas = sample_canvas(rng)
    label = ""
    if kind == "scribble":
        events, facts = pen_events(normalise([np.asarray(s) for s in scribble(rng)]), canvas, rng)
    elif kind == "letter":
        label = str(rng.choice(list(LETTER_TEMPLATES)))
        events, facts = pen_events(bend(LETTER_TEMPLATES[label], rng), canvas, rng)
    else:
        events, facts = dot_events(canvas, rng)
    return stroke_drawing(events, facts, canvas, kind, label, kind, label or kind)


def dot_events(canvas: Canvas, rng: np.random.Generator) -> tuple[list[np.ndarray], dict]:
    """A tap, or a short slip of the pen, well under a tenth of the canvas: nothing meant."""
    longer = max(canvas.width, canvas.height)
    pen = rng.uniform(PEN[0], max(PEN[0], 0.05 * longer))
    length = rng.uniform(0, 0.05 * longer - pen) if rng.random() < 0.5 else 0.0
    x, y = place(rng, (length + pen, length + pen), canvas)
    centre = np.array([x, y]) + (length + pen) / 2
    angle = rng.uniform(0, math.pi)
    half = length / 2 * np.array([math.cos(angle), math.sin(angle)])
    points = np.round(np.stack([centre - half, centre + half]), 1)
    return [points], {"pen": pen, "height_share": pen / canvas.height, "device": ""}
