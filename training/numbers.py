"""Numbers to develop and measure the reading of several digits on: real pen digits and MNIST side by side.

- `pen_number`: two to five UNIPEN digits of ONE writer (a person's digits look alike; mixing
  writers would make a number no one writes), placed left to right as a person writes a number:
  each digit at about the line's height, gaps from a slight overlap to a wide space, a baseline
  that wanders. The result is a strokes body (`recognizer.ink.parse` reads it) with each digit's
  box; `painted_body` paints it as a browser's canvas does, and benchmarks/numbers.py puts that on a
  canvas in the ink styles (benchmarks/canvases.py).
  With `joined`, the pen stays down from one digit into the next (the last stroke of a digit runs
  into the first of the next): one stroke through two digits. With `mark` (not with `joined`), a
  mark that is not a digit is written too (MARKS): a comma or an apostrophe between two digits, a
  minus sign before them; the label and the boxes are the digits' only.
- `mnist_number`: MNIST digits (or, without the MNIST files, the project's made digits,
  training/samples.py) side by side on a canvas, as ink coverage (0..1) with the boxes.
- `fit_weights`: recognizer.reading's WEIGHTS, fitted on such numbers by the calibration writers.
- `digit_crops`: the digits number mode cuts out of such numbers by the train writers, labelled:
  what the model learns from in its second stage of training (training/train.py).

Writers come from `unipen.split`: develop on "train" and "calibration", report on "held_out".
Every number is drawn from a numpy Generator seeded by (seed, index), so number i is the same
whatever the count.
"""

from __future__ import annotations

import functools
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from training import unipen
from training.strokes import antialiased

LENGTHS = (2, 3, 4, 5)  # digits in a number
GAP = (-0.1, 0.45)  # space between two digits' ink, as a share of the line's height (negative: overlap) ...
OVERLAP = 0.25  # ... but an overlap is at most this share of the narrower digit's width: slight
WIDEST = 1.5  # UNIPEN items wider than this many heights are several digits ("00", "0000"): left out
WANDER = 0.05  # the baseline's random walk per digit, as a share of the line's height
SIZE_JITTER = (0.9, 1.1)  # each digit's height against the line's ...
VARIED_SIZES = (0.7, 1.3)  # ... and for some of the numbers the weights are fitted on: people vary more
LINE_HEIGHT = (60.0, 220.0)  # the line's height in canvas pixels
PEN_SHARE = (0.04, 0.16)  # the pen's width as a share of the line's height (log-uniform)
MARGIN = (0.1, 0.6)  # room round the ink, as a share of the line's height
MNIST_SCALE = 4  # canvas pixels per MNIST pixel
MARKS = ("comma", "apostrophe", "minus")
MARK_GAP = (0.08, 0.25)  # blank on either side of a mark, as a share of the line's height (the pen's ink apart)
TICK_LENGTH = (0.15, 0.45)  # a comma's or an apostrophe's length ...
DASH_LENGTH = (0.3, 0.7)  # ... and a minus sign's, as shares of the line's height
WHOLE = 0.7  # a candidate whose box overlaps a digit's by this share of their union is that digit, whole


@dataclass(frozen=True)
class Number:
    """A written number: what it says, and each digit's box in the drawing's pixels (x0, y0, x1, y1)."""

    label: str
    boxes: tuple[tuple[float, float, float, float], ...]
    body: dict | None = None  # a strokes body, for pen numbers
    coverage: np.ndarray | None = None  # ink 0..1 (height, width), for MNIST numbers
    writer: str = ""


@functools.cache
def writers(split: str) -> dict[str, list[unipen.PenDigit]]:
    """The UNIPEN digits of a split by writer, for writers with at least two digits.

    Some items of the file hold several digits under one label (a "0" that is "000", cut from a
    longer number); they are left out: as parts of a number they would be wrong labels.
    """
    by_writer: dict[str, list[unipen.PenDigit]] = defaultdict(list)
    for digit in unipen.split(split):
        width, height = np.ptp(np.concatenate(digit.strokes), axis=0)
        if width <= WIDEST * height:
            by_writer[digit.writer].append(digit)
    return {writer: digits for writer, digits in by_writer.items() if len(digits) >= 2}


def pen_number(
    index: int,
    split: str,
    seed: int = 0,
    length: int | None = None,
    joined: bool = False,
    sizes: tuple[float, float] = SIZE_JITTER,
    pens: tuple[float, float] = PEN_SHARE,
    mark: str | None = None,
) -> Number:
    """Number `index` of a split's writers: 2-5 digits of one writer (`length` of them when given),
    each `sizes` times the line's height, in a pen `pens` times it (log-uniform), with a `mark`."""
    rng = np.random.default_rng([seed, index])
    people = writers(split)
    writer = sorted(people)[int(rng.integers(len(people)))]
    length = length or int(rng.choice(LENGTHS))
    chosen = [people[writer][i] for i in rng.integers(len(people[writer]), size=length)]
    line = rng.uniform(*LINE_HEIGHT)
    pen = line * math.exp(rng.uniform(*np.log(pens)))
    placed = _placed([d.strokes for d in chosen], line, pen, rng, sizes)
    if mark:
        placed, at = _with_mark(placed, mark, line, pen, rng)
    strokes, boxes, (width, height) = _on_canvas(placed, pen, line, rng)
    if mark:
        boxes = boxes[:at] + boxes[at + 1 :]  # the digits' boxes
    if joined:
        strokes = _joined(strokes, [len(digit) for digit in placed], int(rng.integers(length - 1)))
    body = {"strokes": [np.round(s, 1).tolist() for s in strokes], "width": width, "height": height, "pen": pen}
    return Number("".join(str(d.label) for d in chosen), boxes, body=body, writer=writer)


def _placed(
    digits: list[tuple[np.ndarray, ...]], line: float, pen: float, rng, sizes: tuple[float, float]
) -> list[list[np.ndarray]]:
    """Each digit's strokes scaled to about the line's height and placed after the one before."""
    placed, right, baseline, before = [], 0.0, 0.0, 0.0
    for strokes in digits:
        points = np.concatenate(strokes)
        low, extent = points.min(axis=0), np.ptp(points, axis=0)
        # A digit with next to no height (a dash) is sized by its width instead, as unipen.on_canvas does.
        tall = extent[1] if extent[1] > 0.1 * extent[0] else extent[0]
        scale = max(line * rng.uniform(*sizes) - pen, 1.0) / max(tall, 1e-9)
        width = extent[0] * scale + pen
        gap = _gap(rng, line, width, before) if placed else 0.0
        before = width
        baseline += rng.normal(0, WANDER) * line
        corner = np.array([right + gap + pen / 2, baseline + line - extent[1] * scale])  # bottoms on the baseline
        placed.append([(stroke - low) * scale + corner for stroke in strokes])
        right = corner[0] + extent[0] * scale + pen / 2
    return placed


def _with_mark(
    placed: list[list[np.ndarray]], mark: str, line: float, pen: float, rng
) -> tuple[list[list[np.ndarray]], int]:
    """The placed digits with a mark among them, and its place: a minus sign before the first digit,
    a comma or an apostrophe after a random one but the last, the digits after it moved to make room."""
    at = 0 if mark == "minus" else int(rng.integers(1, len(placed)))
    gap = rng.uniform(*MARK_GAP) * line + pen
    after = np.concatenate(placed[at])
    baseline = float(after[:, 1].max())
    top, t = baseline - line, np.linspace(0, 1, 8)
    if mark == "minus":
        length = rng.uniform(*DASH_LENGTH) * line
        x0, y = float(after[:, 0].min()) - gap - length, baseline - line / 2 + rng.normal(0, 0.05) * line
        return [[np.column_stack([x0 + length * t, y + 0.02 * line * np.sin(3 * t)])], *placed], 0
    length = rng.uniform(*TICK_LENGTH) * line
    x0 = float(np.concatenate(placed[at - 1])[:, 0].max()) + gap
    if mark == "comma":  # from just above the baseline to below it, bending left
        xs, ys = x0 + 0.04 * line * np.sin(np.pi * t) - length * t / 6, baseline - 0.05 * line + length * t
    else:  # an apostrophe, from the top down
        xs, ys = x0 + 0.03 * line * (1 - t), top + length * t
    room = np.array([xs.max() + gap - after[:, 0].min(), 0.0])
    moved = [[stroke + room for stroke in digit] for digit in placed[at:]]
    return [*placed[:at], [np.column_stack([xs, ys])], *moved], at


def _gap(rng: np.random.Generator, line: float, width: float, before: float) -> float:
    """The space before a digit `width` wide after one `before` wide: GAP, an overlap kept slight."""
    return max(rng.uniform(*GAP) * line, -OVERLAP * min(width, before))


def _joined(strokes: list[np.ndarray], counts: list[int], at: int) -> list[np.ndarray]:
    """Digit `at`'s last stroke run on, pen down, into digit `at + 1`'s first (`counts`: strokes per digit)."""
    last = sum(counts[: at + 1]) - 1
    return [*strokes[:last], np.concatenate(strokes[last : last + 2]), *strokes[last + 2 :]]


def _on_canvas(placed: list[list[np.ndarray]], pen: float, line: float, rng) -> tuple[list, tuple, tuple[int, int]]:
    """The strokes moved onto a canvas with a margin; each digit's box (pen included); the canvas size."""
    every = np.concatenate([s for strokes in placed for s in strokes])
    margin = rng.uniform(*MARGIN, 2) * line + pen / 2
    shift = margin - every.min(axis=0)
    width, height = (np.ceil(np.ptp(every, axis=0) + 2 * margin)).astype(int).tolist()
    strokes = [s + shift for strokes in placed for s in strokes]
    boxes = tuple(tuple(round(v, 1) for v in _ink_box(np.concatenate(digit) + shift, pen)) for digit in placed)
    return strokes, boxes, (width, height)


def mnist_number(index: int, images: np.ndarray, labels: np.ndarray, seed: int = 0) -> Number:
    """Number `index` of 2-5 digits drawn from `images` (N, 28, 28 uint8, ink light), side by side on a canvas."""
    rng = np.random.default_rng([seed, index])
    chosen = rng.integers(len(images), size=int(rng.choice(LENGTHS)))
    line = 20 * MNIST_SCALE  # MNIST's digits are 20 px high in their box
    pieces, right, baseline, placements, before = [], 0.0, 0.0, [], 0.0
    for i in chosen:
        rows = np.flatnonzero(images[i].max(axis=1))
        cols = np.flatnonzero(images[i].max(axis=0))
        crop = images[i][rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        big = Image.fromarray(crop).resize(
            (crop.shape[1] * MNIST_SCALE, crop.shape[0] * MNIST_SCALE), Image.Resampling.BILINEAR
        )
        gap = _gap(rng, line, big.width, before) if placements else 0.0
        before = big.width
        baseline += rng.normal(0, WANDER) * line
        x, y = right + gap, baseline + line - big.height
        pieces.append(np.asarray(big, np.float32) / 255)
        placements.append((x, y))
        right = x + big.width
    return _mnist_canvas(pieces, placements, "".join(str(int(labels[i])) for i in chosen), line, rng)


def _mnist_canvas(pieces: list[np.ndarray], placements: list, label: str, line: float, rng) -> Number:
    """Pieces of coverage pasted at their places (the stronger ink where they overlap), with a margin."""
    low = np.min(placements, axis=0)
    margin = np.round(rng.uniform(*MARGIN, 2) * line)
    corners = [np.round(np.array(p) - low + margin).astype(int) for p in placements]
    width = int(max(c[0] + p.shape[1] for c, p in zip(corners, pieces, strict=True)) + margin[0])
    height = int(max(c[1] + p.shape[0] for c, p in zip(corners, pieces, strict=True)) + margin[1])
    coverage = np.zeros((height, width), np.float32)
    boxes = []
    for (x, y), piece in zip(corners, pieces, strict=True):
        window = coverage[y : y + piece.shape[0], x : x + piece.shape[1]]
        np.maximum(window, piece, out=window)
        boxes.append((float(x), float(y), float(x + piece.shape[1]), float(y + piece.shape[0])))
    return Number(label, tuple(boxes), coverage=coverage)


# --- fitting the segmentation's scores ---------------------------------------------------------------


def _ink_box(points: np.ndarray, pen: float) -> tuple[float, float, float, float]:
    """The box round points (x, y first) drawn with a pen this wide, the pen included."""
    (x0, y0), (x1, y1) = points[:, :2].min(axis=0) - pen / 2, points[:, :2].max(axis=0) + pen / 2
    return float(x0), float(y0), float(x1), float(y1)


def painted_body(body: dict) -> np.ndarray:
    """A strokes body painted as the page's canvas paints it: ink coverage 0..1."""
    return antialiased([np.asarray(s) for s in body["strokes"]], (body["width"], body["height"]), body["pen"])


def whole(boxes: np.ndarray, truth: np.ndarray, least: float = WHOLE) -> np.ndarray:
    """Which candidate boxes (N, 4) are one whole digit: overlapping a true box by `least` of their union."""
    return _overlaps(boxes, truth).max(axis=1) >= least


def _overlaps(boxes: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Each box's (N, 4) intersection over union with each true box (M, 4): (N, M)."""
    low = np.maximum(boxes[:, None, :2], truth[None, :, :2])
    high = np.minimum(boxes[:, None, 2:], truth[None, :, 2:])
    common = np.prod(np.clip(high - low, 0, None), axis=2)
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)[:, None] + np.prod(truth[:, 2:] - truth[:, :2], axis=1)
    return common / (areas - common)


def digit_crops(split: str, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The model's inputs (N, 28, 28) and labels of digits as number mode cuts them out of numbers: the
    candidates that are one whole digit (`whole`), of `count` numbers by `split`'s writers painted on
    a canvas (anti-aliased, as a browser paints; with a quarter as many of the project's made digits
    side by side: `painted_drawings`) and of `count` / 2 written as pen strokes, the
    one-stroke-through-two, uneven-sized and lone digits among them (`pen_drawings`). Such a digit
    keeps what a cut left of it and bits of its neighbours, and a 1 keeps its own narrow shape."""
    drawings = painted_drawings(painted_body, split, count, seed) + pen_drawings(split, count // 2, seed + 1)
    images, labels = [], []
    for found, number in drawings:
        if not found.candidates:
            continue
        overlaps = _overlaps(np.array([c.box for c in found.candidates]), np.array(number.boxes))
        chosen = np.flatnonzero(overlaps.max(axis=1) >= WHOLE)
        images.append(found.images[chosen])
        labels.append([int(number.label[j]) for j in overlaps[chosen].argmax(axis=1)])
    return np.concatenate(images), np.concatenate(labels).astype(np.uint8)


def fit_weights(
    predict: Callable[[np.ndarray], np.ndarray],
    paint: Callable[[dict], np.ndarray],
    painted: bool = False,
    split: str = "calibration",
    count: int = 1500,
    seed: int = 1,
    rounds: int = 300,
    start: Sequence[float] | None = None,
) -> np.ndarray:
    """recognizer.reading.WEIGHTS (or, `painted`, IMAGE_WEIGHTS), fitted on the candidates of
    numbers by `split`'s writers. Strokes: pen numbers, numbers with one stroke through two digits,
    and lone digits as the page sends them. Images: the pen numbers painted (`paint`: a strokes body
    to ink coverage 0..1) and MNIST-like numbers (samples.digits).

    The calibration writers by default: the model was trained on the train writers' digits, and
    reads them surer than anyone else's, so weights fitted there trust it too much.

    First a logistic regression of "this candidate is one whole digit" (its box overlaps a true
    digit's by 70 % of their union), unless weights to `start` from are given; then a coordinate
    search for the weights that read the most drawings exactly (the choice is a path, so the best
    per-candidate fit is not the best path), the share of lone digits read right counting as much
    as the share of numbers.
    """
    from recognizer import reading

    drawings = painted_drawings(paint, split, count, seed) if painted else pen_drawings(split, count, seed)
    candidates = [d for d, _ in drawings]
    rows = reading.split_probabilities(candidates, predict(reading.images(candidates)))
    x = np.concatenate([reading.features(d, p) for d, p in zip(candidates, rows, strict=True)])
    y = np.concatenate(
        [whole(np.array([c.box for c in d.candidates]).reshape(-1, 4), np.array(n.boxes)) for d, n in drawings]
    )
    weights = _logistic(x, y.astype(float)) if start is None else np.array(start, float)

    # Lone digits and numbers count alike: the share of each read right, added (a lone digit cut in
    # two is as wrong as a number misread, and there are fewer of them to fit on).
    lone = np.array([len(n.label) == 1 for _, n in drawings])
    share = np.where(lone, 1 / max(lone.sum(), 1), 1 / max((~lone).sum(), 1))
    name = "IMAGE_WEIGHTS" if painted else "WEIGHTS"

    def right(weights: np.ndarray) -> float:
        setattr(reading, name, tuple(weights))
        read = [reading.choose(d, p).number == n.label for (d, n), p in zip(drawings, rows, strict=True)]
        return float(share @ np.array(read))

    return _coordinate_search(right, weights, rounds)


def pen_drawings(split: str, count: int, seed: int) -> list[tuple]:
    """Pen numbers, numbers with one stroke through two digits, numbers of uneven sizes and lone digits
    by `split`'s writers, each segmented: (Segmentation, Number)."""
    from recognizer import ink, segmentation
    from recognizer.preprocessing import BlankDrawing

    drawings = []
    for i in range(count):
        number = pen_number(i, split, seed)
        drawings.append((segmentation.from_ink(ink.parse(number.body)), number))
    for i in range(count // 4):
        number = pen_number(i, split, seed + 1, joined=True)
        drawings.append((segmentation.from_ink(ink.parse(number.body)), number))
    # Digits of less even sizes: fitted only on digits within a tenth of the line's height, the
    # weights made a digit 0.7 of it high cost more than merging it into its neighbour.
    for i in range(count // 4):
        number = pen_number(i, split, seed + 2, sizes=VARIED_SIZES)
        drawings.append((segmentation.from_ink(ink.parse(number.body)), number))
    # Lone digits as the page sends them (number mode must not cut them), every writer's in turn.
    lone = [d for d in unipen.split(split) if d.writer in writers(split)]
    for digit in lone[seed % 7 :: 7][: count // 2]:
        body = unipen.on_canvas(digit, (280, 280), 0.7)
        try:
            found = segmentation.from_ink(ink.parse(body))
        except BlankDrawing:  # a few of UNIPEN's items are a dot, which the service refuses
            continue
        box = _ink_box(np.concatenate([np.asarray(s, float) for s in body["strokes"]]), body["pen"])
        drawings.append((found, Number(str(digit.label), (box,))))
    return drawings


def painted_drawings(paint: Callable, split: str, count: int, seed: int) -> list[tuple]:
    """Pen numbers painted (`paint`: a strokes body to ink coverage 0..1) and a quarter as many MNIST-like
    numbers, each segmented from its ink: (Segmentation, Number)."""
    from recognizer import segmentation
    from training import samples

    drawings = []
    for i in range(count):
        number = pen_number(i, split, seed)
        drawings.append((segmentation.from_strength((paint(number.body) * 255).astype(np.uint8)), number))
    images, labels = samples.digits(1000)
    for i in range(count // 4):
        number = mnist_number(i, images, labels, seed)
        drawings.append((segmentation.from_strength((number.coverage * 255).astype(np.uint8)), number))
    return drawings


def _coordinate_search(right: Callable[[np.ndarray], float], weights: np.ndarray, rounds: int) -> np.ndarray:
    """The weights `right` counts most for, one weight moved at a time by a step that halves when no
    move helps: the count is a step function of the weights, so no gradient leads there."""
    weights = np.array(weights, float)
    best, step, tries = right(weights), 1.0, 0
    while step > 0.02 and tries < rounds:
        moved = False
        for i in range(len(weights)):
            for sign in (1, -1):
                trial = weights.copy()
                trial[i] += sign * step
                tries += 1
                if (score := right(trial)) > best:
                    weights, best, moved = trial, score, True
                    break
        if not moved:
            step /= 2
    right(weights)
    return weights


def _logistic(x: np.ndarray, y: np.ndarray, ridge: float = 1e-3, steps: int = 50) -> np.ndarray:
    """Weights of a logistic regression by Newton's method, lightly ridged."""
    weights = np.zeros(x.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-x @ weights))
        gradient = x.T @ (p - y) + ridge * weights
        hessian = (x * (p * (1 - p))[:, None]).T @ x + ridge * np.eye(x.shape[1])
        weights -= np.linalg.solve(hessian, gradient)
    return weights
