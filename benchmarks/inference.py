"""The inference budget in one worker process: decode + preprocess + predict for one drawing, and batched.

    .venv/bin/python -m benchmarks.inference [--count 500] [--size 280] [--model PATH] [--keras]

Canvases are MNIST-like sample digits (training/samples.py) in the four ink styles, as PNG files the way a browser
sends them. One drawing is timed end to end (PNG bytes -> probabilities) and by part (decoding,
and within it inflating the pixel data with the zlib Pillow runs on; the ink map; the MNIST recipe); the
batched figure is the worker's call on 64 preprocessed drawings at once (PREDICT_BATCH's
default). The model is the worker's: the LiteRT export (worker/inference.py), one thread.
The RSS is this process's, which has loaded the runtime and not TensorFlow; --keras then
times the Keras model the same way, for comparison (it loads TensorFlow, after the RSS).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import psutil
from PIL import Image, features

from recognizer.images import chunks
from recognizer.model_files import shipped_path
from recognizer.preprocessing import ink, preprocess, to_mnist
from training import samples
from worker.inference import Predictor


def decoded(png: bytes) -> Image.Image:
    with Image.open(io.BytesIO(png)) as image:
        image.load()
        return image


def compressed_pixels(png: bytes) -> bytes:
    """A PNG's pixel data as stored (its IDAT chunks joined): what decoding it inflates."""
    return b"".join(png[offset + 8 : offset + 8 + length] for offset, length, kind in chunks(png) if kind == b"IDAT")


def preprocessing_parts(canvases: list[bytes]) -> dict[str, float]:
    """The medians (ms) of preprocess's parts: decoding, inflating the pixel data alone, the ink, the recipe."""
    images = [decoded(canvas) for canvas in canvases]
    strengths = [ink(image) for image in images]
    return {
        "decode": statistics.median(timed(decoded, canvases)),
        "inflate": statistics.median(timed(zlib.decompress, [compressed_pixels(c) for c in canvases])),
        "ink": statistics.median(timed(ink, images)),
        "recipe": statistics.median(timed(lambda strength: to_mnist(strength, thin=True), strengths)),
    }


def timed(function, arguments) -> list[float]:
    times = []
    for argument in arguments:
        started = time.perf_counter()
        function(argument)
        times.append((time.perf_counter() - started) * 1000)
    return times


def per_second(predict, batch: np.ndarray, rounds: int = 10) -> float:
    predict(batch)
    started = time.perf_counter()
    for _ in range(rounds):
        predict(batch)
    return rounds * len(batch) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--size", type=int, default=280, help="canvas side in pixels")
    parser.add_argument("--model", type=Path, default=None, help="a .keras file with its .tflite (default: shipped)")
    parser.add_argument("--keras", action="store_true", help="also time the Keras model (loads TensorFlow)")
    args = parser.parse_args()
    images, _ = samples.digits(args.count)
    styles = list(samples.STYLES)
    side = round(args.size * 0.7)
    at = ((args.size - side) // 2, (args.size - side) // 2)
    canvases = [samples.digit_canvas(im, styles[i % 4], args.size, side, at) for i, im in enumerate(images)]
    path = args.model or shipped_path()
    model = Predictor.from_file(path)
    inputs = [preprocess(canvas)[None] for canvas in canvases]
    for x in inputs[:50]:  # warm up
        model.predict(x)
    one = timed(lambda canvas: model.predict(preprocess(canvas)[None]), canvases)
    decode = timed(preprocess, canvases)
    runtime = timed(model.predict, inputs)
    batch = np.concatenate((inputs * (64 // len(inputs) + 1))[:64])
    throughput = per_second(model.predict, batch, rounds=200)
    rss = psutil.Process().memory_info().rss / 2**20
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))
    parts = preprocessing_parts(canvases)  # after the RSS: it holds every canvas decoded
    print(f"model {model.version} (LiteRT export), one process, one thread, {args.count} {args.size} px PNG canvases")
    print(f"  one drawing, decode + preprocess + predict: p50 {statistics.median(one):.3f} ms")
    print(f"    decode + preprocess:                     p50 {statistics.median(decode):.3f} ms")
    print(f"      decode the PNG (Pillow):               p50 {parts['decode']:.3f} ms")
    zlib_version = f"zlib {features.version('zlib')}, the one Pillow runs on"
    print(f"        of which inflate its pixel data:     p50 {parts['inflate']:.3f} ms ({zlib_version})")
    print(f"      ink map:                               p50 {parts['ink']:.3f} ms")
    print(f"      MNIST recipe (fit, thin, centre):      p50 {parts['recipe']:.3f} ms")
    print(f"    predict (LiteRT, batch of one):          p50 {statistics.median(runtime):.3f} ms")
    print(f"  batched predict, 64 at a time:             {throughput:,.0f} drawings/s")
    print(f"  process RSS with the model loaded:         {rss:.0f} MB (TensorFlow/Keras modules loaded: {len(loaded)})")
    if args.keras:
        import keras
        import tensorflow as tf

        from training.export import configure_tensorflow

        configure_tensorflow()
        reference = keras.models.load_model(path, compile=False)
        # As workers predicted before the export: one traced call over any batch size.
        traced = tf.function(lambda x: reference(x, training=False)).get_concrete_function(
            tf.TensorSpec([None, 28, 28, 1], tf.float32)
        )

        def call(x: np.ndarray) -> np.ndarray:
            return traced(tf.constant(x[..., None])).numpy()

        for x in inputs[:50]:
            call(x)
        p50 = statistics.median(timed(call, inputs))
        rate = per_second(call, batch, rounds=200)
        rss_after = psutil.Process().memory_info().rss / 2**20
        print(
            f"  for comparison, Keras (traced call):       p50 {p50:.3f} ms, {rate:,.0f} drawings/s at 64,"
            f" RSS {rss_after:.0f} MB with TensorFlow too"
        )


if __name__ == "__main__":
    main()
