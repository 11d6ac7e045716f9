"""How the served model does on canvas drawings: accuracy by ink style, source, pen, size and digit.

.venv/bin/python -m benchmarks.canvas_suite [--count 2000] [--seed 7] [--model PATH] [--save-failures DIR]

Renders `count` digit canvases (half MNIST test digits, half pen strokes; benchmarks/canvases.py)
and a fifth as many of each non-digit kind, and sends them through the worker's own
preprocessing and model. A canvas answered blank counts as wrong. Non-digits are not in the
accuracy: the suite reports how many the model flags uncertain (or calls blank) instead.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from benchmarks import canvases
from benchmarks.canvases import Drawing
from recognizer.model_files import shipped_path
from recognizer.preprocessing import BlankDrawing, preprocess
from training import calibration, mnist
from worker.inference import Predictor

BATCH = 500
# Bucket edges: a value goes to the last bucket whose lower edge it reaches. The pen of an MNIST
# digit is measured on the canvas, so it can come out a little outside 4-30 px.
PEN_BUCKETS = {"4-8": 0, "8-16": 8, "16-30": 16}
HEIGHT_BUCKETS = {"25-45 %": 0, "45-65 %": 0.45, "65-90 %": 0.65}


def bucket(value: float, buckets: dict[str, float]) -> str:
    return [name for name, low in buckets.items() if value >= low][-1]


def classify(predictor: Predictor, drawings: Sequence[Drawing]) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities (N, 10), blank (N,)): rows of canvases answered blank are all zero."""
    inputs = np.zeros((len(drawings), 28, 28), np.float32)
    blank = np.zeros(len(drawings), bool)
    for i, drawing in enumerate(drawings):
        try:
            inputs[i] = preprocess(drawing.png)
        except BlankDrawing:
            blank[i] = True
    probabilities = np.zeros((len(drawings), 10), np.float32)
    answered = np.flatnonzero(~blank)
    for start in range(0, len(answered), BATCH):
        rows = answered[start : start + BATCH]
        probabilities[rows] = predictor.predict(inputs[rows])
    return probabilities, blank


class Results:
    """The digit canvases with their answers, sliced into the table's rows."""

    def __init__(self, drawings: list[Drawing], probabilities: np.ndarray, blank: np.ndarray, line: float) -> None:
        self.drawings = drawings
        self.labels = np.array([int(d.label) for d in drawings])
        self.blank = blank
        self.probabilities = probabilities
        self.predicted = np.where(blank, -1, probabilities.argmax(axis=1))
        self.correct = self.predicted == self.labels
        self.uncertain = ~blank & (probabilities.max(axis=1) < line)

    def where(self, test: Callable[[Drawing], bool]) -> np.ndarray:
        return np.array([test(d) for d in self.drawings], bool)

    def row(self, name: str, members: np.ndarray) -> str:
        n = int(members.sum())
        if n == 0:
            return f"  {name:<22}{0:>6}"
        sure = members & ~self.uncertain & ~self.blank
        sure_accuracy = f"{self.correct[sure].mean():>10.3f}" if sure.any() else f"{'-':>10}"
        return (
            f"  {name:<22}{n:>6}{self.correct[members].mean():>8.3f}{self.uncertain[members].mean():>11.3f}"
            f"{sure_accuracy}{int(self.blank[members].sum()):>7}"
        )


def digit_table(results: Results) -> list[str]:
    lines = [f"  {'digit canvases':<22}{'n':>6}{'acc':>8}{'uncertain':>11}{'acc sure':>10}{'blank':>7}"]
    lines.append(results.row("all", results.where(lambda d: True)))
    groups: list[tuple[str, list[tuple[str, Callable[[Drawing], bool]]]]] = [
        ("style", [(s, lambda d, s=s: d.style == s) for s in canvases.STYLES]),
        ("source", [(s, lambda d, s=s: d.source == s) for s in ("mnist", "strokes")]),
        ("input (strokes)", [(s, lambda d, s=s: d.device == s) for s in ("mouse", "touch")]),
        ("pen px", [(b, lambda d, b=b: bucket(d.pen, PEN_BUCKETS) == b) for b in PEN_BUCKETS]),
        ("digit height", [(b, lambda d, b=b: bucket(d.height_share, HEIGHT_BUCKETS) == b) for b in HEIGHT_BUCKETS]),
        ("canvas", [("square", lambda d: d.size[0] == d.size[1]), ("not square", lambda d: d.size[0] != d.size[1])]),
    ]  # fmt: skip
    for title, rows in groups:
        lines.append(f"  {title}")
        lines.extend(results.row(f"  {name}", results.where(test)) for name, test in rows)
    return lines


def per_digit_table(results: Results) -> list[str]:
    """Accuracy per true digit and source, one line per source."""
    lines = [f"  {'accuracy per digit':<22}" + "".join(f"{k:>6}" for k in range(10))]
    for source in ("strokes", "mnist"):
        cells = []
        for k in range(10):
            members = results.where(lambda d, k=k, source=source: d.source == source and d.label == str(k))
            cells.append(f"{results.correct[members].mean():>6.2f}" if members.any() else f"{'-':>6}")
        lines.append(f"    {source:<20}" + "".join(cells))
    return lines


def variant_table(results: Results) -> list[str]:
    """Accuracy per stroke template, four to a line."""
    cells = []
    for variant in canvases.DIGIT_TEMPLATES:
        members = results.where(lambda d, v=variant: d.variant == v)
        if members.any():
            cells.append(f"{variant:<14}{results.correct[members].mean():.2f} ({int(members.sum()):>3})")
    return ["  " + "   ".join(cells[i : i + 4]) for i in range(0, len(cells), 4)]


def confusions(results: Results, top: int = 10) -> str:
    wrong = Counter(
        f"{label}->{'blank' if p < 0 else p}"
        for label, p in zip(results.labels, results.predicted, strict=True)
        if label != p
    )
    return "  " + ", ".join(f"{pair} {n}" for pair, n in wrong.most_common(top))


def other_table(drawings: list[Drawing], probabilities: np.ndarray, blank: np.ndarray, line: float) -> list[str]:
    uncertain = ~blank & (probabilities.max(axis=1) < line)
    kinds = np.array([d.kind for d in drawings])
    lines = [f"  {'non-digit canvases':<22}{'n':>6}{'uncertain':>11}{'blank':>8}{'flagged':>9}  most common answers"]
    for kind in canvases.OTHER_KINDS:
        members = kinds == kind
        answers = Counter(int(p) for p in probabilities[members & ~blank].argmax(axis=1)).most_common(3)
        lines.append(
            f"  {kind:<22}{int(members.sum()):>6}{uncertain[members].mean():>11.3f}{blank[members].mean():>8.3f}"
            f"{(uncertain | blank)[members].mean():>9.3f}  " + " ".join(f"{a}:{n}" for a, n in answers)
        )
    letters = [d.label for d in drawings]
    cells = []
    for letter in canvases.LETTER_TEMPLATES:
        members = np.array([x == letter for x in letters])
        if members.any():
            answer = Counter(int(p) for p in probabilities[members & ~blank].argmax(axis=1)).most_common(1)
            said = f"->{answer[0][0]}" if answer else ""
            cells.append(f"{letter} {(uncertain | blank)[members].mean():.2f}{said}")
    lines.append("  letters flagged, most common answer: " + "  ".join(cells))
    return lines


def save_failures(results: Results, directory: Path) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    failed = np.flatnonzero(~results.correct)
    for i in failed:
        d = results.drawings[i]
        said = "blank" if results.blank[i] else f"{results.predicted[i]}-{results.probabilities[i].max():.2f}"
        name = f"{i:05d}_true{d.label}_pred{said}_{d.variant}_{d.style}_pen{d.pen:.0f}_{d.size[0]}x{d.size[1]}.png"
        (directory / name).write_bytes(d.png)
    return len(failed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="digit canvases")
    parser.add_argument("--others", type=int, help="canvases of each non-digit kind (default count / 5)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--model", type=Path, default=shipped_path())
    parser.add_argument("--save-failures", type=Path, metavar="DIR", help="write misclassified digit canvases here")
    args = parser.parse_args()
    others = args.count // 5 if args.others is None else args.others

    started = time.perf_counter()
    images, labels = mnist.load("test")
    digits = [canvases.digit_drawing(i, args.seed, images, labels) for i in range(args.count)]
    non_digits = [canvases.other_drawing(i, args.seed, kind) for kind in canvases.OTHER_KINDS for i in range(others)]
    rendered = time.perf_counter() - started
    predictor = Predictor.from_file(args.model)
    line = predictor.uncertain_below
    probabilities, blank = classify(predictor, digits + non_digits)
    results = Results(digits, probabilities[: len(digits)], blank[: len(digits)], line)
    answered = ~results.blank

    print(f"model {predictor.version} ({args.model}), uncertain below {line:.3f}")
    print(f"{len(digits)} digit canvases + {len(non_digits)} others, seed {args.seed}, rendered in {rendered:.0f} s")
    print()
    print("\n".join(digit_table(results)))
    print("\n".join(per_digit_table(results)))
    print("  stroke templates: accuracy (n)")
    print("\n".join(variant_table(results)))
    print("  most common mistakes (true->answer count):")
    print(confusions(results))
    error = calibration.ece(results.probabilities[answered], results.labels[answered])
    print(f"  calibration error (ECE, {calibration.BINS} bins) over answered digit canvases: {error:.3f}")
    print()
    print("\n".join(other_table(non_digits, probabilities[len(digits) :], blank[len(digits) :], line)))
    if args.save_failures:
        print(f"\n{save_failures(results, args.save_failures)} failures written to {args.save_failures}")


if __name__ == "__main__":
    main()
