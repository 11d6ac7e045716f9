"""USPS's scanned zip-code digits (training part), as the model's 28x28 input, split in three.

The file (../shared/data/usps/zip.train.gz, or USPS_PATH) holds 7,291 digits scanned from
envelopes: one line per digit, the label, then 16x16 grey levels in [-1, 1] (-1 the paper),
deslanted and size-normalised to fill the 16x16 box. Each is scaled up 4 times (bilinear, as a
scan at a finer resolution would look) and put through the image path's own MNIST recipe
(recognizer.preprocessing.to_mnist), so it reaches the model as a canvas of it would.

The file names no writers, so the split is by a stable hash of each digit's line number
(SHA-256, like training/unipen.py): 80 % train, 10 % calibration, 10 % held out.
"""

from __future__ import annotations

import functools
import gzip
import os
from pathlib import Path

import numpy as np
from PIL import Image

from recognizer.preprocessing import to_mnist
from training.unipen import SPLITS, split_of

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_PATH = PROJECT_DIR.parent / "shared" / "data" / "usps" / "zip.train.gz"
SIDE = 16
UPSCALE = 4


def usps_path() -> Path:
    """USPS_PATH when set, else the shared file beside the project."""
    return Path(os.environ.get("USPS_PATH") or DEFAULT_PATH)


def model_input(grey: np.ndarray) -> np.ndarray:
    """One digit's 16x16 grey levels in [-1, 1] as the model's 28x28 input in [0, 1]."""
    strength = np.clip((grey.reshape(SIDE, SIDE) + 1) * 127.5, 0, 255).astype(np.float32)
    large = Image.fromarray(strength).resize((SIDE * UPSCALE, SIDE * UPSCALE), Image.Resampling.BILINEAR)
    return to_mnist(np.asarray(large))


@functools.cache
def load(path: Path | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inputs (N, 28, 28) float32, labels (N,) uint8, splits (N,) str) of every digit in the file."""
    with gzip.open(path or usps_path(), "rt") as file:
        rows = np.loadtxt(file, dtype=np.float32)
    inputs = np.stack([model_input(row[1:]) for row in rows])
    splits = np.array([split_of(f"usps/{line}") for line in range(len(rows))])
    return inputs, rows[:, 0].astype(np.uint8), splits


def split(name: str, path: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The inputs and labels of one split ("train", "calibration" or "held_out"). FileNotFoundError without the file."""
    if name not in SPLITS:
        raise ValueError(f"no split {name!r}; there are {', '.join(SPLITS)}")
    inputs, labels, splits = load(path)
    return inputs[splits == name], labels[splits == name]
