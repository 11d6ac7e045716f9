"""What retraining on relabeled drawings does: blocky seven-segment digits, as some people draw them.

    .venv/bin/python -m benchmarks.retrain_effect [--labeled 300] [--epochs 1]

Works in a scratch SQLite database of its own: stores LABELED seven-segment drawings with staff
labels, runs the same retraining as `manage.py retrain`, and prints accuracy before and after
on other seven-segment drawings (never trained on) and on MNIST test.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import tempfile

import django
import numpy as np
from PIL import Image, ImageDraw

SEGMENTS = {
    "a": [(0.2, 0.05), (0.8, 0.05)], "b": [(0.8, 0.05), (0.8, 0.5)], "c": [(0.8, 0.5), (0.8, 0.95)],
    "d": [(0.2, 0.95), (0.8, 0.95)], "e": [(0.2, 0.5), (0.2, 0.95)], "f": [(0.2, 0.05), (0.2, 0.5)],
    "g": [(0.2, 0.5), (0.8, 0.5)],
}  # fmt: skip
DIGITS = {0: "abcdef", 1: "bc", 2: "abged", 3: "abgcd", 4: "fgbc", 5: "afgcd", 6: "afgedc", 7: "abc", 8: "abcdefg",
          9: "abcdfg"}  # fmt: skip


def seven_segment(digit: int, rng: np.random.Generator) -> bytes:
    """A blocky digit on a 280 px canvas: random size, place, slant and pen width."""
    image = Image.new("RGB", (280, 280), "white")
    pen = ImageDraw.Draw(image)
    side, angle, width = rng.uniform(120, 220), math.radians(rng.uniform(-12, 12)), int(rng.uniform(8, 24))
    left, top = rng.uniform(10, 270 - side), rng.uniform(10, 270 - side)
    for segment in DIGITS[digit]:
        points = []
        for x, y in SEGMENTS[segment]:
            x, y = x - 0.5, y - 0.5
            x, y = x * math.cos(angle) - y * math.sin(angle), x * math.sin(angle) + y * math.cos(angle)
            points.append((left + (x * 0.8 + 0.5) * side, top + (y + 0.5) * side))
        pen.line(points, fill="black", width=width)
        for px, py in points:
            pen.ellipse((px - width / 2, py - width / 2, px + width / 2, py + width / 2), fill="black")
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labeled", type=int, default=300, help="relabeled drawings to retrain on")
    parser.add_argument("--held-out", type=int, default=500, help="other drawings to measure on")
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    scratch = tempfile.mkdtemp(prefix="digits-retrain-")
    os.environ["DATABASE_URL"] = f"sqlite:///{scratch}/db.sqlite3"
    django.setup()
    from django.core.management import call_command

    from recognizer.model_files import shipped_path
    from recognizer.models import Drawing
    from recognizer.preprocessing import preprocess
    from training import mnist
    from training.retraining import retrain
    from worker.inference import Predictor

    call_command("migrate", verbosity=0)
    rng = np.random.default_rng(7)
    for i in range(args.labeled):
        data = seven_segment(i % 10, rng)
        Drawing.objects.create(image=data, content_type="image/png", width=280, height=280, source="api", label=i % 10)
    held_labels = np.arange(args.held_out) % 10
    held = np.stack(
        [preprocess(seven_segment(int(d), np.random.default_rng(10_000 + i))) for i, d in enumerate(held_labels)]
    )
    x_test, y_test = mnist.load("test")
    x_test = x_test.astype(np.float32) / 255

    def score(predictor: Predictor) -> tuple[float, float]:
        return (
            float((predictor.predict(held).argmax(1) == held_labels).mean()),
            float((predictor.predict(x_test).argmax(1) == y_test).mean()),
        )

    before = score(Predictor.from_file(shipped_path()))
    outcome = retrain(epochs=args.epochs, holdout=0.2, log=lambda line: print("  " + line))
    after = score(Predictor(bytes(outcome.version.runtime_artifact), outcome.version.version))
    print(f"retrained on {args.labeled} relabeled seven-segment drawings ({args.epochs} epoch, with all of MNIST)")
    print(f"  seven-segment drawings never trained on: {before[0]:.1%} -> {after[0]:.1%}  ({args.held_out} drawings)")
    print(f"  MNIST test:                              {before[1]:.2%} -> {after[1]:.2%}")
    print(f"  {outcome.version.version}: {'activated' if outcome.promoted else 'not activated'} ({outcome.reason})")


if __name__ == "__main__":
    main()
