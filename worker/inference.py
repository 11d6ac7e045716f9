"""A trained model behind one compiled call, as a worker process holds it."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import numpy as np

from recognizer.model_files import read_metadata

# For a model whose metadata names no calibrated line (older versions): below this, uncertain.
DEFAULT_UNCERTAIN_BELOW = 0.5


@cache
def configure_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    # One drawing is far too small to gain from several threads; one thread per worker
    # process leaves the other cores to other workers.
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)


class Predictor:
    """The Keras model behind one compiled function, with the version it reports."""

    def __init__(self, path: Path, version: str, uncertain_below: float | None = None) -> None:
        # Imported here so that importing this module never pulls in TensorFlow.
        configure_tensorflow()
        import keras
        import tensorflow as tf

        self.version = version
        self.uncertain_below = uncertain_below or DEFAULT_UNCERTAIN_BELOW
        self.model = keras.models.load_model(path, compile=False)
        # model.predict() builds a dataset and a step function per call (~30 ms); a traced
        # tf.function over any batch size answers one image in well under a millisecond.
        # Calling the concrete function skips tf.function's argument matching: ~0.1 ms a call.
        self._call = tf.function(lambda x: self.model(x, training=False)).get_concrete_function(
            tf.TensorSpec([None, 28, 28, 1], tf.float32)
        )
        self._tensor = tf.constant
        self.predict(np.zeros((1, 28, 28), np.float32))  # trace now, not on the first drawing

    @classmethod
    def from_file(cls, path: Path) -> Predictor:
        """A model file with its metadata JSON beside it (which names the version)."""
        metadata = read_metadata(path)
        return cls(path, metadata["version"], metadata.get("uncertain_below"))

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Probabilities (N, 10) for images (N, 28, 28) scaled to [0, 1]."""
        return self._call(self._tensor(images[..., None].astype(np.float32, copy=False))).numpy()
