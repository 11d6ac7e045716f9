"""Where an image's strokes meet: the junctions of its ink's skeleton, for cutting digits that touch.

Two digits written close are one component of ink, touching at a point or two (a 1 leaning on
the 2 beside it, an 8 whose loop grazes the next digit). A cut from top to bottom cannot part
digits that overlap in x; taking out the ink round the point where they meet does. Such points
are junctions of the ink's skeleton: where three or more of its branches meet.

The skeleton is thinned (Zhang and Suen, 1984) on the ink shrunk to about THIN_LINE pixels of line
height, where a pen is a few pixels wide and thinning takes a few passes. `touch` and `parted` then
cut a piece of ink (recognizer/segmentation.py's) there, on its mask.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from PIL import Image

from recognizer import masks

# The skeleton is found on the ink shrunk to about this many pixels of line height.
THIN_LINE = 40
# Junctions in one cell this many shrunk pixels square are one (a crossing thins to a short bar).
SAME = 4
# Where digits meet, the ink within RADIUS pen widths (and a pixel) of a junction of its skeleton is
# taken out, or of two junctions (`parted`); the cut is good if what is left falls into parts on two
# sides, each with a part at least TALL line heights high, overlapping at most OVERLAP of the
# narrower side's width. A digit's own junctions (a 4's crossing, the loop at a 2's foot, an 8's
# waist) leave one side low, or the sides one above the other. Of the good cuts, the one with the
# sides least overlapping. At most MOST junctions a piece.
RADIUS = 0.8
TALL = 0.6
OVERLAP = 0.5
MOST = 6

# A pixel's eight neighbours, clockwise from the one above (Zhang and Suen's P2 ... P9), as offsets.
_AROUND = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))


def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per neighbourhood code (bit k: neighbour k inked): removable in the first pass, in the second,
    and how many branches leave the pixel (blank-to-ink steps round it)."""
    codes = np.arange(256)
    bits = (codes[:, None] >> np.arange(8)) & 1
    p2, p4, p6, p8 = bits[:, 0], bits[:, 2], bits[:, 4], bits[:, 6]
    count = bits.sum(axis=1)
    steps = ((bits == 0) & (np.roll(bits, -1, axis=1) == 1)).sum(axis=1)
    thinnable = (count >= 2) & (count <= 6) & (steps == 1)
    first = thinnable & (p2 * p4 * p6 == 0) & (p4 * p6 * p8 == 0)
    second = thinnable & (p2 * p4 * p8 == 0) & (p2 * p6 * p8 == 0)
    return first, second, steps


_FIRST, _SECOND, _BRANCHES = _tables()


def _codes(image: np.ndarray) -> np.ndarray:
    """Each pixel's neighbourhood code (see _tables)."""
    padded = np.pad(image, 1).astype(np.uint8)
    height, width = image.shape
    code = np.zeros(image.shape, np.uint8)
    for bit, (dy, dx) in enumerate(_AROUND):
        code |= padded[1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width] << bit
    return code


def skeleton(binary: np.ndarray) -> np.ndarray:
    """The ink thinned to lines one pixel wide, keeping its branches and loops."""
    image = binary.copy()
    while True:
        thinned = False
        for removable in (_FIRST, _SECOND):
            gone = image & removable[_codes(image)]
            if gone.any():
                image &= ~gone
                thinned = True
        if not thinned:
            return image


@dataclass(frozen=True)
class Junctions:
    """Where an image's skeleton branches, and how wide its pen is (both in the image's pixels)."""

    points: np.ndarray  # (k, 2): y, x
    pen: float  # the ink's area over its skeleton's length


def junctions(binary: np.ndarray, line: float) -> Junctions:
    """The points where three or more branches of the ink's skeleton meet, and the pen's width."""
    if not binary.any():
        return Junctions(np.zeros((0, 2)), 0.0)
    step = max(1, round(line / THIN_LINE))
    rows, columns = np.flatnonzero(binary.any(axis=1)), np.flatnonzero(binary.any(axis=0))
    top, left = rows[0] // step * step, columns[0] // step * step  # the ink's box, on the shrunk grid
    inked = binary[top : rows[-1] + 1, left : columns[-1] + 1]
    if step > 1:  # a shrunk pixel is ink where most of its block is
        inked = np.asarray(Image.fromarray(inked.astype(np.uint8) * 255).reduce(step)) >= 128
    thin = skeleton(inked)
    # A crossing or a T thins to one to three such pixels: one junction per SAME-pixel cell (in
    # whole arrays: a grid's thousands of crossings are no costlier than its pixels).
    found = np.argwhere(thin & (_BRANCHES[_codes(thin)] >= 3))
    _, first = np.unique(found // SAME, axis=0, return_index=True)
    points = found[np.sort(first)]
    pen = float(binary.sum()) / max(int(thin.sum()) * step, 1)
    return Junctions((points + 0.5) * step + (top, left), pen)


@dataclass(frozen=True, eq=False)
class Touch:
    """A piece's ink with the disks round its junctions taken out, labelled once for every try of
    `parted`: its parts ("atoms") are joined through the disks a try keeps, which costs a few
    set unions, not a labelling per try."""

    inside: np.ndarray  # the piece's pixels within its box
    junctions: int  # how many lie on its ink (the first MOST have disks)
    atoms: np.ndarray  # each pixel's atom, -1 for none
    sizes: np.ndarray  # the atoms' pixels
    boxes: np.ndarray  # the atoms' boxes (x0, y0, x1, y1)
    touched: list[set[int]]  # per disk, the atoms a pixel from its ink
    neighbours: list[set[int]]  # per disk, the disks it overlaps or touches
    radius: float  # the disks'
    least: float  # a part smaller than this is a crumb the cut left: given back, not a side


def touch(inside: np.ndarray, found: np.ndarray, pen: float) -> Touch | None:
    """A piece's ink (`inside`: its pixels within its box) ready to be cut where digits touch, at the
    junctions `found` on it (y, x within the box); None without a junction to cut at."""
    at = found[:MOST]
    if not len(at):
        return None
    rows, columns = np.ogrid[: inside.shape[0], : inside.shape[1]]
    radius = RADIUS * pen + 1
    around = [(rows - y) ** 2 + (columns - x) ** 2 for y, x in at]
    atoms, sizes, boxes = _atoms(inside & ~np.logical_or.reduce([d <= radius**2 for d in around]))
    if len(sizes) < 2:
        return None
    # Within a disk 1.5 px wider lie the pixels next to a disk's ink.
    touched = [set(np.unique(atoms[d <= (radius + 1.5) ** 2]).tolist()) - {-1} for d in around]
    neighbours = [
        {j for j, q in enumerate(at) if j != i and np.hypot(*(p - q)) <= 2 * radius + 1.5} for i, p in enumerate(at)
    ]
    least = max(4.0, pen**2)  # a square of pen
    return Touch(inside, len(found), atoms, sizes, boxes, touched, neighbours, radius, least)


def parted(touch: Touch, line: float, together: int) -> list[np.ndarray] | None:
    """The ink parted where two digits touch: the ink round `together` of its junctions taken out,
    then given back to the part it joins. The sides' masks within the box, left to right, with what
    lies loose near the other side (the end of a stroke a cut crossed) a side between them: the model
    decides which digit it belongs to. None if no cut leaves two sides (see TALL)."""
    disks = range(len(touch.touched))
    cuts = []
    for removed in itertools.combinations(disks, together):
        kept = [i for i in disks if i not in removed]
        parts = _joined(len(touch.sizes), kept, touch.touched, touch.neighbours)
        cuts.append(_sides([p for p in parts if touch.sizes[p].sum() >= touch.least], touch.boxes, touch.radius, line))
    if not (found := [c for c in cuts if c is not None]):
        return None
    sides = [np.isin(touch.atoms, side) for side in min(found, key=lambda c: c[0])[1]]
    return _given_back(sides, touch.inside)


def _atoms(ink: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ink's components numbered 0 ... n - 1 (-1: no ink), their sizes and boxes (x0, y0, x1, y1)."""
    labelled = masks.labels(ink)
    ys, xs = np.nonzero(ink)
    found, numbered = np.unique(labelled[ys, xs], return_inverse=True)
    atoms = np.full(ink.shape, -1)
    atoms[ys, xs] = numbered
    order = np.argsort(numbered, kind="stable")  # each atom's pixels together, for one reduceat each
    starts = np.searchsorted(numbered[order], np.arange(len(found)))
    xs, ys = xs[order], ys[order]
    boxes = np.column_stack(
        [
            np.minimum.reduceat(xs, starts),
            np.minimum.reduceat(ys, starts),
            np.maximum.reduceat(xs, starts) + 1,
            np.maximum.reduceat(ys, starts) + 1,
        ]
    )
    return atoms, np.diff(np.append(starts, len(xs))), boxes


def _joined(count: int, kept: list[int], touched: list[set[int]], neighbours: list[set[int]]) -> list[np.ndarray]:
    """The atoms joined into parts through the disks kept: a disk joins every atom it touches, and
    disks that touch join each other's."""
    root = list(range(count))

    def find(i: int) -> int:
        while root[i] != i:
            root[i] = root[root[i]]
            i = root[i]
        return i

    for i in kept:
        joined = sorted(set(touched[i]).union(*(touched[j] for j in neighbours[i] if j in kept)))
        for other in joined[1:]:
            root[find(other)] = find(joined[0])
    parts: dict[int, list[int]] = {}
    for i in range(count):
        parts.setdefault(find(i), []).append(i)
    return [np.array(members) for members in parts.values()]


def _sides(
    parts: list[np.ndarray], boxes: np.ndarray, near: float, line: float
) -> tuple[float, list[np.ndarray]] | None:
    """The best parting of the parts (arrays of atoms) into a left and a right side (see TALL):
    how much the sides overlap, as a share of the narrower's width, and the atoms of the left side,
    the loose parts and the right side; None if none is good. A low part within `near` of the other
    side's tall parts is loose: it may be either's."""
    if len(parts) < 2:
        return None
    extents = np.array([[*boxes[p, :2].min(axis=0), *boxes[p, 2:].max(axis=0)] for p in parts])
    order = np.argsort(extents[:, 0] + extents[:, 2])
    extents = extents[order]
    tall = extents[:, 3] - extents[:, 1] >= TALL * line
    best = None
    for k in range(1, len(parts)):
        left, right = extents[:k], extents[k:]
        widths = (left[:, 2].max() - left[:, 0].min(), right[:, 2].max() - right[:, 0].min())
        overlap = max(0.0, left[:, 2].max() - right[:, 0].min()) / max(min(widths), 1.0)
        if tall[:k].any() and tall[k:].any() and overlap <= OVERLAP and (best is None or overlap < best[0]):
            best = (overlap, k)
    if best is None:
        return None
    overlap, k = best
    reach_left, reach_right = extents[k:][tall[k:], 0].min() - near, extents[:k][tall[:k], 2].max() + near
    side = np.array([0] * k + [2] * (len(parts) - k))
    side[:k][~tall[:k] & (extents[:k, 2] > reach_left)] = 1
    side[k:][~tall[k:] & (extents[k:, 0] < reach_right)] = 1
    ordered = [parts[i] for i in order]
    return overlap, [
        np.concatenate([p for p, at in zip(ordered, side, strict=True) if at == i] or [np.array([], int)])
        for i in range(3)
    ]


def _given_back(sides: list[np.ndarray], inside: np.ndarray) -> list[np.ndarray]:
    """The ink a cut took out (and its crumbs) given back to the side it joins, grown pixel by pixel
    from each at once; what joins none goes with the nearest in x. The sides that have ink."""
    sides = [side.copy() for side in sides if side.any()]
    rest = inside & ~np.logical_or.reduce(sides)
    while rest.any():
        taken, growth = np.zeros_like(rest), []
        for side in sides:
            growth.append(masks.grown(side) & rest & ~taken)
            taken |= growth[-1]
        if not taken.any():
            middles = [np.nonzero(side)[1].mean() for side in sides]
            rows, columns = np.nonzero(rest)
            nearest = np.abs(columns[:, None] - np.array(middles)[None]).argmin(axis=1)
            for i, side in enumerate(sides):
                side[rows[nearest == i], columns[nearest == i]] = True
            break
        for side, more in zip(sides, growth, strict=True):
            side |= more
        rest &= ~taken
    return sides
