"""Reading the original MNIST IDX files (gzip-compressed or not)."""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import numpy as np

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_PATH = PROJECT_DIR.parent / "shared" / "data" / "mnist"
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def mnist_dir() -> Path:
    """MNIST_PATH when set, else ../shared/data/mnist beside the project."""
    return Path(os.environ.get("MNIST_PATH") or DEFAULT_PATH)


def _find(directory: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (directory / name).exists():
            return directory / name
    raise FileNotFoundError(f"{stem}(.gz) not found in {directory}; set MNIST_PATH")


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load(split: str, directory: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) uint8 and labels (N,) uint8 of the "train" or "test" split."""
    directory = directory or mnist_dir()
    images, labels = (_find(directory, stem) for stem in FILES[split])
    return _read_idx(images), _read_idx(labels)


def checksum(directory: Path | None = None) -> str:
    """SHA-256 over the four files, so a model's metadata says exactly what it saw."""
    directory = directory or mnist_dir()
    digest = hashlib.sha256()
    for stems in FILES.values():
        for stem in stems:
            digest.update(_find(directory, stem).read_bytes())
    return digest.hexdigest()
