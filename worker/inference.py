"""A trained model as a worker process holds it: the Keras model's LiteRT export, on one thread.

The worker never imports TensorFlow or Keras (DESIGN.md): training and retraining export
every version to a .tflite file beside its .keras file (training/export.py), checked to
answer the Keras model's probabilities, and the worker runs that file with ai-edge-litert.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from recognizer.model_files import read_metadata

# For a model whose metadata names no calibrated line (older versions): below this, uncertain.
DEFAULT_UNCERTAIN_BELOW = 0.5
# Batch sizes an interpreter is planned for, so that memory is planned once per size, not on every
# call: a batch goes in runs of these sizes (see Predictor.predict). 5: a number of five digits
# reads about five candidates first (recognizer/reading.py, `to_read`), one run where 4 + 1
# would be two (a 5-digit number's time, 2.10-2.15 ms, became 2.02-2.04 ms; no more interpreters).
BUCKETS = (1, 2, 4, 5, 8, 16, 32, 64)
RUNTIME_SUFFIX = ".tflite"


def runtime_path(model: Path) -> Path:
    """The worker's file for a model file: model.keras -> model.tflite beside it."""
    return Path(model).with_suffix(RUNTIME_SUFFIX)


class Predictor:
    """The exported model, one interpreter per batch-size bucket, with the version it reports."""

    def __init__(self, model: Path | bytes, version: str, uncertain_below: float | None = None) -> None:
        """`model`: the exported model's bytes, or a model file (a .keras path means the .tflite beside it)."""
        self.version = version
        self.uncertain_below = uncertain_below or DEFAULT_UNCERTAIN_BELOW
        self._content = bytes(model) if isinstance(model, bytes | bytearray | memoryview) else None
        if self._content is None:
            self._content = runtime_path(model).read_bytes()
        self._interpreters: dict[int, tuple[Interpreter, int, int]] = {}
        self._lock = threading.Lock()  # an interpreter is not thread-safe; a pool child predicts on one thread
        self.predict(np.zeros((1, 28, 28), np.float32))  # plan and check now, not on the first drawing

    @classmethod
    def from_file(cls, path: Path) -> Predictor:
        """A model file with its metadata JSON beside it (which names the version)."""
        metadata = read_metadata(path)
        return cls(Path(path), metadata["version"], metadata.get("uncertain_below"))

    def _interpreter(self, bucket: int) -> tuple[Interpreter, int, int]:
        if bucket not in self._interpreters:
            # One drawing is far too small to gain from several threads; one thread per worker
            # process leaves the other cores to other workers.
            interpreter = Interpreter(model_content=self._content, num_threads=1)
            (image,), (output,) = interpreter.get_input_details(), interpreter.get_output_details()
            if tuple(image["shape_signature"][1:]) != (28, 28, 1) or image["dtype"] != np.float32:
                shape, dtype = image["shape_signature"], image["dtype"]
                raise ValueError(f"the model takes {shape} {dtype}, not (N, 28, 28, 1) float32")
            interpreter.resize_tensor_input(image["index"], [bucket, 28, 28, 1])
            interpreter.allocate_tensors()
            self._interpreters[bucket] = (interpreter, image["index"], output["index"])
        return self._interpreters[bucket]

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Probabilities (N, 10) for images (N, 28, 28) scaled to [0, 1]."""
        images = np.asarray(images, np.float32).reshape(-1, 28, 28, 1)
        if not len(images):
            return np.zeros((0, 10), np.float32)
        # In runs of bucket sizes, largest first (9 = 8 + 1): an image costs the same alone or in a
        # batch, so padding 9 to 16 would cost seven images' time, and another invoke far less.
        rows, start = [], 0
        while start < len(images):
            size = max(size for size in BUCKETS if size <= len(images) - start)
            rows.append(self._invoke(images[start : start + size]))
            start += size
        return rows[0] if len(rows) == 1 else np.concatenate(rows)

    def _invoke(self, images: np.ndarray) -> np.ndarray:
        with self._lock:
            interpreter, image, output = self._interpreter(len(images))
            interpreter.set_tensor(image, np.ascontiguousarray(images))
            interpreter.invoke()
            return interpreter.get_tensor(output)  # a copy: the next invoke does not change it
