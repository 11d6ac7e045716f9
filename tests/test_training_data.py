"""The training sets beside MNIST: USPS scans and UNIPEN pens as the model's inputs, split without leaks."""

from __future__ import annotations

import numpy as np
import pytest

from recognizer import ink
from training import pen_inputs, strokes, unipen, usps


def made_pen_digit(label: int, writer: str = "made/one") -> unipen.PenDigit:
    """A digit as UNIPEN holds one (tablet units, y down), from the project's own stroke templates."""
    shape = tuple(np.asarray(stroke, np.float64) * 1000 for stroke in strokes.TEMPLATES[label][0])
    return unipen.PenDigit(shape, label, writer, "OK")


def test_a_usps_scan_becomes_an_mnist_style_input():
    grey = np.full((16, 16), -1.0, np.float32)
    grey[2:14, 7:9] = 1.0  # a 1: a bar down the middle
    image = usps.model_input(grey)
    assert image.shape == (28, 28) and image.dtype == np.float32
    assert image.max() == pytest.approx(1.0) and image.min() >= 0
    rows, cols = np.flatnonzero(image.any(axis=1)), np.flatnonzero(image.any(axis=0))
    assert rows[-1] - rows[0] + 1 == 20  # its height fitted to MNIST's 20 px box, aspect kept
    assert cols[-1] - cols[0] + 1 < 8


def test_usps_splits_are_disjoint_and_cover_the_file():
    try:
        inputs, labels, splits = usps.load()
    except FileNotFoundError as exc:
        pytest.skip(f"needs USPS's scans, which a bare clone lacks ({exc}); set USPS_PATH or add ../shared/data")
    assert len(inputs) == len(labels) == len(splits) == 7291
    counts = {name: int((splits == name).sum()) for name in unipen.SPLITS}
    assert sum(counts.values()) == 7291 and min(counts.values()) > 500
    assert set(np.unique(labels)) == set(range(10))
    with pytest.raises(ValueError, match="no split"):
        usps.split("test")


def test_pen_digits_render_both_ways_on_random_canvases():
    digits = [made_pen_digit(label) for label in range(10)]
    images, labels = pen_inputs.inputs(digits, renders=4, seed=3)
    assert images.shape == (40, 28, 28) and images.dtype == np.float32
    assert labels.tolist() == [label for label in range(10) for _ in range(4)]
    assert np.allclose(images.max(axis=(1, 2)), 1.0)
    again, _ = pen_inputs.inputs(digits, renders=4, seed=3)
    assert np.array_equal(images, again)  # seeded: training is reproducible


def test_painting_and_rasterising_a_body_give_nearly_the_same_input():
    body = pen_inputs.canvas_body(made_pen_digit(4), np.random.default_rng(0))
    painted, rasterised = pen_inputs.model_input(body, painted=True), pen_inputs.model_input(body, painted=False)
    assert np.array_equal(rasterised, ink.rasterise(ink.parse(body)))
    assert np.abs(painted - rasterised).mean() < 0.05


def test_no_writer_trains_and_judges():
    try:
        digits = unipen.load()
    except FileNotFoundError as exc:
        pytest.skip(f"needs UNIPEN's digits, which a bare clone lacks ({exc})")
    writers = {name: {d.writer for d in unipen.split(name)} for name in unipen.SPLITS}
    assert not writers["train"] & writers["held_out"] and not writers["train"] & writers["calibration"]
    assert not writers["calibration"] & writers["held_out"]
    assert sum(len(unipen.split(name)) for name in unipen.SPLITS) == len(digits)


def test_digits_cut_out_of_numbers_carry_their_own_labels():
    # Stage two of training (training.train.tune_on_numbers) learns from the candidates number mode
    # cuts out of the training writers' numbers: each must be labelled with the digit it holds.
    from recognizer.model_files import shipped_path
    from training import numbers
    from worker.inference import Predictor

    try:
        images, labels = numbers.digit_crops("train", 40, seed=5)
    except FileNotFoundError as exc:
        pytest.skip(f"needs UNIPEN's digits, which a bare clone lacks ({exc})")
    assert images.shape[1:] == (28, 28) and images.dtype == np.float32 and len(images) == len(labels)
    assert images.min() >= 0 and images.max() <= 1
    # 40 painted, 10 made and 20 pen numbers of 2-5 digits, and 10 lone digits: most offered whole.
    assert 150 < len(labels) < 400 and set(labels) == set(range(10))
    read = Predictor.from_file(shipped_path()).predict(images).argmax(axis=1)
    assert (read == labels).mean() > 0.95
