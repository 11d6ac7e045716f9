"""Binary images as number mode cuts an image's ink (recognizer/segmentation.py, recognizer/touching.py):
boxes, connected components, the blank that ink encloses, a mask grown by a pixel, and the cheapest
seam from top to bottom. All in whole arrays: a drawing's masks are a few hundred pixels on a side,
and a Python loop over their pixels or runs would cost more than the rest of its reading.
"""

from __future__ import annotations

import numpy as np


def box_of(mask: np.ndarray) -> np.ndarray:
    """x0, y0, x1, y1 (ends exclusive) of a mask's true pixels."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], np.float64)


def grown(mask: np.ndarray) -> np.ndarray:
    """The mask and its 8 neighbours of each pixel."""
    padded = np.pad(mask, 1)
    height, width = mask.shape
    return np.logical_or.reduce([padded[dy : dy + height, dx : dx + width] for dy in range(3) for dx in range(3)])


def holes(inked: np.ndarray) -> np.ndarray:
    """The blank pixels that ink encloses (a 0's, a 6's loop): a path through them cuts a loop twice."""
    blank = labels(~inked)
    outside = np.unique(np.concatenate([blank[0], blank[-1], blank[:, 0], blank[:, -1]]))
    return ~inked & ~np.isin(blank, outside)


def seam(cost: np.ndarray, margin: int) -> np.ndarray | None:
    """Per row, the column where the cheapest top-to-bottom path through `cost` passes, at least
    `margin` columns from the sides; None where the piece is too narrow for that."""
    height, width = cost.shape
    margin = max(margin, 1)
    if width - 2 * margin < 1:
        return None
    # Each pixel's ink, plus a little so that of two clean paths the straighter one wins. Columns 0
    # and width + 1 are walls, so that a row's three ways in (from left, above, right) are slices.
    total = np.full((height, width + 2), np.inf)
    total[:, 1 + margin : 1 + width - margin] = cost[:, margin : width - margin].astype(np.float64) + 1e-3
    way_in = np.empty(width)
    # Row by row, the cheapest way into each pixel added to it; the rows' views are made once, as the
    # loop (a few hundred rows, three ufunc calls each) is most of a cut's time.
    for left, above, right, here in zip(
        total[:-1, :-2], total[:-1, 1:-1], total[:-1, 2:], total[1:, 1:-1], strict=True
    ):
        np.minimum(left, above, out=way_in)
        np.minimum(way_in, right, out=way_in)
        here += way_in
    # Back from the cheapest end, each row's way in: only the seam's moves are needed, not every
    # pixel's. Of equal ways the first of left, above, right, as argmin over them would take.
    columns = [int(total[-1, 1:-1].argmin()) + 1]
    for row in range(height - 2, -1, -1):
        at = columns[-1]
        before = total[row, at - 1 : at + 2].tolist()
        columns.append(at - 1 + before.index(min(before)))
    return np.array(columns[::-1], np.int64) - 1


def labels(binary: np.ndarray) -> np.ndarray:
    """Each true pixel's 8-connected component, by union-find over row runs: one label per
    component (its first run's index), -1 for false pixels."""
    stride = binary.shape[1] + 1  # where a run may start or end along a row
    padded = np.zeros((binary.shape[0], stride + 1), bool)
    padded[:, 1:-1] = binary
    # Along each row a run's start and its end (exclusive) alternate: one search finds both (a flat
    # one, and divmod: np.nonzero of a 2-d array costs several times more).
    rows, changes = np.divmod(np.flatnonzero(padded[:, 1:] != padded[:, :-1]), stride)
    rows, starts, ends = rows[0::2], changes[0::2], changes[1::2]
    # The runs of the next row that touch each run (8-connected: they overlap or meet at a corner):
    # runs are ordered by row, then column, so those are one slice, found by two binary searches.
    next_row = (rows + 1) * stride
    lows = np.searchsorted(rows * stride + ends, next_row + starts, "left")
    highs = np.searchsorted(rows * stride + starts, next_row + ends, "right")
    touching = np.maximum(highs - lows, 0)
    above = np.repeat(np.arange(len(rows)), touching)
    below = np.arange(len(above)) - np.repeat(np.cumsum(touching) - touching - lows, touching)
    roots = _first_runs(len(rows), above, below)
    # Each run's pixels labelled by its root at once (one index per pixel), then a mask per label.
    lengths = ends - starts
    run_of = np.repeat(np.arange(len(rows)), lengths)
    within = np.arange(len(run_of)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    labelled = np.full(binary.shape, -1)
    labelled[rows[run_of], starts[run_of] + within] = roots[run_of]
    return labelled


def _first_runs(count: int, above: np.ndarray, below: np.ndarray) -> np.ndarray:
    """For each of `count` runs, the first (least) run of its component, the runs joined where they
    touch (the pairs above[k], below[k]).

    Union-find in whole arrays: each round hooks the later root of every pair still apart onto the
    earlier one, then follows pointers until each run points at its root. Every tree that touches
    another is hooked or hooked onto, so the trees at least halve each round: a few rounds, where a
    Python loop over a grid's 100,000 runs took most of its segmentation's time."""
    root = np.arange(count)
    while True:
        a, b = root[above], root[below]
        apart = a != b
        if not apart.any():
            return root
        a, b = a[apart], b[apart]
        np.minimum.at(root, np.maximum(a, b), np.minimum(a, b))
        while not np.array_equal(jumped := root[root], root):
            root = jumped
