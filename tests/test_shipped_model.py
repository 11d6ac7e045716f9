"""The shipped model on all of MNIST test and UNIPEN's held-out writers, through the worker's own model code."""

from __future__ import annotations

import numpy as np
import pytest

from recognizer import ink
from recognizer.api import SEVEN_IN_STROKES
from recognizer.model_files import read_metadata, shipped_path
from training import pen_inputs, unipen
from worker.inference import Predictor


def test_the_shipped_model_scores_on_mnist_test_what_its_metadata_says(mnist_test):
    images, labels = mnist_test
    predicted = Predictor.from_file(shipped_path()).predict(images.astype(np.float32) / 255).argmax(axis=1)
    accuracy = float((predicted == labels).mean())
    assert accuracy >= 0.995
    assert abs(accuracy - read_metadata(shipped_path())["mnist_test_accuracy"]) <= 0.001


def test_the_shipped_model_scores_on_held_out_writers_what_its_metadata_says():
    """UNIPEN's held-out writers, rendered as training did (same seed): the runtime's figure is the metadata's."""
    try:
        held = unipen.split("held_out")
    except FileNotFoundError as exc:
        pytest.skip(f"needs UNIPEN's digits, which a bare clone lacks ({exc}); CI reads ../shared/data/unipen")
    metadata = read_metadata(shipped_path())
    parameters = metadata["parameters"]
    images, labels = pen_inputs.inputs(held, parameters["calibration_renders"], parameters["seed"])
    accuracy = float((Predictor.from_file(shipped_path()).predict(images).argmax(axis=1) == labels).mean())
    assert accuracy >= 0.98
    assert abs(accuracy - metadata["sets"]["unipen_held_out"]["accuracy"]) <= 0.002


def test_the_api_documents_example_drawing_reads_as_the_seven_it_is():
    probabilities = Predictor.from_file(shipped_path()).predict(ink.rasterise(ink.parse(SEVEN_IN_STROKES))[None])
    assert probabilities.argmax() == 7 and probabilities.max() > 0.9
