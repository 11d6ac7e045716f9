"""The shipped model on all of MNIST test, through the worker's own model code (needs the MNIST files)."""

from __future__ import annotations

import numpy as np

from recognizer.model_files import read_metadata, shipped_path
from worker.inference import Predictor


def test_the_shipped_model_scores_on_mnist_test_what_its_metadata_says(mnist_test):
    images, labels = mnist_test
    predicted = Predictor.from_file(shipped_path()).predict(images.astype(np.float32) / 255).argmax(axis=1)
    accuracy = float((predicted == labels).mean())
    assert accuracy >= 0.995
    assert abs(accuracy - read_metadata(shipped_path())["mnist_test_accuracy"]) <= 0.001
