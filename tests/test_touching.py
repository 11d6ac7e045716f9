"""The skeleton junctions of an image's ink, where number mode cuts digits that touch."""

from __future__ import annotations

import numpy as np
import pytest

from recognizer import touching

LINE = 80.0  # the ink's line height: thinned at half size (touching.THIN_LINE)


def bars(*boxes: tuple[int, int, int, int]) -> np.ndarray:
    """Ink of rectangles (y0, y1, x0, x1) on a 120 px square, each 10 px across."""
    ink = np.zeros((120, 120), bool)
    for y0, y1, x0, x1 in boxes:
        ink[y0:y1, x0:x1] = True
    return ink


def test_a_skeleton_is_one_pixel_wide_and_as_long_as_the_stroke():
    thin = touching.skeleton(np.pad(np.ones((10, 80), bool), 5))
    assert thin.sum(axis=0).max() == 1
    assert 60 <= thin.sum() <= 80


@pytest.mark.parametrize(
    ("ink", "expected"),
    [
        (bars((20, 100, 55, 65), (55, 65, 20, 100)), [(60, 60)]),  # a plus: strokes crossing
        (bars((20, 30, 20, 100), (20, 100, 55, 65)), [(25, 60)]),  # a T: one stroke meeting another
        (bars((20, 100, 20, 30), (90, 100, 20, 100)), []),  # an L: a corner is no junction
        (bars((20, 100, 20, 30), (20, 100, 60, 70)), []),  # strokes apart
    ],
)
def test_junctions_are_where_three_or_more_branches_meet(ink, expected):
    found = touching.junctions(ink, LINE)
    assert found.points.shape == (len(expected), 2)
    for point, (y, x) in zip(found.points, expected, strict=True):
        assert np.hypot(point[0] - y, point[1] - x) <= 4
    assert found.pen == pytest.approx(10, rel=0.2)
