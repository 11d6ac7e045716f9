"""Inference cost in the worker: decode + preprocess, and predict by model.predict vs the compiled call.

.venv/bin/python -m benchmarks.inference [--count 500]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from tests import drawings
from worker.inference import Predictor, shipped_path
from worker.preprocessing import preprocess


def timed(function, arguments) -> list[float]:
    times = []
    for argument in arguments:
        started = time.perf_counter()
        function(argument)
        times.append((time.perf_counter() - started) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    args = parser.parse_args()
    images, _ = drawings.mnist_digits(args.count)
    styles = list(drawings.STYLES)
    canvases = [drawings.mnist_canvas(image, styles[i % 4]) for i, image in enumerate(images)]
    model = Predictor.from_file(shipped_path())
    inputs = [preprocess(canvas)[None] for canvas in canvases]
    model.model.predict(inputs[0], verbose=0)  # warm up both paths
    model.predict(inputs[0])
    decode = timed(preprocess, canvases)
    compiled = timed(model.predict, inputs)
    keras_predict = timed(lambda x: model.model.predict(x, verbose=0), inputs[:100])
    batch = np.concatenate(inputs[:256])
    started = time.perf_counter()
    for _ in range(10):
        model.predict(batch)
    per_second = 10 * len(batch) / (time.perf_counter() - started)
    print(f"model {model.version}, one worker process, one thread, {args.count} 280 px canvases")
    print(f"  decode + preprocess:      p50 {statistics.median(decode):.3f} ms")
    print(f"  compiled call, 1 image:   p50 {statistics.median(compiled):.3f} ms")
    print(f"  model.predict, 1 image:   p50 {statistics.median(keras_predict):.3f} ms")
    print(f"  compiled call, batch 256: {per_second:,.0f} drawings/s")


if __name__ == "__main__":
    main()
