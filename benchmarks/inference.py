"""The inference budget in one worker process: decode + preprocess + predict for one drawing, and batched.

    .venv/bin/python -m benchmarks.inference [--count 500] [--size 280] [--model PATH]

Canvases are MNIST-like sample digits (training/samples.py) in the four ink styles, as PNG files the way a browser
sends them. One drawing is timed end to end (PNG bytes -> probabilities) and by part; the
batched figure is the compiled call on 1,024 preprocessed drawings at once. Threads as the
worker runs them (one). Also prints this process's RSS with the model loaded.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import psutil

from recognizer.model_files import shipped_path
from recognizer.preprocessing import preprocess
from training import samples
from worker.inference import Predictor


def timed(function, arguments) -> list[float]:
    times = []
    for argument in arguments:
        started = time.perf_counter()
        function(argument)
        times.append((time.perf_counter() - started) * 1000)
    return times


def per_second(model: Predictor, batch: np.ndarray, rounds: int = 10) -> float:
    model.predict(batch)
    started = time.perf_counter()
    for _ in range(rounds):
        model.predict(batch)
    return rounds * len(batch) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--size", type=int, default=280, help="canvas side in pixels")
    parser.add_argument("--model", type=Path, default=None, help="default: the shipped model")
    args = parser.parse_args()
    images, _ = samples.digits(args.count)
    styles = list(samples.STYLES)
    side = round(args.size * 0.7)
    at = ((args.size - side) // 2, (args.size - side) // 2)
    canvases = [samples.digit_canvas(im, styles[i % 4], args.size, side, at) for i, im in enumerate(images)]
    model = Predictor.from_file(args.model or shipped_path())
    inputs = [preprocess(canvas)[None] for canvas in canvases]
    for x in inputs[:50]:  # warm up
        model.predict(x)
    one = timed(lambda canvas: model.predict(preprocess(canvas)[None]), canvases)
    decode = timed(preprocess, canvases)
    compiled = timed(model.predict, inputs)
    keras_predict = timed(lambda x: model.model.predict(x, verbose=0), inputs[:50])
    batch = np.concatenate((inputs * (1024 // len(inputs) + 1))[:1024])
    rss = psutil.Process().memory_info().rss / 2**20
    print(f"model {model.version}, one process, one thread, {args.count} {args.size} px PNG canvases")
    print(f"  one drawing, decode + preprocess + predict: p50 {statistics.median(one):.3f} ms")
    print(f"    decode + preprocess:                     p50 {statistics.median(decode):.3f} ms")
    print(f"    predict (compiled call):                 p50 {statistics.median(compiled):.3f} ms")
    print(f"    predict (model.predict, for comparison): p50 {statistics.median(keras_predict):.3f} ms")
    print(f"  batched predict, 1,024 at a time:          {per_second(model, batch):,.0f} drawings/s")
    print(f"  process RSS with the model loaded:         {rss:.0f} MB")


if __name__ == "__main__":
    main()
