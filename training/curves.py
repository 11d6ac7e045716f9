"""A training curve as a PNG, drawn with Pillow (no plotting library for one chart)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

WIDTH, HEIGHT, MARGIN = 900, 380, 50
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]


def plot(history: dict[str, list[float | None]], path: Path, title: str) -> None:
    """Two panels: loss on the left, error rate (1 - accuracy, log scale) on the right, per epoch
    (None: no value that epoch, as before a second stage of training starts)."""
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    draw.text((MARGIN, 12), title, fill="black")
    half = WIDTH // 2
    losses = {k: v for k, v in history.items() if k.endswith("loss")}
    errors = {
        k.replace("accuracy", "error"): [None if a is None else max(1 - a, 1e-4) for a in v]
        for k, v in history.items()
        if k.endswith("accuracy")
    }
    _panel(draw, (MARGIN, MARGIN, half - 20, HEIGHT - MARGIN), losses, log=False)
    _panel(draw, (half + MARGIN, MARGIN, WIDTH - 20, HEIGHT - MARGIN), errors, log=True)
    image.save(path)


def _panel(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], series: dict, log: bool) -> None:
    import math

    left, top, right, bottom = box
    draw.rectangle(box, outline="black")
    scale = math.log10 if log else (lambda v: v)
    values = [scale(v) for vs in series.values() for v in vs if v is not None]
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    epochs = max(len(vs) for vs in series.values())
    for i, (name, vs) in enumerate(series.items()):
        points = [
            (left + (right - left) * j / max(epochs - 1, 1), bottom - (bottom - top) * (scale(v) - low) / span)
            for j, v in enumerate(vs)
            if v is not None
        ]
        draw.line(points, fill=COLOURS[i % len(COLOURS)], width=2)
        draw.text((left + 8, top + 6 + 14 * i), name, fill=COLOURS[i % len(COLOURS)])
    fmt = (lambda v: f"{10**v:.2%}") if log else (lambda v: f"{v:.3f}")
    draw.text((left - 45, top - 6), fmt(high), fill="black")
    draw.text((left - 45, bottom - 6), fmt(low), fill="black")
    draw.text((right - 60, bottom + 6), f"epoch {epochs}", fill="black")
