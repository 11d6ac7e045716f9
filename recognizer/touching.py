"""Where an image's strokes meet: the junctions of its ink's skeleton, for cutting digits that touch.

Two digits written close are one component of ink, touching at a point or two (a 1 leaning on
the 2 beside it, an 8 whose loop grazes the next digit). A cut from top to bottom cannot part
digits that overlap in x; taking out the ink round the point where they meet does. Such points
are junctions of the ink's skeleton: where three or more of its branches meet.

The skeleton is thinned (Zhang and Suen, 1984) on the ink shrunk to about THIN_LINE pixels of line
height, where a pen is a few pixels wide and thinning takes a few passes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

# The skeleton is found on the ink shrunk to about this many pixels of line height.
THIN_LINE = 40
# Junctions in one cell this many shrunk pixels square are one (a crossing thins to a short bar).
SAME = 4

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
