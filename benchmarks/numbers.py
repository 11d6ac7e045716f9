"""Reading numbers: whole numbers right, digit errors, kinds of error, and the worker's time.

    .venv/bin/python -m benchmarks.numbers [--count 2000] [--split held_out] [--styles 4]
    .venv/bin/python -m benchmarks.numbers --fit    # reading.WEIGHTS, IMAGE_WEIGHTS fitted anew
    .venv/bin/python -m benchmarks.numbers --timing-only [--count 200]    # only the worker's time (4.)

Numbers of 2-5 digits from UNIPEN's held-out writers (training/numbers.py: several digits of one
writer left to right, gaps from a slight overlap to a wide space, a wandering baseline), read the
way the worker reads a number drawing (recognizer/segmentation.py, the shipped model):

1. as strokes (`from_ink`), and the same numbers painted on canvases in the four ink styles
   (benchmarks/canvases.py) and read from their PNG (`from_image`); MNIST test digits side by side
   (the project's made digits without the MNIST files), from their PNG; numbers whose pen ran on
   from one digit into the next (one stroke through two digits), and numbers whose digits vary
   more in size (training.numbers.VARIED_SIZES), as strokes; numbers written with a comma, an
   apostrophe or a minus sign (training.numbers.MARKS), as strokes and canvases: right when the
   digits are read and the mark left out;
2. per source: the whole number exactly right, by length; the digit error rate (edit distance over
   the digits written); the kinds of error: a digit misread (same length), two merged (fewer),
   one split (more), order (the right digits in another order); for strokes also what the model
   reads in each digit's true box, the most a perfect segmentation could reach with this model;
3. single digits of the same writers in number mode (read as exactly that one digit) against
   digit mode (`ink.rasterise` of the whole drawing, as the worker reads it);
4. the worker's time for a 5-digit number, as strokes and as a canvas PNG: segmentation (candidates
   drawn) + one model call + the choice, the best of `rounds` per drawing, median and p90 over drawings.

Develop on `--split train` or `calibration`; the figures are on `held_out`.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import time
from collections.abc import Callable

import numpy as np

from benchmarks import canvases
from recognizer import ink, reading, segmentation
from recognizer.model_files import shipped_path
from training import mnist, numbers, samples, unipen
from worker.inference import Predictor

SEED = 20261129
CHUNK = 64  # numbers read together: the candidates of a chunk go through the model in one call


def edit_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (x != y))
    return row[-1]


def kind_of_error(truth: str, read: str) -> str:
    if len(read) < len(truth):
        return "merged"
    if len(read) > len(truth):
        return "split"
    return "order" if sorted(read) == sorted(truth) else "misread"


def read_all(drawings: list, segment: Callable, model: Predictor) -> list[str]:
    """What the worker reads for each drawing: candidates per drawing, one model call per CHUNK."""
    read = []
    for start in range(0, len(drawings), CHUNK):
        chunk = [segment(d) for d in drawings[start : start + CHUNK]]
        read += [r.number for r in reading.read_all(chunk, model.predict)]
    return read


def true_boxes(pen: list[numbers.Number], model: Predictor) -> list[str]:
    """What the model reads in each digit's true box (`segmentation.box_input`): the numbers read
    right with a perfect segmentation, the most any segmentation could reach with this model."""
    inputs = [segmentation.box_input(ink.parse(n.body), box) for n in pen for box in n.boxes]
    digits = iter(model.predict(np.stack(inputs)).argmax(axis=1).tolist())
    return ["".join(str(next(digits)) for _ in n.boxes) for n in pen]


def report(name: str, truths: list[str], read: list[str]) -> None:
    right = [t == r for t, r in zip(truths, read, strict=True)]
    digits = sum(map(len, truths))
    errors = sum(edit_distance(t, r) for t, r in zip(truths, read, strict=True))
    by_length = collections.defaultdict(list)
    for truth, ok in zip(truths, right, strict=True):
        by_length[len(truth)].append(ok)
    lengths = ", ".join(f"{n}: {np.mean(v):.1%} of {len(v)}" for n, v in sorted(by_length.items()))
    kinds = collections.Counter(kind_of_error(t, r) for t, r in zip(truths, read, strict=True) if t != r)
    # Half the binomial 95 % interval: what the draw of numbers alone moves the figure by (more, as
    # the numbers share their writers). Two versions read on the same numbers differ by less.
    share = float(np.mean(right))
    noise = 1.96 * (share * (1 - share) / len(right)) ** 0.5
    print(f"{name}: {share:.2%} ± {noise:.2%} of {len(truths)} numbers exactly right ({lengths})")
    print(f"    digit error rate {errors / digits:.2%} ({errors} edits over {digits} digits); errors: {dict(kinds)}")


def png(coverage: np.ndarray, rng: np.random.Generator, style: str) -> bytes:
    """Ink coverage as a canvas in an ink style, as the page's canvas exports it."""
    background, colour = canvases.sample_colours(style, rng)
    canvas = canvases.Canvas(coverage.shape[1], coverage.shape[0], style, background, colour)
    return canvases.compose(coverage, canvas)


def painted(number: numbers.Number, index: int, styles: int) -> bytes:
    """A pen number as a canvas PNG, in one of the first `styles` ink styles."""
    return png(numbers.painted_body(number.body), np.random.default_rng([SEED, index]), canvases.STYLES[index % styles])


def mnist_digits() -> tuple[np.ndarray, np.ndarray, str]:
    try:
        images, labels = mnist.load("test")
        return images, labels, "MNIST test"
    except FileNotFoundError:
        images, labels = samples.digits(1000)
        return images, labels, "made digits (no MNIST files)"


def single_digits(model: Predictor, split: str, count: int) -> None:
    """The same writers' single digits, on the page's canvas: number mode against digit mode."""
    digits = [d for d in unipen.split(split) if d.writer in numbers.writers(split)][:count]
    inks = [ink.parse(unipen.on_canvas(d, (280, 280), 0.7)) for d in digits]
    labels = np.array([d.label for d in digits])
    digit_mode = (model.predict(np.stack([ink.rasterise(i) for i in inks])).argmax(axis=1) == labels).mean()
    read = read_all(inks, segmentation.from_ink, model)
    number_mode = np.mean([r == str(label) for r, label in zip(read, labels, strict=True)])
    print(f"single digits ({len(digits)}): digit mode {digit_mode:.2%}, number mode {number_mode:.2%} "
          f"({number_mode / digit_mode:.1%} of digit mode); read as more or fewer than one digit: "
          f"{np.mean([len(r) != 1 for r in read]):.2%}")  # fmt: skip


def timing(model: Predictor, split: str, count: int, rounds: int) -> None:
    """The worker's time for one 5-digit number: segmentation + reading (the candidates the model is
    to read drawn, one or two model calls) + the choice, as strokes and as a canvas PNG (decoding included)."""
    pen = [numbers.pen_number(i, split, SEED, length=5) for i in range(count)]
    sources = {
        "strokes": ([ink.parse(n.body) for n in pen], segmentation.from_ink),
        "canvas PNG": ([painted(n, i, 4) for i, n in enumerate(pen)], segmentation.from_image),
    }
    for name, (drawings, segment) in sources.items():
        segment_ms, total_ms, candidates = [], [], []
        for drawing in drawings:
            best_segment, best_total = float("inf"), float("inf")
            for _ in range(rounds):
                t0 = time.perf_counter()
                candidates_of = segment(drawing)
                t1 = time.perf_counter()
                reading.read_all([candidates_of], model.predict)
                t2 = time.perf_counter()
                best_segment, best_total = min(best_segment, t1 - t0), min(best_total, t2 - t0)
            segment_ms.append(best_segment * 1000)
            total_ms.append(best_total * 1000)
            candidates.append(len(candidates_of.candidates))
        print(f"a 5-digit number, {name} ({count} drawings, best of {rounds}): segmentation "
              f"{statistics.median(segment_ms):.2f} ms, segmentation + predict + choice "
              f"{statistics.median(total_ms):.2f} ms median, {np.percentile(total_ms, 90):.2f} ms p90; "
              f"{statistics.mean(candidates):.1f} candidates")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="numbers per source")
    parser.add_argument("--split", default="held_out", choices=list(unipen.SPLITS))
    parser.add_argument("--styles", type=int, default=4, help="ink styles the canvases cycle through")
    parser.add_argument("--rounds", type=int, default=5, help="timings per drawing (the best is kept)")
    parser.add_argument(
        "--fit",
        action="store_true",
        help="only refine reading.WEIGHTS and IMAGE_WEIGHTS on the calibration writers, and print them",
    )
    parser.add_argument("--timing-only", action="store_true", help="only the worker's time for a 5-digit number")
    args = parser.parse_args()
    model = Predictor.from_file(shipped_path())
    if args.timing_only:
        timing(model, args.split, min(args.count, 200), args.rounds)
        return
    if args.fit:
        for name, on_images in (("WEIGHTS", False), ("IMAGE_WEIGHTS", True)):
            start = getattr(reading, name)
            weights = numbers.fit_weights(model.predict, numbers.painted_body, on_images, start=start)
            print(f"{name} = (" + ", ".join(f"{w:.3f}" for w in weights) + ")")
        return
    print(f"model {model.version}; {args.split} writers: {len(numbers.writers(args.split))}")
    pen = [numbers.pen_number(i, args.split, SEED) for i in range(args.count)]
    truths = [n.label for n in pen]
    report("strokes", truths, read_all([ink.parse(n.body) for n in pen], segmentation.from_ink, model))
    report("(strokes, each digit's true box: the model's own limit)", truths, true_boxes(pen, model))
    pictures = [painted(n, i, args.styles) for i, n in enumerate(pen)]
    report("canvas images", truths, read_all(pictures, segmentation.from_image, model))
    varied = [numbers.pen_number(i, args.split, SEED + 2, sizes=numbers.VARIED_SIZES) for i in range(args.count // 4)]
    report(
        f"strokes, digits {numbers.VARIED_SIZES[0]}-{numbers.VARIED_SIZES[1]} of the line's height",
        [n.label for n in varied],
        read_all([ink.parse(n.body) for n in varied], segmentation.from_ink, model),
    )
    joined = [numbers.pen_number(i, args.split, SEED + 1, joined=True) for i in range(args.count // 4)]
    inks = [ink.parse(n.body) for n in joined]
    report(
        "strokes, one stroke through two digits",
        [n.label for n in joined],
        read_all(inks, segmentation.from_ink, model),
    )
    for mark in numbers.MARKS:
        marked = [numbers.pen_number(i, args.split, SEED + 3, mark=mark) for i in range(args.count // 4)]
        truths = [n.label for n in marked]
        report(
            f"strokes ({mark})",
            truths,
            read_all([ink.parse(n.body) for n in marked], segmentation.from_ink, model),
        )
        pictures = [painted(n, i, args.styles) for i, n in enumerate(marked)]
        report(f"canvas images ({mark})", truths, read_all(pictures, segmentation.from_image, model))
    images, labels, source = mnist_digits()
    side_by_side = [numbers.mnist_number(i, images, labels, SEED) for i in range(args.count // 4)]
    rng = np.random.default_rng(SEED)
    pictures = [png(n.coverage, rng, canvases.STYLES[i % args.styles]) for i, n in enumerate(side_by_side)]
    report(
        f"{source} side by side, images",
        [n.label for n in side_by_side],
        read_all(pictures, segmentation.from_image, model),
    )
    single_digits(model, args.split, args.count)
    timing(model, args.split, min(args.count, 200), args.rounds)


if __name__ == "__main__":
    main()
