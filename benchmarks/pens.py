"""Reading by the pen's width: digits and numbers in pens from a hairline to a blot, as strokes and as images.

    .venv/bin/python -m benchmarks.pens [--split held_out] [--count 600]

The model learnt from pens up to a fifth of a digit's longer side (preprocessing.BOLDEST). The
page's pen is a share of its canvas, so a digit drawn small comes out bolder than that: a 60 px
digit in the page's 18 px pen is 0.3. Strokes in a bolder pen are drawn at BOLDEST; an image's
bold pen is measured and eroded towards it.

1. Lone digits of `split`'s UNIPEN writers on a 280 px canvas, 0.7 of it high, in pens of each
   share of the ink's height (the pen included): read from their strokes (`ink.rasterise`) and
   from the page's PNG of them (`preprocess`), as digit mode reads them.
2. Numbers of the same writers (training/numbers.py) in pens of a range of shares of the line's
   height, read in number mode from their strokes and from the canvas PNG (benchmarks/numbers.py).
"""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks.ink import page_png
from benchmarks.numbers import SEED, painted, read_all
from recognizer import ink, segmentation
from recognizer.model_files import shipped_path
from recognizer.preprocessing import preprocess
from training import numbers, unipen
from worker.inference import Predictor

DIGIT_PENS = (0.005, 0.02, 0.06, 0.12, 0.2, 0.25, 0.3, 0.4)
NUMBER_PENS = (numbers.PEN_SHARE, (0.15, 0.25), (0.25, 0.35))
HEIGHT = 0.7  # the digit's ink on the 280 px canvas, as benchmarks/ink.py draws it


def lone_digits(model: Predictor, split: str, count: int) -> None:
    digits = unipen.split(split)[:count]
    labels = np.array([d.label for d in digits])
    print(f"lone digits of {split} writers ({len(digits)}), digit mode: strokes / image")
    for share in DIGIT_PENS:
        inks = [ink.parse(unipen.on_canvas(d, (280, 280), HEIGHT, pen=share * HEIGHT * 280)) for d in digits]
        strokes = model.predict(np.stack([ink.rasterise(i) for i in inks])).argmax(axis=1)
        images = model.predict(np.stack([preprocess(page_png(i)) for i in inks])).argmax(axis=1)
        print(f"  pen {share:5.3f} of the digit: {np.mean(strokes == labels):7.2%} / {np.mean(images == labels):7.2%}")


def numbers_in(model: Predictor, split: str, count: int) -> None:
    print(f"numbers of {split} writers ({count} each), number mode: strokes / image (whole number right)")
    for pens in NUMBER_PENS:
        drawn = [numbers.pen_number(i, split, SEED, pens=pens) for i in range(count)]
        truths = [n.label for n in drawn]
        strokes = read_all([ink.parse(n.body) for n in drawn], segmentation.from_ink, model)
        images = read_all([painted(n, i, 4) for i, n in enumerate(drawn)], segmentation.from_image, model)
        right = [np.mean([t == r for t, r in zip(truths, read, strict=True)]) for read in (strokes, images)]
        print(f"  pens {pens[0]:.2f}-{pens[1]:.2f} of the line: {right[0]:7.2%} / {right[1]:7.2%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="held_out", choices=list(unipen.SPLITS))
    parser.add_argument("--count", type=int, default=600, help="lone digits, and numbers per range of pens")
    args = parser.parse_args()
    model = Predictor.from_file(shipped_path())
    print(f"model {model.version}")
    lone_digits(model, args.split, args.count)
    numbers_in(model, args.split, args.count)


if __name__ == "__main__":
    main()
