"""Cutting a number's drawing into candidate digits, for recognizer/reading.py to choose among.

Segmentation by recognition. A drawing is first cut into pieces, in order of position (never of
time):

- pen strokes: strokes whose horizontal extents overlap most of the narrower one's belong to one
  digit (the two strokes of a 4, the bar of a 5 drawn last, the bar through a 7), unless together
  they would be far wider than a digit, or both are nearly as tall as the line (digits that touch,
  a 1 drawn into the next digit): those stay apart, and the model decides;
- images: the connected components of the ink, grouped the same way;
- a piece far wider than the line is high, or holding one stroke that wide, is cut where the ink
  is thinnest across it: strokes where a cut crosses the fewest of them, at the minimum of their
  projection (one stroke running through two digits), an image's component along the
  top-to-bottom path crossing the least ink (digits that overlap);
- an image's component about as wide as a digit or wider is first cut where two digits touch, if
  they do: the ink round a junction of its skeleton (recognizer/touching.py) taken out, it falls
  into a left and a right side (a 1 leaning on its neighbour, which no top-to-bottom path parts).

Where the cuts are unsure, each reading is offered to the model: a piece alone, neighbours
merged (up to MAX_SPAN pieces), a wide piece whole and cut, a drawing no wider than LONE_WIDTH
whole. Every candidate goes through the MNIST recipe on its own (`ink.rasterise` of its strokes
with the drawing's pen; `to_mnist` of its ink), so a lone 1 keeps its shape; a pen drawing's are
drawn only when read. recognizer/reading.py reads them and chooses among them. Specks (a dot, a
slip of the pen) and marks (a comma, an apostrophe, a minus sign) may be left out.

`from_ink` / `from_image` per drawing. `box_input` turns a box of a stored drawing into the
model's input, for retraining on numbers.
"""

from __future__ import annotations

import functools
import itertools
import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image

from recognizer import masks, touching
from recognizer.ink import Ink, rasterise, refuse_blank, refuse_tap
from recognizer.preprocessing import (
    EXTENT_SHARE,
    MIN_CONTRAST,
    MIN_EXTENT_SHARE,
    SIZE,
    BlankDrawing,
    canvas_side,
    ink_map,
    to_mnist,
)

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in the drawing's pixels

# Strokes (or components) overlapping this share of the narrower one's width are one digit ...
OVERLAP = 0.35
# ... unless together they would be wider than this many line heights (two digits touching), or
# both are at least TALL line heights high (a 1 drawn into the next digit): then the model decides.
WIDEST = 1.3
TALL = 0.75
# Strokes overlapping this share of the narrower one's width lie within one digit, however tall both are.
WITHIN = 0.8
# A piece wider than this many line heights may hold two digits: it is offered cut too. Components
# of an image are cut from narrower: digits that overlap are one component there, not two strokes.
SPLIT_WIDTH = 1.1
IMAGE_SPLIT_WIDTH = 0.8
# A component of an image this many line heights wide may hold two digits that touch (a 1 leaning on
# its neighbour is narrower than one digit): it is cut where they meet, if a cut there parts it
# into two sides (recognizer/touching.py), and only wider than IMAGE_SPLIT_WIDTH along a seam.
TOUCH_WIDTH = 0.6
# A 1 written against its neighbour's side is one component with it, no wider than one digit, and
# the neighbour reads whole with the 1 taken in ("41" as a 4). A piece wider than PEEL_WIDTH line
# heights is offered with a 1 parted off either side too: along a seam within BAR_WIDTH of that side
# (and PEEL_MARGIN pens in from it) through at most PEEL_CROSSED pens of ink, where what it parts off
# is a 1's bar: at least BAR_TALL line heights high, no wider than BAR_WIDTH, and straight (in
# STRAIGHT_ROWS of its rows, ink whose middle lies within STRAIGHT pens of one line); and what is left
# is a digit, touching.TALL high and REST_WIDTH wide. An 8's or a 0's side is lower, or bowed.
PEEL_WIDTH = 0.35
BAR_WIDTH = 0.3
REST_WIDTH = 0.2
PEEL_MARGIN = 0.6
PEEL_CROSSED = 2.5
BAR_TALL = 0.85
STRAIGHT = 0.75
STRAIGHT_ROWS = 0.85
# So is a piece holding one stroke wider than this many line heights.
LONG_STROKE = 1.0
# ... unless that stroke is flat: no more than this many line heights from top to bottom. Such a bar
# (a 5's, a 7's drawn long) may make a digit this many line heights wide, when grouping and merging.
BAR = 0.3
WIDEST_BAR = 1.7
# The cut falls where the ink is thinnest, but not nearer a piece's side than this many line heights.
CUT_MARGIN = 0.15
# Neighbours this close (line heights between their ink; negative: overlapping) may be one digit ...
NEAR = 0.25
# ... if together they are at most this wide (line heights), and at most MAX_SPAN pieces.
MERGE_WIDTH = 1.3
MAX_SPAN = 3
# The whole drawing is offered as one digit too where it is at most this many line heights wide.
LONE_WIDTH = 2.0
# A piece whose longer side is under this share of the line is a speck: left out, or part of a neighbour.
SPECK = 0.3
# A mark that sits where no digit does may be left out too, though it is still read alone: a comma or
# an apostrophe (a tick: no wider than TICK_WIDTH and no higher than TICK_HEIGHT line heights,
# wholly below LOW or above HIGH of its neighbours' height), a minus sign (a dash: no higher than
# BAR, at least twice as wide as high, at most DASH_WIDTH wide, its middle below HIGH_BAR of the
# neighbours' height, DASH_GAP line heights clear of any other piece). Read as digits they cost
# more than reading.SKIP_COST, where they made "2,5" read "215". The first stroke of an open 4 lies high
# too, but is wider; a 5's bar lies flat, but high, and a 1's foot touches its digit.
TICK_WIDTH, TICK_HEIGHT = 0.35, 0.7
LOW, HIGH = 0.6, 0.5
DASH_WIDTH = 1.0
HIGH_BAR = 0.3
DASH_GAP = 0.05
# The longest number a drawing holds (the stored number's length), and the most pieces (strokes or
# components, and the parts cuts make) a drawing may have: three per digit. A drawing made of more
# is refused before it costs the worker: a few hundred bars in a 1 KB PNG took 74 s to group.
MAX_DIGITS = 32
MAX_PIECES = 3 * MAX_DIGITS
# The columns of `Segmentation.shape`: what a candidate's shape says (recognizer/reading.py weighs them).
SHAPE_COLUMNS = 10
# The image path finds components on the ink shrunk to about this many pixels of line height.
IMAGE_LINE = 80
# Points along strokes every this share of the line, for the projection of a piece's ink ...
RESAMPLE = 1 / 40
# ... but no more than about this many points, or bins across the piece: a frame made to be slow (a
# pen zigzagging thousands of times across a wide canvas) would otherwise take gigabytes.
MAX_RESAMPLED = 20_000


class TooLong(ValueError):
    """A drawing of more pieces than a number of MAX_DIGITS digits is drawn with."""

    def __init__(self) -> None:
        super().__init__(f"too many separate marks for a number of up to {MAX_DIGITS} digits")


@dataclass(frozen=True, eq=False)
class Candidate:
    """One reading of pieces [first, end) as one digit: where it lies, and how to draw the model's input."""

    first: int
    end: int
    box: Box
    draw: Callable[[], np.ndarray] = field(repr=False)  # its 28x28 float32 input; BlankDrawing, rarely
    joins: int = 0  # pieces of other groups merged in: 0 for a piece, a part or the whole of a cut group
    cuts: int = 0  # its sides that a cut made (0-2): a part of a group cut where the ink was thinnest
    gap: float = 0.0  # blank space between the pieces merged in, in line heights
    crossed: int = 0  # strokes beyond one that the cuts which made its sides went through (pen strokes only)

    @functools.cached_property
    def image(self) -> np.ndarray:
        """The model's input, drawn when first asked for: many of a number's candidates never are (`to_read`)."""
        return self.draw()


@dataclass(frozen=True, eq=False)
class Segmentation:
    """What a drawing offers the model: candidates over its pieces, in order of position."""

    candidates: tuple[Candidate, ...]
    pieces: int
    specks: frozenset[int]  # pieces that may be left out
    line: float  # the line's height, in the candidates' pixels
    painted: bool = False  # from an image's ink, not pen strokes: its candidates are weighed by reading.IMAGE_WEIGHTS

    @property
    def images(self) -> np.ndarray:
        if not self.candidates:
            return np.zeros((0, SIZE, SIZE), np.float32)
        return np.stack([c.image for c in self.candidates])

    @functools.cached_property
    def shape(self) -> np.ndarray:
        """What each candidate's shape says: the columns of `reading.features` after the model's."""
        if not self.candidates:
            return np.zeros((0, SHAPE_COLUMNS))
        boxes = np.array([c.box for c in self.candidates])
        height = (boxes[:, 3] - boxes[:, 1]) / self.line
        width = (boxes[:, 2] - boxes[:, 0]) / self.line
        pieces = np.array(
            [(c.joins, c.gap, c.cuts, c.crossed, c.first == 0 and c.end == self.pieces) for c in self.candidates],
            np.float64,
        )
        return np.column_stack([height, width, (height - 1) ** 2, (width - 0.6) ** 2, pieces, np.ones(len(pieces))])

    @functools.cached_property
    def ending(self) -> dict[int, list[int]]:
        """The candidates' indices by the boundary between pieces where they end: what each step of a
        path left to right may take (`_forward`, `_share`); read two to four times a drawing."""
        return _indices_by(candidate.end for candidate in self.candidates)

    @functools.cached_property
    def starting(self) -> dict[int, list[int]]:
        """The same by the boundary where they start, for paths right to left (`_backward`)."""
        return _indices_by(candidate.first for candidate in self.candidates)


def _indices_by(keys: Iterable[int]) -> dict[int, list[int]]:
    """The indices of `keys`, grouped by key."""
    grouped: dict[int, list[int]] = {}
    for index, key in enumerate(keys):
        grouped.setdefault(key, []).append(index)
    return grouped


@dataclass(frozen=True, eq=False)
class _Piece:
    """Ink that belongs to one digit at most: stroke fragments, or a mask over the image's ink."""

    box: np.ndarray  # x0, y0, x1, y1, ink (pen) included
    strokes: tuple[np.ndarray, ...] = ()
    mask: np.ndarray | None = None
    # Strokes beyond one that the cut which made its left or right side went through: a pen that
    # ran on into the next digit is crossed once; a cut through a digit's loop, twice.
    crossed_left: int = 0
    crossed_right: int = 0

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])


# --- the API -----------------------------------------------------------------------------------------


def from_ink(drawing: Ink) -> Segmentation:
    """The candidates of a pen drawing; BlankDrawing as for one digit (no ink, or only a speck)."""
    if not drawing.points:
        raise BlankDrawing("the canvas is blank")
    radius = drawing.pen / 2
    pieces = [_stroke_piece((stroke,), radius) for stroke in drawing.strokes]
    boxes = np.stack([p.box for p in pieces])
    span = boxes[:, 2:].max(axis=0) - boxes[:, :2].min(axis=0) - drawing.pen  # the boxes hold the pen's ink
    refuse_tap(float(span[0]), float(span[1]), drawing.pen)
    _refuse_speck(boxes, canvas_side(drawing.width, drawing.height))

    def join(members: list[_Piece]) -> _Piece:
        return _stroke_piece(_fragments(members), radius)

    line = _line(_grouped(pieces, math.inf, join))
    groups = _grouped(pieces, line, join)

    def wide(piece: _Piece) -> bool:
        # A stroke that long is rarely one digit's: the pen ran on into the next (a 1 and a 0 joined
        # are together no wider than a 0 and a 4 are, but no digit is one stroke that wide).
        if piece.width > SPLIT_WIDTH * line:
            return True
        # max - min, the float32 difference np.ptp takes, without its overhead per stroke. A flat
        # stroke is a bar (a 5's, a 7's drawn long), not a pen that ran on through two digits.
        longest = max(
            (float(stroke[:, 0].max() - stroke[:, 0].min()) for stroke in piece.strokes if _tall(stroke, line)),
            default=0.0,
        )
        return longest + drawing.pen > LONG_STROKE * line

    pieces, wholes = _cut_wide(groups, wide, lambda piece: _cut_strokes(piece, line, radius))

    def image(members: list[_Piece]) -> np.ndarray:
        # The candidate's own canvas is its box: the blank check for a speck is this module's (SPECK).
        return rasterise(Ink(_fragments(members), 1, 1, drawing.pen))

    def blank(box: Box) -> bool:
        # What `image` would find blank, told from the box (the pen's ink included) without drawing.
        try:
            refuse_blank(box[2] - box[0] - drawing.pen, box[3] - box[1] - drawing.pen, drawing.pen, 1)
        except BlankDrawing:
            return True
        return False

    return _segmentation(pieces, wholes, line, image, blank)


def from_image(data: bytes) -> Segmentation:
    """The candidates of an image file (PNG, JPEG, WebP); BlankDrawing as for one digit."""
    strength, size = ink_map(data)
    return from_strength(strength, size[0] / strength.shape[1])


def from_strength(strength: np.ndarray, scale: float = 1.0) -> Segmentation:
    """The candidates of an ink map (preprocessing.ink), whose pixels are `scale` drawing pixels each."""
    peak = float(strength.max()) if strength.size else 0.0
    if peak < MIN_CONTRAST:
        raise BlankDrawing("the canvas is blank")
    level = EXTENT_SHARE * peak
    boxes = masks.box_of(strength >= level)
    _refuse_speck(boxes[None], canvas_side(*strength.shape))
    # Components are found on the ink shrunk to about IMAGE_LINE pixels high: a few hundred runs.
    factor = max(1, int((boxes[3] - boxes[1]) // IMAGE_LINE))
    small = np.asarray(Image.fromarray(strength).reduce(factor) if factor > 1 else strength, np.float32)
    binary = small >= level / factor
    pieces = [_Piece(masks.box_of(mask), mask=mask) for mask in _components(binary, MAX_PIECES)]
    if not pieces:  # specks apart, which shrinking averaged away
        raise BlankDrawing("the canvas holds only a speck")

    def join(members: list[_Piece]) -> _Piece:
        return _mask_piece(np.logical_or.reduce([m.mask for m in members]))

    @functools.cache
    def holes() -> np.ndarray:  # found once, at the first cut: a mesh of a few KB has thousands
        return masks.holes(binary)

    line = _line(_grouped(pieces, math.inf, join))

    @functools.cache
    def junctions() -> touching.Junctions:  # found once, at the first cut
        return touching.junctions(binary, line)

    def cut(piece: _Piece) -> Sequence[_Piece] | None:
        parted = piece.width > TOUCH_WIDTH * line and apart(piece)
        return parted or _peel(piece, line, junctions().pen)

    def apart(piece: _Piece) -> Sequence[_Piece] | None:
        # Where two digits touch at one point; a wide piece else along a seam, unless the seam
        # leaves a part too low for a digit and two junctions' ink taken out parts it (a 1 touching
        # its neighbour at top and bottom). Digits whose loops overlap have more junctions than
        # two, and a seam that leaves both parts tall goes round them: it is kept.
        touch = _touching(piece, junctions())
        parts = _cut_at_touch(piece, touch, line, together=1)
        if parts or piece.width <= IMAGE_SPLIT_WIDTH * line:
            return parts
        seam = _cut_mask(piece, small, holes(), line)
        tall = seam is not None and min(part.height for part in seam) >= touching.TALL * line
        if touch is None or (tall and touch.junctions > 2):
            return seam
        return _cut_at_touch(piece, touch, line, together=2) or seam

    groups = _grouped(pieces, line, join)
    pieces, wholes = _cut_wide(groups, lambda piece: piece.width > PEEL_WIDTH * line and not _flat(piece, line), cut)

    def image(members: list[_Piece]) -> np.ndarray:
        # A piece's box is its mask's: the members' masks are only read inside their boxes' union.
        x0, y0, x1, y1 = (int(v) for v in _union(members))
        mask = np.logical_or.reduce([m.mask[y0:y1, x0:x1] for m in members])
        return to_mnist(np.where(mask, small[y0:y1, x0:x1], 0), thin=True)

    return _scaled(_segmentation(pieces, wholes, line, image, painted=True), factor * scale)


def box_input(drawing: Ink | bytes, box: Sequence[float]) -> np.ndarray:
    """The model's 28x28 input for the ink inside `box` (x0, y0, x1, y1, the drawing's pixels) of a stored
    drawing (its Ink, or its image file): a corrected digit of a number as a training example.

    Strokes: the runs of points inside the box, through `ink.rasterise` with the drawing's pen; an
    image: its ink cropped to the box, through `to_mnist`. BlankDrawing when the box holds no ink.
    """
    x0, y0, x1, y1 = box
    if isinstance(drawing, Ink):
        low, high = np.array([x0, y0], np.float32), np.array([x1, y1], np.float32)
        fragments = tuple(run for stroke in drawing.strokes for run in _runs_inside(stroke, low, high))
        if not fragments:
            raise BlankDrawing("the box holds no ink")
        return rasterise(Ink(fragments, 1, 1, drawing.pen))
    strength, size = ink_map(drawing)
    scale = strength.shape[1] / size[0]
    left, top = max(int(x0 * scale), 0), max(int(y0 * scale), 0)
    return to_mnist(strength[top : math.ceil(y1 * scale), left : math.ceil(x1 * scale)], thin=True)


def _runs_inside(stroke: np.ndarray, low: np.ndarray, high: np.ndarray) -> list[np.ndarray]:
    """The runs of a stroke's points that lie between `low` and `high` (x, y)."""
    inside = ((stroke >= low) & (stroke <= high)).all(axis=1)
    cuts = np.flatnonzero(np.diff(inside)) + 1
    return [run for run, kept in zip(np.split(stroke, cuts), np.split(inside, cuts), strict=True) if kept[0]]


# --- pieces ------------------------------------------------------------------------------------------


def _stroke_piece(strokes: tuple[np.ndarray, ...], radius: float) -> _Piece:
    points = strokes[0] if len(strokes) == 1 else np.concatenate(strokes)
    low, high = points.min(axis=0) - radius, points.max(axis=0) + radius
    return _Piece(np.concatenate([low, high]).astype(np.float64), strokes=strokes)


def _mask_piece(mask: np.ndarray) -> _Piece:
    return _Piece(masks.box_of(mask), mask=mask)


def _fragments(members: Sequence[_Piece]) -> tuple[np.ndarray, ...]:
    return tuple(s for m in members for s in m.strokes)


def _tall(stroke: np.ndarray, line: float) -> bool:
    """Whether a stroke's points span more than BAR line heights from top to bottom."""
    return float(stroke[:, 1].max() - stroke[:, 1].min()) > BAR * line


def _union(members: Sequence[_Piece]) -> Box:
    """The box round these pieces' boxes (plain floats: a few of them, numpy's overhead would dominate)."""
    x0, y0, x1, y1 = zip(*(m.box.tolist() for m in members), strict=True)
    return min(x0), min(y0), max(x1), max(y1)


def _refuse_speck(boxes: np.ndarray, canvas: float) -> None:
    """BlankDrawing where all the ink is a speck of the canvas: the digit path's rule, for the whole drawing."""
    extent = np.concatenate([boxes[:, :2].min(axis=0), boxes[:, 2:].max(axis=0)])
    if max(extent[2] - extent[0], extent[3] - extent[1]) < MIN_EXTENT_SHARE * canvas:
        raise BlankDrawing("the canvas holds only a speck")


def _line(pieces: Sequence[_Piece]) -> float:
    """The line's height: the median height of the pieces at least half as high as the highest.

    Measured on the pieces grouped by overlap alone (`_grouped` with no line): the two loops of an 8
    or the halves of a 0, each half as high as the digit, are one piece there.
    """
    heights = [p.height for p in pieces]
    half = max(heights) / 2
    # statistics.median: a handful of floats, the same median as numpy's in a fraction of its time.
    return float(statistics.median(h for h in heights if h >= half))


def _grouped(pieces: list[_Piece], line: float, join: Callable[[list[_Piece]], _Piece]) -> list[_Piece]:
    """Pieces overlapping most of the narrower one's width merged (unless that makes them too wide, or
    both are tall: `_belong_together`), by the middle of their x extent. With an infinite line, by
    overlap alone."""
    ordered = sorted(pieces, key=lambda p: p.box[0])
    groups = [[p] for p in ordered]
    # Each group's extent (x0, y0, x1, y1) as plain floats, kept up to date as groups merge: every
    # pass compares every pair again, and numpy scalars cost more than the comparisons.
    extents = [p.box.tolist() for p in ordered]
    merged = True
    while merged:  # a merge widens a group, which may then overlap another
        merged = False
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                if _belong_together(extents[i], extents[j], line):
                    groups[i] += groups.pop(j)
                    a, b = extents[i], extents.pop(j)
                    extents[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
                    merged = True
                    break
            if merged:
                break
    return sorted((join(g) if len(g) > 1 else g[0] for g in groups), key=lambda p: p.box[0] + p.box[2])


def _belong_together(a: list[float], b: list[float], line: float) -> bool:
    """Whether two groups of these extents (x0, y0, x1, y1) are one digit."""
    overlap = min(a[2], b[2]) - max(a[0], b[0])
    narrower = min(a[2] - a[0], b[2] - b[0])
    lower = min(a[3] - a[1], b[3] - b[1])
    # Both tall: two digits that touch, unless one lies nearly within the other (a 0 drawn twice round).
    apart = lower >= TALL * line and overlap < WITHIN * narrower
    widest = WIDEST_BAR if lower <= BAR * line else WIDEST
    return overlap >= OVERLAP * narrower and max(a[2], b[2]) - min(a[0], b[0]) <= widest * line and not apart


def _cut_wide(
    groups: list[_Piece], wide: Callable[[_Piece], bool], cut: Callable[[_Piece], tuple[_Piece, _Piece] | None]
) -> tuple[list[_Piece], list[tuple[int, int]]]:
    """Groups that are `wide` cut at their thinnest (again while a part is wide): the pieces,
    and the spans of pieces that were one group, offered whole too."""
    pieces: list[_Piece] = []
    wholes = []
    for group in groups:
        parts = _cut_until_narrow(group, wide, cut, MAX_PIECES - len(pieces))
        if len(parts) > 1:
            wholes.append((len(pieces), len(pieces) + len(parts)))
        pieces += parts
    return pieces, wholes


def _cut_until_narrow(piece: _Piece, wide: Callable[[_Piece], bool], cut: Callable, most: int) -> list[_Piece]:
    """The piece's parts, left to right, cut while wide; TooLong past `most` parts."""
    parts: list[_Piece] = []
    left = [piece]  # still to look at, the leftmost last
    while left:
        part = left.pop()
        halves = cut(part) if wide(part) else None
        if halves is None:
            parts.append(part)
        else:
            left += reversed(halves)
        if len(parts) + len(left) > most:
            raise TooLong
    return parts


def _thinnest(profile: np.ndarray, crossings: np.ndarray, margin: int) -> int | None:
    """The index with the fewest crossings at least `margin` from the ends, and of those the one where
    the profile, smoothed, is least; None if too short."""
    low, high = max(margin, 1), len(profile) - max(margin, 1)
    if high - low < 1:
        return None
    smooth = np.convolve(profile, [1, 2, 1], "same").astype(np.float64)
    ranked = crossings * (smooth.max() + 1) + smooth  # a crossing more outweighs any profile
    return low + int(np.argmin(ranked[low:high]))


def _cut_strokes(piece: _Piece, line: float, radius: float) -> tuple[_Piece, _Piece] | None:
    """A piece's strokes cut at the x that crosses the fewest of them, and of those where the fewest
    of their points lie (resampled along the path): a pen running on into the next digit is crossed
    once, a digit's loop twice however thin its middle."""
    paths = [_along(stroke) for stroke in piece.strokes]
    # Bounded both in points and in bins: a cut may leave strokes of single points across a wide piece.
    step = max(line * RESAMPLE, (sum(float(path[-1]) for path in paths) + piece.width) / MAX_RESAMPLED)
    along = np.concatenate([_resampled_x(s, path, step) for s, path in zip(piece.strokes, paths, strict=True)])
    edges = np.arange(piece.box[0], piece.box[2] + step, step)
    # Counted by bin index, as np.histogram does for even bins but without its sort (a scribble's
    # hundred cuts of 20,000 points each were half a second of the worker's).
    bins = np.clip(((along - edges[0]) / step).astype(np.intp), 0, len(edges) - 2)
    profile = np.bincount(bins, minlength=len(edges) - 1)
    at = _thinnest(profile, _crossings(piece.strokes, edges), round(CUT_MARGIN * line / step))
    if at is None:
        return None
    x = edges[at] + step / 2
    left, right = [], []
    for stroke in piece.strokes:
        side = stroke[:, 0] >= x
        for part in np.split(stroke, np.flatnonzero(np.diff(side)) + 1):
            (right if part[0, 0] >= x else left).append(part)
    if not left or not right:
        return None
    if len(left) + len(right) > MAX_PIECES:  # a scribble crossing the cut back and forth: no number
        raise TooLong
    crossed = max(len(left) + len(right) - len(piece.strokes) - 1, 0)  # each crossing makes one more fragment
    return (
        replace(_stroke_piece(tuple(left), radius), crossed_left=piece.crossed_left, crossed_right=crossed),
        replace(_stroke_piece(tuple(right), radius), crossed_left=crossed, crossed_right=piece.crossed_right),
    )


def _crossings(strokes: Sequence[np.ndarray], edges: np.ndarray) -> np.ndarray:
    """How many of the strokes' segments a vertical line through each bin's middle crosses."""
    xs = [stroke[:, 0] for stroke in strokes if len(stroke) > 1]
    if not xs:
        return np.zeros(len(edges) - 1)
    starts = np.concatenate([np.minimum(x[:-1], x[1:]) for x in xs])
    ends = np.concatenate([np.maximum(x[:-1], x[1:]) for x in xs])
    middles = edges[:-1] + (edges[1] - edges[0]) / 2
    first, last = np.searchsorted(middles, starts), np.searchsorted(middles, ends)
    change = np.bincount(first, minlength=len(middles) + 1) - np.bincount(last, minlength=len(middles) + 1)
    return np.cumsum(change)[:-1]


def _along(stroke: np.ndarray) -> np.ndarray:
    """The distance along a stroke to each of its points."""
    return np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(stroke, axis=0).T))])


def _resampled_x(stroke: np.ndarray, along: np.ndarray, step: float) -> np.ndarray:
    """The x of points every `step` along a stroke (`along`: its `_along`)."""
    return np.interp(np.arange(0, along[-1] + step, step), along, stroke[:, 0])


def _cut_mask(piece: _Piece, strength: np.ndarray, holes: np.ndarray, line: float) -> tuple[_Piece, _Piece] | None:
    """A piece's pixels cut along the path from top to bottom that crosses the least of its ink.

    Digits that overlap a little are one component, and no straight cut parts them: the path bends
    round each digit's ink (a seam, moving at most a pixel sideways per row), and crosses ink only
    where the two touch. The blank that a loop encloses costs as much as ink: through a 0's hole
    the path crossed its ink only twice, cheaper than where the digits overlap, and cut the 0 in two.
    """
    x0, y0, x1, y1 = piece.box.astype(int)
    inside = piece.mask[y0:y1, x0:x1]  # all of the piece's pixels: its box is its mask's
    cost = np.where(inside, strength[y0:y1, x0:x1], 0)
    cost[holes[y0:y1, x0:x1]] = cost.max()
    seam = masks.seam(cost, round(CUT_MARGIN * line))
    if seam is None:
        return None
    on_left = np.arange(x1 - x0)[None, :] < seam[:, None]
    parts = inside & on_left, inside & ~on_left
    if not parts[0].any() or not parts[1].any():
        return None
    return _placed(parts[0], piece.mask, x0, y0), _placed(parts[1], piece.mask, x0, y0)


def _peel(piece: _Piece, line: float, pen: float) -> tuple[_Piece, _Piece] | None:
    """A piece's pixels with a 1 parted off its right side, or else its left (see PEEL_WIDTH); None
    where neither side holds one."""
    x0, y0, x1, y1 = piece.box.astype(int)
    inside = piece.mask[y0:y1, x0:x1]
    width = x1 - x0
    window = min(round(BAR_WIDTH * line), width - round(REST_WIDTH * line))
    margin = max(1, round(PEEL_MARGIN * pen))
    if window < 2 * margin + 1:
        return None
    # Of seams through as little ink, the one nearest the side: a 1's bar alone, not a neighbour's end too.
    nearer = np.linspace(0, 0.01, window)
    for right in (True, False):
        if not _edge_straight(inside[:, ::-1] if right else inside, line, pen):
            continue
        first = width - window if right else 0
        ink = inside[:, first : first + window].astype(np.float64)
        seam = masks.seam(ink + (nearer[::-1] if right else nearer), margin)
        if seam is None or ink[np.arange(len(seam)), seam].sum() > PEEL_CROSSED * pen:
            continue
        on_left = np.arange(width)[None, :] < (seam + first)[:, None]
        bar, rest = (inside & ~on_left, inside & on_left) if right else (inside & on_left, inside & ~on_left)
        rows = np.flatnonzero(rest.any(axis=1))
        if len(rows) and rows[-1] + 1 - rows[0] >= touching.TALL * line and _is_bar(bar, line, pen):
            parts = (rest, bar) if right else (bar, rest)
            return _placed(parts[0], piece.mask, x0, y0), _placed(parts[1], piece.mask, x0, y0)
    return None


def _edge_straight(inside: np.ndarray, line: float, pen: float) -> bool:
    """Whether the ink's left edge runs straight as a 1's bar would (before a seam is sought for it)."""
    rows = np.flatnonzero(inside.any(axis=1))
    return np.count_nonzero(_off_line(rows, inside.argmax(axis=1)[rows]) <= STRAIGHT * pen) >= (
        STRAIGHT_ROWS * BAR_TALL * line
    )


def _is_bar(ink: np.ndarray, line: float, pen: float) -> bool:
    """Whether a mask's ink is a 1's bar: tall, narrow and straight (see PEEL_WIDTH)."""
    rows = np.flatnonzero(ink.any(axis=1))
    if len(rows) == 0:  # box_of has no box for no ink
        return False
    x0, y0, x1, y1 = masks.box_of(ink)
    if y1 - y0 < BAR_TALL * line or x1 - x0 > BAR_WIDTH * line:
        return False
    weights = ink[rows].astype(np.float64)
    middles = weights @ np.arange(ink.shape[1]) / weights.sum(axis=1)
    return np.count_nonzero(_off_line(rows, middles) <= STRAIGHT * pen) >= STRAIGHT_ROWS * (y1 - y0)


def _off_line(ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """How far each point's x lies from the least-squares line x = a y + b through them all."""
    ys, xs = ys - ys.mean(), xs - xs.mean()
    slope = float(ys @ xs) / max(float(ys @ ys), 1e-9)
    return np.abs(xs - slope * ys)


def _touching(piece: _Piece, junctions: touching.Junctions) -> touching.Touch | None:
    """The piece's ink ready to be cut where digits touch; None without a junction to cut at."""
    x0, y0, x1, y1 = piece.box.astype(int)
    return touching.touch(piece.mask[y0:y1, x0:x1], _junctions_in(piece, junctions), junctions.pen)


def _cut_at_touch(piece: _Piece, touch: touching.Touch | None, line: float, together: int) -> list[_Piece] | None:
    """A piece's pixels parted where two digits touch (`touching.parted`), as pieces left to right."""
    if touch is None or (sides := touching.parted(touch, line, together)) is None:
        return None
    x0, y0 = piece.box[:2].astype(int)
    return [_placed(mask, piece.mask, x0, y0) for mask in sides]


def _junctions_in(piece: _Piece, junctions: touching.Junctions) -> np.ndarray:
    """The junctions on the piece's ink (y, x), relative to its box."""
    x0, y0, x1, y1 = piece.box.astype(int)
    inside = piece.mask[y0:y1, x0:x1]
    at = junctions.points - (y0, x0)
    at = at[(at >= 0).all(axis=1) & (at < inside.shape).all(axis=1)]
    return at[inside[at[:, 0].astype(int), at[:, 1].astype(int)]]


def _placed(part: np.ndarray, like: np.ndarray, x0: int, y0: int) -> _Piece:
    """The piece of a part of a mask cropped at (x0, y0), its mask as big as `like`."""
    mask = np.zeros_like(like)
    mask[y0 : y0 + part.shape[0], x0 : x0 + part.shape[1]] = part
    return _Piece(masks.box_of(part) + np.array([x0, y0, x0, y0]), mask=mask)


def _components(binary: np.ndarray, most: int) -> list[np.ndarray]:
    """The 8-connected components of a binary image, each as a mask; TooLong past `most` of them
    (before their masks, each the image's size, are made)."""
    labelled = masks.labels(binary)
    found = np.unique(labelled[binary])
    if len(found) > most:
        raise TooLong
    return [labelled == label for label in found]


# --- candidates and the choice ----------------------------------------------------------------------------


def _segmentation(
    pieces: list[_Piece],
    wholes: list[tuple[int, int]],
    line: float,
    image: Callable[[list[_Piece]], np.ndarray],
    blank: Callable[[Box], bool] | None = None,
    painted: bool = False,
) -> Segmentation:
    """Candidates: each piece but specks alone, near neighbours merged, cut groups whole.

    With `blank`, which tells from a candidate's box whether `image` would find it blank, candidates
    are drawn only when the model is to read them (a 5-digit number's about 0.07 ms each); without
    it every one is drawn now. Either way a blank one is not offered.
    """
    specks = {i for i, p in enumerate(pieces) if max(p.width, p.height) < SPECK * line}
    marks = _marks(pieces, wholes, line) - specks
    spans = {(i, i + 1) for i in range(len(pieces)) if i not in specks} | set(wholes)
    group = list(range(len(pieces)))  # the parts of a cut group are one group
    for first, end in wholes:
        group[first:end] = [first] * (end - first)
    # Where a cut made a side: the boundary between piece i - 1 and piece i, within a cut group.
    cut_at = {i for first, end in wholes for i in range(first + 1, end)}
    for first in range(len(pieces)):
        for end in range(first + 2, min(first + MAX_SPAN, len(pieces)) + 1):
            if _mergeable(pieces[first:end], line):
                spans.add((first, end))
    # A drawing as narrow as a digit may be one, however many strokes it took (a 5 in four).
    if pieces and (extent := _union(pieces))[2] - extent[0] <= LONE_WIDTH * line:
        spans.add((0, len(pieces)))
    candidates = []
    for first, end in sorted(spans):
        members = pieces[first:end]
        box = _union(members)
        if blank is None:
            try:
                draw = functools.partial(_same, image(members))
            except BlankDrawing:  # ink too faint to survive the fitting: no digit there
                continue
        elif blank(box):
            continue
        else:
            draw = functools.partial(image, members)
        joins = len(set(group[first:end])) - 1
        cuts = (first in cut_at) + (end in cut_at)
        crossed = members[0].crossed_left + members[-1].crossed_right
        candidates.append(Candidate(first, end, box, draw, joins, cuts, _gap(members) / line, crossed))
    # A piece that no candidate reads alone may be left out too, so that a path always exists ...
    alone = {c.first for c in candidates if c.end == c.first + 1}
    specks |= marks | {i for i in range(len(pieces)) if i not in alone}
    if painted:
        # ... but an image's cut group's end parts are some digit's ink, never left out while the group
        # is offered whole: a 7, wide enough to be cut, lost its bar's left end from its box (and the
        # model saw less of it). Pen strokes are cut only wider, where such an end is a lead-in as often.
        offered = {(c.first, c.end) for c in candidates}
        specks -= {i for first, end in wholes if (first, end) in offered for i in (first, end - 1)}
    return Segmentation(tuple(candidates), len(pieces), frozenset(specks), line, painted)


def _marks(pieces: Sequence[_Piece], wholes: Sequence[tuple[int, int]], line: float) -> set[int]:
    """The pieces that sit where no digit does (a comma, an apostrophe, a minus sign). The parts of a
    cut group are one digit's ink, or two digits': never marks, and placed as the whole group."""
    cut = {i for first, end in wholes for i in range(first, end)}
    shaped = [i for i, p in enumerate(pieces) if i not in cut and (_tick(p, line) or _flat(p, line))]
    if not shaped:  # most numbers: nothing more to measure
        return set()
    boxes = [p.box.tolist() for p in pieces]
    for first, end in wholes:
        boxes[first:end] = [list(_union(pieces[first:end]))] * (end - first)
    high = [i for i, box in enumerate(boxes) if box[3] - box[1] >= line / 2]
    return {i for i in shaped if _sits_as_mark(i, pieces, _band(boxes, high, i), line)}


def _band(boxes: Sequence[list[float]], high: Sequence[int], i: int) -> tuple[float, float] | None:
    """The line's top and bottom about piece i: its nearest neighbours' of those `high` (at least half
    the line high), one on either side, as the baseline wanders. None without any."""
    left = max((j for j in high if j < i), default=None)
    right = min((j for j in high if j > i), default=None)
    near = [boxes[j] for j in (left, right) if j is not None]
    if not near:
        return None
    return sum(b[1] for b in near) / len(near), sum(b[3] for b in near) / len(near)


def _sits_as_mark(i: int, pieces: Sequence[_Piece], band: tuple[float, float] | None, line: float) -> bool:
    """Whether piece i is a tick below or above the band (a comma, an apostrophe), or a dash across it
    that stands apart (a minus sign)."""
    if band is None:
        return False
    piece, (top, bottom) = pieces[i], band
    y0, y1 = ((float(v) - top) / (bottom - top) for v in piece.box[1::2])  # in the band's heights
    if _tick(piece, line) and (y0 >= LOW or y1 <= HIGH):
        return True
    return _flat(piece, line) and (y0 + y1) / 2 >= HIGH_BAR and _apart(i, pieces, line)


def _tick(piece: _Piece, line: float) -> bool:
    """Whether a piece is narrow and short enough to be a comma or an apostrophe."""
    return piece.width <= TICK_WIDTH * line and piece.height <= TICK_HEIGHT * line


def _apart(i: int, pieces: Sequence[_Piece], line: float) -> bool:
    """Whether a blank of DASH_GAP line heights parts piece i from every other: a minus sign stands
    alone, where a 5's bar or a 1's foot touches its digit."""
    x0, x1 = pieces[i].box[0] - DASH_GAP * line, pieces[i].box[2] + DASH_GAP * line
    return all(p.box[2] <= x0 or p.box[0] >= x1 for j, p in enumerate(pieces) if j != i)


def _flat(piece: _Piece, line: float) -> bool:
    """Whether a piece is flat and short: a minus sign or a bar, which holds no digit, let alone two."""
    return piece.height <= min(BAR * line, piece.width / 2) and piece.width <= DASH_WIDTH * line


def _gap(members: Sequence[_Piece]) -> float:
    """The blank width between these pieces, left to right: what a digit written in one go rarely holds."""
    blank, right = 0.0, float(members[0].box[2])
    for member in members[1:]:
        blank += max(0.0, float(member.box[0]) - right)
        right = max(right, float(member.box[2]))
    return blank


def _mergeable(members: Sequence[_Piece], line: float) -> bool:
    gaps_near = all(b.box[0] - a.box[2] <= NEAR * line for a, b in itertools.pairwise(members))
    width = max(m.box[2] for m in members) - min(m.box[0] for m in members)
    widest = WIDEST_BAR if any(m.height <= BAR * line for m in members) else MERGE_WIDTH
    return gaps_near and width <= widest * line


def _same(image: np.ndarray) -> np.ndarray:
    return image


def _scaled(segmentation: Segmentation, scale: float) -> Segmentation:
    """The segmentation with its boxes in the drawing's pixels, from an ink map's."""
    if scale == 1:
        return segmentation
    candidates = tuple(replace(c, box=tuple(v * scale for v in c.box)) for c in segmentation.candidates)
    return replace(segmentation, candidates=candidates, line=segmentation.line * scale)
