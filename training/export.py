"""The Keras model (the source of truth) exported to the worker's runtime, LiteRT, and checked against it.

Training, retraining and `manage.py verify_models` run here, with TensorFlow; the worker
loads only the exported file (worker/inference.py) and never imports TensorFlow.
"""

from __future__ import annotations

import os
import tempfile
from functools import cache
from pathlib import Path

import numpy as np

# The exported model must answer what the Keras model answers: the same digit for every
# image, and every probability within this.
PARITY_TOLERANCE = 1e-4


@cache
def configure_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    # One thread, as workers ran the Keras model; for checks and fine-tuning on a small machine.
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already started (e.g. training, with its own threads): leave it
        pass


def export_runtime(model, path: Path | None = None) -> bytes:
    """The model exported to LiteRT (written to `path` too, when given): the worker's file."""
    with tempfile.TemporaryDirectory() as folder:
        exported = Path(folder) / "model.tflite"
        model.export(str(exported), format="litert", verbose=False)
        content = exported.read_bytes()
    if path is not None:
        Path(path).write_bytes(content)
    return content


def keras_probabilities(model, images: np.ndarray, batch: int = 1000) -> np.ndarray:
    """The Keras model's probabilities for images (N, 28, 28[, 1]) in [0, 1]: model(x, training=False)."""
    x = np.asarray(images, np.float32).reshape(-1, 28, 28, 1)
    return np.concatenate([np.asarray(model(x[i : i + batch], training=False)) for i in range(0, len(x), batch)])


def parity(expected: np.ndarray, got: np.ndarray) -> tuple[str | None, dict]:
    """Why the exported model's answers differ from the Keras model's (or None), and what was measured."""
    if got.shape != expected.shape:
        return f"the export answered shape {got.shape}, the Keras model {expected.shape}", {}
    differ = int((got.argmax(axis=1) != expected.argmax(axis=1)).sum())
    worst = float(np.abs(got - expected).max()) if got.size else 0.0
    measured = {"images": len(got), "argmax_differs": differ, "max_abs_difference": worst}
    if not np.isfinite(got).all():
        return "the export answered NaN or infinite probabilities", measured
    if differ:
        return f"the export answers another digit than the Keras model on {differ} of {len(got)} images", measured
    if worst > PARITY_TOLERANCE:
        return f"probabilities differ from the Keras model's by up to {worst:.2g} (> {PARITY_TOLERANCE:g})", measured
    return None, measured
