"""Drawings made to cost the worker: its time and memory for each, and how it ends.

    .venv/bin/python -m benchmarks.hostile [--rounds 3]

Each drawing passes the web's checks (recognizer/ink.py's limits, recognizer/images.py's) and is
read as the worker reads it: number mode through recognizer/segmentation.py (every candidate drawn,
the most a reading draws, not yet predicted: the model reads each for about 0.25 ms more), digit mode through
`ink.rasterise` or `preprocess`. Printed per drawing: the best wall time of `rounds`, the peak of
memory allocated while reading it (tracemalloc, which sees numpy's arrays), and the outcome:
candidates, blank, or refused as more marks than a number has (`TooLong`).
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Callable

import numpy as np
from PIL import Image

from recognizer import ink, segmentation
from recognizer.preprocessing import BlankDrawing, preprocess
from training import samples


def flat_zigzag(spread: np.ndarray) -> list[list[float]]:
    """One flat stroke whose points alternate either side of x = 0, `spread` away: its line is the pen."""
    xs = np.empty(2 * len(spread))
    xs[0::2], xs[1::2] = -spread, spread[::-1]
    return np.column_stack([xs, np.full(len(xs), 100.0)]).tolist()


def bars_png(columns: int) -> bytes:
    """A canvas of `columns` columns of four short bars, each column one digit high: a few hundred bytes."""
    image = np.full((200, columns * 10 + 40), 255, np.uint8)
    for column in range(columns):
        for top in (20, 60, 100, 140):
            image[top : top + 20, 20 + column * 10 : 23 + column * 10] = 0
    return samples.png(Image.fromarray(image))


def dots_png() -> bytes:
    """A 1024 px canvas with a band of 38,000 dots: 3 KB."""
    dots = np.full((1024, 1024), 255, np.uint8)
    dots[400:550:2, ::2] = 0
    return samples.png(Image.fromarray(dots))


def grid_png() -> bytes:
    """A grid of 1 px lines every 4 px, 2,000 px wide and 200 high: one mark round 25,000 holes, 1 KB."""
    grid = np.full((200, 2000), 255, np.uint8)
    grid[:, ::4] = 0
    grid[::4, :] = 0
    return samples.png(Image.fromarray(grid))


def scribble(seed: int = 1) -> list[list[float]]:
    """One stroke of every point allowed, anywhere across the widest canvas, 100 px high."""
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(-10_000, 10_000, ink.MAX_POINTS), rng.uniform(0, 100, ink.MAX_POINTS)]).tolist()


def sawtooth() -> list[list[float]]:
    """One stroke of every point allowed, up and down 100 px at each step of 1 px to the right."""
    return [[float(i), float(i % 2 * 100)] for i in range(ink.MAX_POINTS)]


def cases() -> dict[str, tuple[str, Callable[[], object]]]:
    """Name: (mode, how the worker reads it)."""
    widest = float(ink.MAX_COORDINATE)
    half = ink.MAX_POINTS // 2
    across = {"strokes": [flat_zigzag(np.full(half, widest))], "pen": 0.5}
    spreading = {"strokes": [flat_zigzag(np.linspace(1, widest, half))], "pen": ink.MIN_PEN}
    most = segmentation.MAX_PIECES // 4

    def number(body: dict) -> Callable[[], object]:
        drawing = ink.parse(body)
        return lambda: every_candidate_drawn(segmentation.from_ink(drawing))

    def image(data: bytes) -> Callable[[], object]:
        return lambda: every_candidate_drawn(segmentation.from_image(data))

    def digit(body: dict) -> Callable[[], object]:
        drawing = ink.parse(body)
        return lambda: ink.rasterise(drawing)

    return {
        "flat zigzag across the widest canvas, pen 0.5": ("number", number(across)),
        "flat zigzag spreading out, thinnest pen": ("number", number(spreading)),
        "scribble of 10,000 points, pen 5": ("number", number({"strokes": [scribble()], "pen": 5})),
        "up and down 100 px, 10,000 points 1 px apart": ("number", number({"strokes": [sawtooth()]})),
        "the same scribble, pen 1000": ("digit", digit({"strokes": [scribble()], "pen": 1000})),
        "300 columns of bars, 1 KB PNG": ("number", image(bars_png(300))),
        f"{most} columns of bars (the most pieces read)": ("number", image(bars_png(most))),
        "38,000 dots, 3 KB PNG": ("number", image(dots_png())),
        "a grid round 25,000 holes, 1 KB PNG": ("number", image(grid_png())),
        "the same dots": ("digit", lambda: preprocess(dots_png())),
    }


def every_candidate_drawn(candidates: segmentation.Segmentation) -> segmentation.Segmentation:
    candidates.images  # noqa: B018 - drawn for what it costs: a reading draws at most these
    return candidates


def outcome(read: Callable[[], object]) -> str:
    try:
        result = read()
    except segmentation.TooLong:
        return "refused: TooLong"
    except BlankDrawing:
        return "blank"
    if isinstance(result, segmentation.Segmentation):
        return f"{len(result.candidates)} candidates"
    return "read"


def peak_bytes(read: Callable[[], object]) -> int:
    """The most memory `read()` held at once (numpy's arrays included)."""
    tracemalloc.start()
    try:
        read()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def measure(read: Callable[[], object], rounds: int) -> tuple[float, float, str]:
    """Best time (ms), peak memory (MB), outcome."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        ended = outcome(read)
        best = min(best, time.perf_counter() - started)
    return best * 1000, peak_bytes(lambda: outcome(read)) / 1e6, ended


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for name, (mode, read) in cases().items():
        ms, mb, ended = measure(read, args.rounds)
        print(f"{name} ({mode} mode): {ms:.1f} ms, peak {mb:.1f} MB, {ended}")


if __name__ == "__main__":
    main()
