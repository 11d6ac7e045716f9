"""Reading a number from its candidates: the model's readings scored, and the best path through them.

recognizer/segmentation.py cuts a drawing into pieces and offers candidates over them (a piece
alone, neighbours merged, a wide piece whole and cut). Here the model reads them and `choose`
takes the path through the pieces whose candidates are the likeliest whole digits, by what the
model says of each and its shape (`features` weighed by WEIGHTS); specks and marks may be left out.

The model need not read every candidate for that (`to_read`): first the likeliest path by shape
alone, then only the candidates that could still beat what it read. A pen drawing's candidates are
drawn only when read. The worker reads a batch in two model calls, each over every drawing.

The API follows that order: `to_read`, `inputs`, a model call over every drawing of a batch and
`read_in`, then again; `choose` per drawing. `read_all` does it all (`images` and
`split_probabilities` read every candidate, to fit the weights on).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from recognizer.preprocessing import SIZE, BlankDrawing
from recognizer.segmentation import Box, Candidate, Segmentation

# A candidate's score is the log-odds that it is one whole digit, from what the model says of it
# and its shape (`features`), weighed by WEIGHTS: a logistic regression on the candidates of numbers
# by UNIPEN's calibration writers, then refined by a coordinate search for the most numbers and
# lone digits read exactly (training.numbers.fit_weights; `python -m benchmarks.numbers --fit`).
# Log-odds add up along a path, so a reading gains by every candidate likelier whole than not and
# loses by every other: neither few large candidates nor many small ones win by their count alone.
# recognizer/segmentation.py's thresholds only decide which candidates are offered; these weights
# choose among them. Refined for the model
# cnn-20261130-1649, on 1,500 numbers of each kind where 600 overfitted their draw (each `--fit`
# refines the weights here): run it again when the model changes.
# Fitted afresh when numbers of less even sizes joined the fit: the weights before made a digit 0.7
# of the line high cost more than merging it into its neighbour.
WEIGHTS = (2.400, 0.191, 1.536, -1.918, -13.283, -2.329, -2.075, -9.801, -0.808, -1.071, -1.451, -1.736)
# The same for an image's candidates (`--fit` fits both): its pieces are components of the ink,
# which overlapping digits share, where strokes keep each digit's own (and no stroke is crossed: 0).
IMAGE_WEIGHTS = (0.233, 0.249, 4.978, -8.234, -5.999, -3.603, -1.361, 0.0, 0.031, 0.0, -2.0, -4.773)
# How far an image's number confidence trusts the choice of its path (`_share`): scores are
# log-odds, sharpened by this factor, the one (of 0 to 5) whose confidences fitted the calibration
# writers' 1,000 numbers as images best (log-loss 0.173, against 0.204 without; BENCHMARKS.md,
# sixteenth session). Strokes' confidences fitted worse with the share at every factor: none.
PATH_TEMPERATURE = 2.0
# Leaving a speck out costs this much (log-odds).
SKIP_COST = 0.5
# `features` begins with this many columns of what the model says; the rest are the candidate's shape.
MODEL_COLUMNS = 2
# The least probability `features` takes the log of.
FLOOR = 1e-6


@dataclass(frozen=True)
class DigitReading:
    digit: int
    confidence: float
    probabilities: tuple[float, ...]
    box: Box

    def as_dict(self, places: int = 1) -> dict:
        """As the result's `digits` entries hold it (JSON-ready): the box to `places` decimals, as the
        drawing's points are stored (ink.stored_places: 0.1 px on a canvas of pixels, finer in smaller units)."""
        return {
            "digit": self.digit,
            "confidence": round(self.confidence, 6),
            "probabilities": [round(p, 6) for p in self.probabilities],
            "box": [round(v, places) for v in self.box],
        }


@dataclass(frozen=True)
class Reading:
    """The digits read, left to right, and how sure the choice among the ways to cut the drawing is."""

    digits: tuple[DigitReading, ...]
    share: float = 1.0  # the chosen path's share among every path (`_share`): 1 for strokes

    @property
    def number(self) -> str:
        return "".join(str(d.digit) for d in self.digits)

    @property
    def confidence(self) -> float:
        """That the whole number is right: every digit right, taken as independent, and, for two
        digits or more, the cut right. One digit read: its own confidence (DESIGN.md)."""
        digits = math.prod(d.confidence for d in self.digits)
        return digits * self.share if len(self.digits) > 1 else digits


def images(segmentations: Sequence[Segmentation]) -> np.ndarray:
    """Every candidate's input of these drawings, in order: what one model call reads for all of them."""
    stacks = [s.images for s in segmentations]
    return np.concatenate(stacks) if stacks else np.zeros((0, SIZE, SIZE), np.float32)


def split_probabilities(segmentations: Sequence[Segmentation], probabilities: np.ndarray) -> list[np.ndarray]:
    """The rows of one model call over `images(segmentations)`, per drawing."""
    ends = np.cumsum([len(s.candidates) for s in segmentations])
    return np.split(probabilities, ends[:-1]) if len(ends) else []


def unread(segmentation: Segmentation) -> np.ndarray:
    """The model's rows for the candidates, none read yet: NaN until `to_read` asks for them and they are read."""
    return np.full((len(segmentation.candidates), 10), np.nan, np.float32)


def to_read(segmentation: Segmentation, rows: np.ndarray) -> list[int]:
    """The candidates whose rows the model should read next; none once the best reading is certain.

    First the likeliest path by the candidates' shapes alone, each counted as the model's surest
    (`_surest`). Then, with those rows read, every candidate on a path that could still score
    above the best path of read candidates: the others cannot change the reading, and are never
    drawn. `choose` then picks the reading it would pick with every candidate read: a 5-digit
    number offers about 8.5 candidates, and the model reads about 6.
    """
    read = ~np.isnan(rows[:, 0])
    hopeful = _shape_scores(segmentation) + _surest(segmentation)
    if not read.any():
        return _path(segmentation, hopeful)
    scores = np.where(read, _scores(segmentation, np.nan_to_num(rows)), hopeful)
    surest = _forward(segmentation, np.where(read, scores, -np.inf))[0][-1]
    before, after = _forward(segmentation, scores)[0], _backward(segmentation, scores)
    return [
        i
        for i, c in enumerate(segmentation.candidates)
        if not read[i] and before[c.first] + scores[i] + after[c.end] > surest
    ]


def inputs(segmentation: Segmentation, indices: Sequence[int]) -> tuple[list[int], np.ndarray]:
    """The candidates' inputs, drawn now: (the indices drawn, their images). One found blank only when
    drawn (no ink survived the fitting) is left out: unread, it is never chosen."""
    drawn, images = [], []
    for index in indices:
        with contextlib.suppress(BlankDrawing):
            images.append(segmentation.candidates[index].image)
            drawn.append(index)
    return drawn, np.stack(images) if images else np.zeros((0, SIZE, SIZE), np.float32)


def read_all(segmentations: Sequence[Segmentation], predict: Callable[[np.ndarray], np.ndarray]) -> list[Reading]:
    """Each drawing's reading, with `predict` (images (N, 28, 28) -> probabilities (N, 10)) called
    once a round for every drawing's candidates `to_read`: two rounds at most."""
    rows = [unread(s) for s in segmentations]
    while True:
        wanted = [inputs(s, to_read(s, r)) for s, r in zip(segmentations, rows, strict=True)]
        if not any(indices for indices, _ in wanted):
            return [choose(s, r) for s, r in zip(segmentations, rows, strict=True)]
        read_in(rows, wanted, predict(np.concatenate([images for _, images in wanted])))


def read_in(
    rows: Sequence[np.ndarray], wanted: Sequence[tuple[list[int], np.ndarray]], probabilities: np.ndarray
) -> None:
    """The rows of one model call over several drawings' wanted inputs (`inputs`), in turn, each into its
    own drawing's `rows`."""
    start = 0
    for own, (indices, _) in zip(rows, wanted, strict=True):
        own[indices] = probabilities[start : start + len(indices)]
        start += len(indices)


def choose(segmentation: Segmentation, probabilities: np.ndarray) -> Reading:
    """The reading the model is surest of: a best path over the pieces, candidates' scores added up.

    A candidate scores the log-odds that it is one whole digit (`features` weighed by WEIGHTS);
    leaving out a speck costs SKIP_COST. A candidate whose row is NaN (unread) is never chosen.
    No path (nothing but specks): no digits.
    """
    scores = np.nan_to_num(_scores(segmentation, probabilities), nan=-np.inf)
    best, came = _forward(segmentation, scores)
    digits = tuple(_digit(segmentation.candidates[i], probabilities[i]) for i in _traced(segmentation, best, came))
    return Reading(digits, _share(segmentation, scores, best[-1]) if segmentation.painted else 1.0)


def _weights(segmentation: Segmentation) -> np.ndarray:
    return np.asarray(IMAGE_WEIGHTS if segmentation.painted else WEIGHTS)


def _scores(segmentation: Segmentation, probabilities: np.ndarray) -> np.ndarray:
    return features(segmentation, probabilities) @ _weights(segmentation)


def _shape_scores(segmentation: Segmentation) -> np.ndarray:
    """The candidates' scores without the model's part: what their shapes say."""
    return segmentation.shape @ _weights(segmentation)[MODEL_COLUMNS:]


def _surest(segmentation: Segmentation) -> float:
    """The most the model's part of a score can add, over every ten probabilities: its columns are
    the log top probability and its margin over the second's.

    With the margin's weight not negative, the second is best at its least for a given top, (1 - top)
    / 9 or FLOOR; then the part is convex in the top, or rising, so its most is at an end: all ten
    equal (top 0.1, no margin), the others at FLOOR, or a sure one-hot: a negative weight on the
    top, which `--fit` can give (it did for a model tried), makes a sure reading not the best case,
    and a bound that took the top down to log FLOOR left more candidates to read. A negative
    margin weight: that looser bound, the top anywhere in [log FLOOR, 0], the margin from 0 to the
    top's - log FLOOR."""
    top, margin = _weights(segmentation)[:MODEL_COLUMNS]
    low = math.log(FLOOR)
    if margin < 0:
        return max(0.0, -margin * low, top * low)
    floored = math.log1p(-9 * FLOOR)  # the top when the nine others are at FLOOR
    return max(top * math.log(0.1), (top + margin) * floored - margin * low, -margin * low)


def _path(segmentation: Segmentation, scores: np.ndarray) -> list[int]:
    """The candidates of the best-scoring path through the pieces, left to right."""
    return _traced(segmentation, *_forward(segmentation, scores))


def _traced(segmentation: Segmentation, best: np.ndarray, came: list[tuple[int, int | None]]) -> list[int]:
    """The candidates of the best path that `_forward` found (its `best` and `came`), left to right."""
    chosen, end = [], segmentation.pieces
    while end > 0 and np.isfinite(best[end]):
        end, index = came[end]
        if index is not None:
            chosen.append(index)
    return chosen[::-1]


def _forward(segmentation: Segmentation, scores: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int | None]]]:
    """The best score of a path from the start to each boundary between pieces, and how it came:
    (the boundary before, the candidate's index, or None for a speck left out)."""
    n = segmentation.pieces
    best = np.full(n + 1, -np.inf)
    best[0] = 0.0
    came: list[tuple[int, int | None]] = [(0, None)] * (n + 1)
    for end in range(1, n + 1):
        if end - 1 in segmentation.specks and best[end - 1] - SKIP_COST > best[end]:
            best[end], came[end] = best[end - 1] - SKIP_COST, (end - 1, None)
        for index in segmentation.ending.get(end, []):
            first = segmentation.candidates[index].first
            if best[first] + scores[index] > best[end]:
                best[end], came[end] = best[first] + scores[index], (first, index)
    return best, came


def _share(segmentation: Segmentation, scores: np.ndarray, best: float) -> float:
    """The best path's (its score `best`) share of all paths, each weighed by exp(PATH_TEMPERATURE x its score).

    The digits' confidences say nothing of the cut: an image's digits merged or split wrongly are
    often read confidently, and half the wrong numbers of images passed as sure. Candidates left
    unread count for nothing, as in the fit of PATH_TEMPERATURE, which was made as served."""
    n = segmentation.pieces
    total = np.full(n + 1, -np.inf)  # the log of the weights of every path to each boundary
    total[0] = 0.0
    for end in range(1, n + 1):
        ways = [
            total[segmentation.candidates[i].first] + PATH_TEMPERATURE * scores[i]
            for i in segmentation.ending.get(end, [])
        ]
        if end - 1 in segmentation.specks:
            ways.append(total[end - 1] - PATH_TEMPERATURE * SKIP_COST)
        if ways:
            total[end] = np.logaddexp.reduce(ways)
    if not math.isfinite(total[n]):  # no path: no digits
        return 1.0
    return min(math.exp(PATH_TEMPERATURE * best - total[n]), 1.0)


def _backward(segmentation: Segmentation, scores: np.ndarray) -> np.ndarray:
    """The best score of a path from each boundary between pieces to the end."""
    n = segmentation.pieces
    best = np.full(n + 1, -np.inf)
    best[n] = 0.0
    for first in range(n - 1, -1, -1):
        if first in segmentation.specks:
            best[first] = best[first + 1] - SKIP_COST
        for index in segmentation.starting.get(first, []):
            best[first] = max(best[first], best[segmentation.candidates[index].end] + scores[index])
    return best


def features(segmentation: Segmentation, probabilities: np.ndarray) -> np.ndarray:
    """Per candidate, what tells a whole digit from a part or a pair: the model's top log-probability
    and its margin over the second; height and width in line heights, and their squared distance
    from a digit's (1 high, 0.6 wide); how many other groups it merges in, the blank between them,
    how many of its sides a cut made and how many strokes beyond one those cuts went through, and
    whether it spans the whole drawing; and 1 (the intercept)."""
    if not segmentation.candidates:
        return np.zeros((0, len(WEIGHTS)))
    ranked = np.log(np.maximum(np.sort(probabilities, axis=1)[:, -2:], FLOOR))
    return np.column_stack([ranked[:, 1], ranked[:, 1] - ranked[:, 0], segmentation.shape])


def _digit(candidate: Candidate, row: np.ndarray) -> DigitReading:
    digit = int(row.argmax())
    return DigitReading(digit, float(row[digit]), tuple(float(p) for p in row), candidate.box)
