"""Pen strokes against PNG canvases: the worker's time per drawing, the frame's size, and agreement.

    .venv/bin/python -m benchmarks.ink [--count N] [--rounds 5] [--synthetic]

The drawings are UNIPEN's held-out writers (training/unipen.py) drawn on a 280x280 canvas as the
page draws (ink 70 % of the canvas high, centred, the page's pen), or synthetic stroke digits where
the data is absent (or with --synthetic). Each drawing is also painted as the page's canvas exports
it (black on white, round caps and joins, anti-aliased; benchmarks/canvases.py) to a PNG.

1. The worker's time to make the model's input: `ink.parse` of the stored strokes (a JSON list, as
   the row holds it) and `ink.rasterise`, against `preprocess` of the PNG (decode + preprocess).
   Each drawing is timed `rounds` times and keeps its best (the machine is shared); p50 and p99
   are over drawings.
2. The websocket frame: compact JSON `{"type": "drawing", "strokes", "width", "height", "pen",
   "ref": "1"}` with x, y to 0.1 px and t in whole ms (UNIPEN's own points, t 10 ms apart, 150 ms
   between strokes), against `{"type": "drawing", "image": "data:image/png;base64,...", "ref": "1"}`
   with the canvas encoded at zlib's default level.
3. Whether the shipped model reads the same digit both ways, and how close the two inputs are: per
   drawing, the mean absolute difference of the 28x28 inputs, the least over shifts by up to 1 px.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from benchmarks import canvases
from recognizer import ink
from recognizer.model_files import shipped_path
from recognizer.preprocessing import preprocess
from training import unipen
from training.strokes import antialiased
from worker.inference import Predictor

PAGE = canvases.Canvas(0, 0, "dark_on_light", (255, 255, 255, 255), (0, 0, 0, 255))
SEED = 20261129


def synthetic(index: int, seed: int = SEED) -> tuple[dict, int]:
    """Synthetic drawing `index` and its digit: a stroke template of benchmarks/canvases.py bent as a
    hand would, at a random height, pen and place on a canvas of 200-600 px, sampled as pointer
    events; half of them jagged as a mouse makes them, a quarter with t on every point."""
    rng = np.random.default_rng([seed, index])
    canvas = canvases.sample_canvas(rng)
    label = int(rng.integers(10))
    strokes = canvases.bend(canvases.DIGIT_TEMPLATES[str(rng.choice(canvases.VARIANTS[label]))][1], rng)
    ink_height = rng.uniform(*canvases.HEIGHT_SHARE) * canvas.height
    pen = canvases.sample_pen(rng, ink_height)
    path_width = max(float(np.concatenate(strokes)[:, 0].max()), 1e-6)
    scale = min(ink_height - pen, (canvas.width - 4 - pen) / path_width)
    left, top = canvases.place(rng, (path_width * scale + pen, scale + pen), canvas)
    spacing = max(2.0, rng.uniform(0.015, 0.05) * scale)
    mouse, timed = rng.random() < 0.5, rng.random() < 0.25
    body = []
    for stroke in strokes:
        points = canvases.pointer_events(stroke * scale + (left + pen / 2, top + pen / 2), spacing)
        if mouse:
            points = np.round(points + rng.normal(0, 0.5, points.shape))
        if timed:
            points = np.column_stack([points, 1000 + 8 * np.arange(len(points))])
        body.append(np.round(points, 1).tolist())
    return {"strokes": body, "width": canvas.width, "height": canvas.height, "pen": pen}, label


def on_page(body: dict) -> dict:
    """A synthetic drawing moved onto the page's 280x280 canvas, 70 % high and centred, the page's pen."""
    digit = unipen.PenDigit(tuple(np.asarray(stroke)[:, :2] for stroke in body["strokes"]), -1, "", "")
    return unipen.on_canvas(digit, (280, 280), 0.7)


def page_png(drawing: ink.Ink, compress_level: int = 1) -> bytes:
    """The drawing as the page's canvas exports it (black strokes on white) as PNG bytes."""
    coverage = antialiased(list(drawing.strokes), (drawing.width, drawing.height), drawing.pen)
    png = canvases.compose(coverage, PAGE)
    if compress_level == 1:  # compose's own level: fast, for tests
        return png
    buffer = io.BytesIO()
    Image.open(io.BytesIO(png)).save(buffer, "PNG", compress_level=compress_level)
    return buffer.getvalue()


def closeness(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per drawing: mean |a - b| over the 28x28 field, the least over shifts of a by up to 1 px each way
    (both paths round the centre of mass to a whole pixel; one near a half pixel may go either way)."""
    shifts = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    return np.min([np.abs(np.roll(a, shift, axis=(1, 2)) - b).mean(axis=(1, 2)) for shift in shifts], axis=0)


def with_time(body: dict) -> dict:
    """The body with t on every point: 10 ms apart, 150 ms between strokes, in whole ms from the first."""
    strokes, t = [], 0
    for stroke in body["strokes"]:
        strokes.append([[x, y, t + 10 * i] for i, (x, y, *_) in enumerate(stroke)])
        t += 10 * len(stroke) + 150
    return {**body, "strokes": strokes}


def best_times(function: Callable, arguments: Sequence, rounds: int) -> np.ndarray:
    """Each argument's best time over `rounds` calls, in ms."""
    best = np.full(len(arguments), np.inf)
    for _ in range(rounds):
        for i, argument in enumerate(arguments):
            started = time.perf_counter()
            function(argument)
            best[i] = min(best[i], time.perf_counter() - started)
    return best * 1000


def drawings(count: int | None, use_synthetic: bool) -> tuple[str, list[tuple[dict, int]]]:
    if not use_synthetic:
        try:
            digits = unipen.split("held_out")[:count]
            writers = len({digit.writer for digit in digits})
            source = f"{len(digits)} UNIPEN digits of {writers} held-out writers"
            return source, [(unipen.on_canvas(digit, (280, 280), 0.7), digit.label) for digit in digits]
        except FileNotFoundError:
            pass
    count = count or 500
    return f"{count} synthetic stroke digits", [(on_page(synthetic(i)[0]), synthetic(i)[1]) for i in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=None, help="drawings (default: every held-out digit)")
    parser.add_argument("--rounds", type=int, default=5, help="timed calls per drawing; each keeps its best")
    parser.add_argument("--synthetic", action="store_true", help="synthetic stroke digits, even with UNIPEN at hand")
    args = parser.parse_args()
    source, bodies = drawings(args.count, args.synthetic)
    stored = [ink.parse(with_time(body)).to_json() for body, _ in bodies]  # what the row holds
    inks = [ink.parse(body) for body, _ in bodies]
    pngs = [page_png(drawing, compress_level=6) for drawing in inks]
    rows = [
        {"strokes": row, "width": 280, "height": 280, "pen": drawing.pen}
        for row, drawing in zip(stored, inks, strict=True)
    ]

    parse = best_times(ink.parse, rows, args.rounds)
    rasterise = best_times(ink.rasterise, inks, args.rounds)
    both = best_times(lambda row: ink.rasterise(ink.Ink.from_stored(**row)), rows, args.rounds)
    image = best_times(preprocess, pngs, args.rounds)

    frames = [
        json.dumps({"type": "drawing", **with_time(body), "ref": "1"}, separators=(",", ":")) for body, _ in bodies
    ]
    data_urls = [
        json.dumps({"type": "drawing", "image": "data:image/png;base64," + base64.b64encode(png).decode(), "ref": "1"})
        for png in pngs
    ]

    model = Predictor.from_file(shipped_path())
    from_png = np.stack([preprocess(png) for png in pngs])
    from_strokes = np.stack([ink.rasterise(drawing) for drawing in inks])
    read_png, read_strokes = model.predict(from_png).argmax(axis=1), model.predict(from_strokes).argmax(axis=1)
    labels = np.array([label for _, label in bodies])
    close = closeness(from_png, from_strokes)
    points = [drawing.points for drawing in inks]

    def p(values: np.ndarray) -> str:
        return f"p50 {np.percentile(values, 50):.3f} ms, p99 {np.percentile(values, 99):.3f} ms"

    print(
        f"{source} on a 280x280 canvas, pen {inks[0].pen:.1f} px; points per drawing: median "
        f"{statistics.median(points):.0f}, p99 {np.percentile(points, 99):.0f}; strokes: median "
        f"{statistics.median(len(drawing.strokes) for drawing in inks):.0f}"
    )
    print(
        f"1. worker time to the model's input (best of {args.rounds} per drawing; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
    )
    print(f"   strokes: the web's check (parse)  {p(parse)}")
    print(f"            rasterise                {p(rasterise)}")
    print(f"            the worker: stored row -> Ink -> model input {p(both)}")
    typical = (np.array(points) >= 50) & (np.array(points) <= 150)
    print(f"            rasterise, 50-150 points {p(rasterise[typical])} ({int(typical.sum())} drawings)")
    print(f"   PNG:     decode + preprocess     {p(image)}")
    print("2. websocket frame of one drawing, median bytes")
    print(f"   strokes (x, y to 0.1 px, t in ms) {statistics.median(map(len, frames)):,.0f}")
    print(f"   PNG data URL                      {statistics.median(map(len, data_urls)):,.0f}")
    print("3. the two paths on these drawings (shipped model)")
    print(
        f"   same digit read                   {(read_png == read_strokes).mean() * 100:.2f} %"
        f" ({int((read_png != read_strokes).sum())} differ)"
    )
    accuracy = [(read == labels).mean() * 100 for read in (read_strokes, read_png)]
    print(f"   accuracy: strokes {accuracy[0]:.2f} %, PNG {accuracy[1]:.2f} %")
    print(
        f"   closeness (mean |difference|, best of 1 px shifts): mean {close.mean():.4f},"
        f" p99 {np.percentile(close, 99):.4f}, max {close.max():.4f}"
    )


if __name__ == "__main__":
    main()
