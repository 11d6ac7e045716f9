"""UNIPEN's isolated digits (section 1a) as pen strokes on a canvas, split by writer.

The file (../shared/data/unipen/unipen_1a_train_digits.json.gz, or UNIPEN_PATH) holds 8,456 digits
by 388 writer sessions, recorded on tablets at many sites: pen-down traces in the order written,
in tablet units with y pointing up. `load` flips y (canvas y points down) and keeps the tablet's
scale; `on_canvas` scales a digit to a height in pixels and places it on a canvas, as a drawing
body that recognizer.ink.parse reads (`{"strokes", "width", "height", "pen"}`).

Digits of one writer look alike, so held-out figures are only honest when no writer of them was
trained on: `split_of` puts every writer, with all their digits, in one of SPLITS by a stable hash
of the writer string (SHA-256, the same on every machine and Python), 80 % train, 10 %
calibration, 10 % held out. Nothing here trains; a trainer reads `split("train")`, reports on
`split("held_out")`.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recognizer import ink

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_PATH = PROJECT_DIR.parent / "shared" / "data" / "unipen" / "unipen_1a_train_digits.json.gz"
# Per cent of writers in each split, in this order of the hash's buckets (0-99).
SPLITS = {"train": 80, "calibration": 10, "held_out": 10}


@dataclass(frozen=True, eq=False)
class PenDigit:
    """One digit as written: strokes in tablet units, y down (flipped from the file)."""

    strokes: tuple[np.ndarray, ...]  # float64 (n, 2): x, y of each point
    label: int
    writer: str  # site/session, e.g. "aga/amywldrp"
    quality: str  # "OK" where the site checked the label, "?" where it did not


def unipen_path() -> Path:
    """UNIPEN_PATH when set, else the shared file beside the project."""
    return Path(os.environ.get("UNIPEN_PATH") or DEFAULT_PATH)


@functools.cache
def load(path: Path | None = None) -> tuple[PenDigit, ...]:
    """Every digit in the file, in its order. FileNotFoundError where the file is absent."""
    with gzip.open(path or unipen_path(), "rt") as file:
        items = json.load(file)
    return tuple(
        PenDigit(
            tuple(np.asarray(stroke, np.float64).reshape(-1, 2) * (1, -1) for stroke in item["strokes"]),
            int(item["label"]),
            item["writer"],
            item["quality"],
        )
        for item in items
    )


def split_of(writer: str) -> str:
    """The split a writer's digits belong to: by SHA-256 of the writer string, never by digit."""
    bucket = int.from_bytes(hashlib.sha256(writer.encode()).digest()[:8], "big") % 100
    for name, share in SPLITS.items():
        if bucket < share:
            return name
        bucket -= share
    raise AssertionError("SPLITS add up to 100")


def split(name: str, path: Path | None = None) -> list[PenDigit]:
    """The digits of one split ("train", "calibration" or "held_out"), in the file's order."""
    if name not in SPLITS:
        raise ValueError(f"no split {name!r}; there are {', '.join(SPLITS)}")
    return [digit for digit in load(path) if split_of(digit.writer) == name]


def on_canvas(
    digit: PenDigit,
    canvas: tuple[int, int] = (280, 280),
    height: float = 0.6,
    position: tuple[float, float] = (0.5, 0.5),
    pen: float | None = None,
) -> dict:
    """A drawing body for recognizer.ink.parse: the digit on a canvas (width, height in pixels).

    - height: the ink's height, the pen's width included, as a share of the canvas's height. A digit
      with next to no height (a dash) has its width made that long instead; one too wide for the
      canvas at that height is drawn smaller.
    - position: where the ink's box lies in the room the canvas leaves it, per axis from 0 (left,
      top) to 1 (right, bottom); (0.5, 0.5) centres it.
    - pen: its width in pixels; by default the page's (ink.default_pen).

    Coordinates are rounded to 0.1 px, as the page sends them.
    """
    width_px, height_px = canvas
    pen = ink.default_pen(*canvas) if pen is None else pen
    points = np.concatenate(digit.strokes)
    low = points.min(axis=0)
    extent = points.max(axis=0) - low
    tall = extent[1] if extent[1] > 0.1 * extent[0] else extent[0]
    scale = max(height * height_px - pen, 0) / max(tall, 1e-9)
    scale = min(scale, max(0.98 * width_px - pen, 0) / max(extent[0], 1e-9))
    room = np.maximum(np.array(canvas) - (extent * scale + pen), 0)
    corner = room * np.asarray(position) + pen / 2  # where the path's box starts
    strokes = [np.round((stroke - low) * scale + corner, 1).tolist() for stroke in digit.strokes]
    return {"strokes": strokes, "width": width_px, "height": height_px, "pen": pen}
