"""UNIPEN's real pen digits as the model's inputs, rendered the ways the service receives drawings.

A person's digit reaches the model either as strokes (recognizer.ink.rasterise, the worker's
stroke path) or as a canvas image (recognizer.preprocessing.to_mnist of its ink, the image
path). Each digit is rendered `renders` times, alternating the two paths, each time on its
own canvas: a random canvas size and shape, the digit's height on it, its place and the pen's
width (the ranges benchmarks/canvases.py measures on). Training then distorts every input
afresh each epoch (training/augment.py), so a few renders per digit are enough.
"""

from __future__ import annotations

import math

import numpy as np

from recognizer import ink
from recognizer.preprocessing import BOLDEST, BlankDrawing, to_mnist
from training import strokes, unipen

SIDE = (200, 600)  # canvas side in pixels
HEIGHT_SHARE = (0.25, 0.9)  # the digit's height as a share of the canvas's height
PEN = (2.0, 30.0)  # the pen's width in pixels, log-uniform ...
PEN_SHARE = BOLDEST  # ... and never over this share of the digit's height: the service draws none bolder


def canvas_body(digit: unipen.PenDigit, rng: np.random.Generator) -> dict:
    """The digit on a random canvas, as the strokes body the API takes."""
    width = int(rng.integers(SIDE[0], SIDE[1] + 1))
    height = width if rng.random() < 0.7 else int(np.clip(width * rng.uniform(0.5, 1.4), *SIDE))
    share = rng.uniform(*HEIGHT_SHARE)
    pen = math.exp(rng.uniform(math.log(PEN[0]), math.log(max(PEN[0], PEN_SHARE * share * height))))
    return unipen.on_canvas(digit, (width, height), share, (rng.random(), rng.random()), pen)


def model_input(body: dict, painted: bool) -> np.ndarray:
    """The model's 28x28 input for a strokes body: painted on a canvas and read as an image, or rasterised."""
    if not painted:
        return ink.rasterise(ink.parse(body))
    points = [[(x, y) for x, y in stroke] for stroke in body["strokes"]]
    return to_mnist(strokes.paint(points, body["pen"], (body["width"], body["height"])))


def inputs(digits: list[unipen.PenDigit], renders: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (N, 28, 28) float32 and labels (N,) uint8: every digit `renders` times, both paths in turn.

    A render the service would answer blank (a dash drawn so thin it vanishes) is left out.
    """
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for i, digit in enumerate(digits):
        for render in range(renders):
            try:
                images.append(model_input(canvas_body(digit, rng), painted=(i + render) % 2 == 1))
            except BlankDrawing:
                continue
            labels.append(digit.label)
    return np.stack(images).astype(np.float32), np.array(labels, np.uint8)
