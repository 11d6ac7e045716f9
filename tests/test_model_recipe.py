"""The training recipe's parts: distortions, synthetic strokes, calibration (no training here)."""

from __future__ import annotations

import numpy as np
import pytest

from training import calibration, samples, strokes


def test_temperature_scaling_undoes_overconfidence():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 4000)
    logits = rng.normal(0, 1, (4000, 10))
    logits[np.arange(4000), labels] += 2.0  # right about two times in three
    overconfident = logits * 4
    temperature = calibration.fit_temperature(overconfident, labels)
    assert temperature > 1.5  # softened, as overconfidence needs
    before = calibration.ece(calibration.softmax(overconfident), labels)
    after = calibration.ece(calibration.softmax(overconfident, temperature), labels)
    assert after < before / 3


def test_expected_calibration_error_of_perfect_and_of_blind_confidence():
    labels = np.array([0, 1, 2, 3])
    sure_and_right = np.eye(10)[labels]
    assert calibration.ece(sure_and_right, labels) == 0
    sure_and_wrong = np.eye(10)[(labels + 1) % 10]
    assert calibration.ece(sure_and_wrong, labels) == 1


def test_the_uncertain_line_keeps_the_answers_above_it_right_often_enough():
    probabilities = np.zeros((1000, 10))
    probabilities[:, 0] = np.linspace(0.3, 1.0, 1000)  # confidence rises with the index
    labels = np.zeros(1000, int)
    labels[[100, 200, 300, 400, 500, 990]] = 1  # wrong answers: 0 is answered every time
    line = calibration.uncertain_line(probabilities, labels)
    sure = probabilities[:, 0] >= line
    assert (labels[sure] == 0).mean() >= calibration.SURE_ACCURACY
    # The 699 most confident (index 301 up) hold 3 mistakes (99.57 %); the next one is the 4th mistake.
    assert sure.sum() == 699
    assert calibration.uncertain_line(probabilities, np.ones(1000, int)) == 1.0  # never right: all flagged


def test_confusion_rows_are_true_digits():
    matrix = calibration.confusion(np.array([1, 1, 7]), np.array([1, 7, 7]))
    assert matrix[7][1] == 1 and matrix[7][7] == 1 and matrix[1][1] == 1 and sum(map(sum, matrix)) == 3


def test_synthetic_stroke_digits_look_like_preprocessed_mnist():
    images, labels = strokes.digits(40, seed=3)
    assert images.shape == (40, 28, 28) and images.dtype == np.float32
    assert labels.tolist() == [i % 10 for i in range(40)]
    assert images.max() == pytest.approx(1.0) and images.min() == 0
    # MNIST's recipe: the ink fits a 20 px box, with the longer side filling it.
    rows, cols = (images > 0).any(axis=2).sum(axis=1), (images > 0).any(axis=1).sum(axis=1)
    assert (np.maximum(rows, cols) <= 21).all() and (np.maximum(rows, cols) >= 19).all()
    again, _ = strokes.digits(40, seed=3)
    assert np.array_equal(images, again)


def test_distortions_are_seeded_and_keep_the_digit_in_frame():
    tf = pytest.importorskip("tensorflow")
    from training.augment import augment

    x, _ = samples.digits(64)
    batch = tf.constant((x[:64].astype("float32") / 255)[..., None])
    first = augment(batch, tf.constant([1, 5], tf.int64)).numpy()
    assert first.shape == (64, 28, 28, 1)
    assert np.array_equal(first, augment(batch, tf.constant([1, 5], tf.int64)).numpy())
    assert not np.array_equal(first, augment(batch, tf.constant([1, 6], tf.int64)).numpy())
    assert np.allclose(first.max(axis=(1, 2, 3)), 1.0)  # scaled to full strength, as the worker does
    ink = first[..., 0] > 0.5
    assert ink[:, 1:-1, 1:-1].sum() > 0.97 * ink.sum()  # hardly any ink pushed off the edge
