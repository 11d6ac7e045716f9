"""How the served model does on canvas drawings: accuracy by ink style, source, input, pen, size and digit.

.venv/bin/python -m benchmarks.canvas_suite [--count 2000] [--unipen N] [--seed 7] [--model PATH] [--save-failures DIR]

Renders `count` digit canvases (half MNIST test digits, half stroke templates; benchmarks/canvases.py),
a fifth as many of each non-digit kind, and the real pen digits of UNIPEN's held-out writers
(training/unipen.py; every one by default, the first N with --unipen N, none with 0), and sends
them to the worker's own paths and model. Every canvas goes the image way (`preprocess` of its
PNG); every drawing made of strokes also goes the stroke way (`ink.parse` and `ink.rasterise` of
the strokes the PNG was drawn from), so the two answers are for the same drawing. A drawing
answered blank counts as wrong. Non-digits are not in the accuracy: the suite reports how many
the model flags uncertain (or calls blank) instead.

Without MNIST's files the "mnist" canvases are the project's own made digits (training/samples.py),
and without UNIPEN's file its part is skipped; the report says so at the top.
"""

from __future__ import annotations

import argparse
import io
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from benchmarks import canvases
from benchmarks.canvases import Drawing
from recognizer import ink, preprocessing
from recognizer.model_files import shipped_path
from recognizer.preprocessing import BlankDrawing, preprocess
from training import calibration, mnist, samples, unipen, usps
from worker.inference import Predictor

BATCH = 500
SOURCE_NAMES = {
    "mnist": "mnist",
    "strokes": "synthetic strokes",
    "unipen": "unipen (held out)",
    "usps": "usps (held out)",
}
GRID_COLUMNS, GRID_CELL = 12, 96  # the misread grid: cells a row, and a cell's side in pixels
# Bucket edges: a value goes to the last bucket whose lower edge it reaches. The pen of an MNIST
# digit is measured on the canvas, so it can come out a little outside 4-30 px.
PEN_BUCKETS = {"4-8": 0, "8-16": 8, "16-30": 16}
HEIGHT_BUCKETS = {"25-45 %": 0, "45-65 %": 0.45, "65-90 %": 0.65}


def bucket(value: float, buckets: dict[str, float]) -> str:
    return [name for name, low in buckets.items() if value >= low][-1]


def model_input(drawing: Drawing, via: str = "image") -> np.ndarray:
    """The model's 28x28 input, the worker's way, from a drawing's strokes body or its PNG; BlankDrawing if blank."""
    if via == "strokes":
        return ink.rasterise(ink.parse(drawing.body))
    return preprocess(drawing.png)


def classify(predictor: Predictor, drawings: Sequence[Drawing], via: str = "image") -> tuple[np.ndarray, np.ndarray]:
    """(probabilities (N, 10), blank (N,)) with drawings sent `via` "image" or "strokes": blank rows are all zero."""
    inputs = np.zeros((len(drawings), 28, 28), np.float32)
    blank = np.zeros(len(drawings), bool)
    for i, drawing in enumerate(drawings):
        try:
            inputs[i] = model_input(drawing, via)
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
        self.line = line
        self.labels = np.array([int(d.label) for d in drawings])
        self.blank = blank
        self.probabilities = probabilities
        self.predicted = np.where(blank, -1, probabilities.argmax(axis=1))
        self.correct = self.predicted == self.labels
        self.uncertain = ~blank & (probabilities.max(axis=1) < line)

    def where(self, test: Callable[[Drawing], bool]) -> np.ndarray:
        return np.array([test(d) for d in self.drawings], bool)

    def subset(self, members: np.ndarray) -> Results:
        drawings = [d for d, member in zip(self.drawings, members, strict=True) if member]
        return Results(drawings, self.probabilities[members], self.blank[members], self.line)

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


Group = tuple[str, list[tuple[str, Callable[[Drawing], bool]]]]  # a title, and each row's name and test


def look_groups() -> list[Group]:
    """Rows by how a drawing looks: ink style, pen, the digit's height, the canvas's shape."""
    return [
        ("style", [(s, lambda d, s=s: d.style == s) for s in canvases.STYLES]),
        ("pen px", [(b, lambda d, b=b: bucket(d.pen, PEN_BUCKETS) == b) for b in PEN_BUCKETS]),
        ("digit height", [(b, lambda d, b=b: bucket(d.height_share, HEIGHT_BUCKETS) == b) for b in HEIGHT_BUCKETS]),
        ("canvas", [("square", lambda d: d.size[0] == d.size[1]), ("not square", lambda d: d.size[0] != d.size[1])]),
    ]  # fmt: skip


def digit_table(results: Results) -> list[str]:
    lines = [f"  {'digit canvases':<22}{'n':>6}{'acc':>8}{'uncertain':>11}{'acc sure':>10}{'blank':>7}"]
    lines.append(results.row("all", results.where(lambda d: True)))
    style, *rest = look_groups()
    groups = [
        style,
        ("source", [(s, lambda d, s=s: d.source == s) for s in ("mnist", "strokes")]),
        ("device (templates)", [(s, lambda d, s=s: d.device == s) for s in ("mouse", "touch")]),
        *rest,
    ]
    for title, rows in groups:
        lines.append(f"  {title}")
        lines.extend(results.row(f"  {name}", results.where(test)) for name, test in rows)
    return lines


def digit_cells(results: Results) -> str:
    """Accuracy per true digit, 0 to 9."""
    cells = []
    for k in range(10):
        members = results.where(lambda d, k=k: d.label == str(k))
        cells.append(f"{results.correct[members].mean():>6.2f}" if members.any() else f"{'-':>6}")
    return "".join(cells)


def per_digit_table(results: Results) -> list[str]:
    """Accuracy per true digit and source, one line per source."""
    lines = [f"  {'accuracy per digit':<22}" + "".join(f"{k:>6}" for k in range(10))]
    for source in ("strokes", "mnist"):
        lines.append(
            f"    {source:<20}" + digit_cells(results.subset(results.where(lambda d, s=source: d.source == s)))
        )
    return lines


def variant_table(results: Results) -> list[str]:
    """Accuracy per stroke template, four to a line."""
    cells = []
    for variant in canvases.DIGIT_TEMPLATES:
        members = results.where(lambda d, v=variant: d.variant == v)
        if members.any():
            cells.append(f"{variant:<14}{results.correct[members].mean():.2f} ({int(members.sum()):>3})")
    return ["  " + "   ".join(cells[i : i + 4]) for i in range(0, len(cells), 4)]


# --- the same drawings both ways: as strokes and as an image ---------------------------------------


def paired_header(title: str) -> str:
    columns = ("acc strokes", "acc image", "same digit", "unc strokes", "unc image", "blank s/i")
    return f"  {title:<22}{'n':>6}" + "".join(f"{c:>12}" for c in columns)


def paired_row(name: str, strokes: Results | None, image: Results) -> str:
    """Accuracy and uncertain share of the same drawings sent as strokes and as an image, and the
    share of them read as the same digit both ways (a blank answer is a digit of its own here)."""
    n = len(image.drawings)
    if n == 0:
        return f"  {name:<22}{0:>6}"
    if strokes is None:  # drawn as pixels only (MNIST): no strokes to send
        return (
            f"  {name:<22}{n:>6}{'-':>12}{image.correct.mean():>12.3f}{'-':>12}{'-':>12}"
            f"{image.uncertain.mean():>12.3f}{f'-/{image.blank.sum()}':>12}"
        )
    same = (strokes.predicted == image.predicted).mean()
    blank = f"{strokes.blank.sum()}/{image.blank.sum()}"
    return (
        f"  {name:<22}{n:>6}{strokes.correct.mean():>12.3f}{image.correct.mean():>12.3f}{same:>12.1%}"
        f"{strokes.uncertain.mean():>12.3f}{image.uncertain.mean():>12.3f}{blank:>12}"
    )


def made_of_strokes(results: Results) -> Results:
    return results.subset(results.where(lambda d: d.body is not None))


def both_ways(predictor: Predictor, image: Results) -> Results:
    """The drawings of `image` that are made of strokes, answered the stroke way, in the same order."""
    drawings = made_of_strokes(image).drawings
    return Results(drawings, *classify(predictor, drawings, "strokes"), image.line)


def pair(strokes: Results, image: Results, test: Callable[[Drawing], bool]) -> tuple[Results, Results]:
    """The drawings made of strokes that pass `test`, answered both ways, in the same order."""
    image = made_of_strokes(image)
    return strokes.subset(strokes.where(test)), image.subset(image.where(test))


def source_table(strokes: Results, image: Results) -> list[str]:
    """Accuracy per source and input: each drawing made of strokes is sent both ways."""
    lines = [paired_header("source x input")]
    for source, name in SOURCE_NAMES.items():
        members = image.where(lambda d, s=source: d.source == s)
        if not members.any():
            continue
        if not image.subset(members).where(lambda d: d.body is not None).any():  # pixels only: MNIST, USPS
            lines.append(paired_row(name, None, image.subset(members)))
        else:
            lines.append(paired_row(name, *pair(strokes, image, lambda d, s=source: d.source == s)))
    return lines


def unipen_report(strokes: Results, image: Results, held: list[unipen.PenDigit]) -> list[str]:
    """UNIPEN's held-out writers both ways: by look, label quality and digit, their mistakes and writers."""
    strokes, image = pair(strokes, image, lambda d: d.source == "unipen")
    writers = [digit.writer for digit in held]
    lines = [f"UNIPEN held-out writers: {len(held)} digits of {len(set(writers))} writers, each sent both ways"]
    lines += [paired_header("unipen digits"), paired_row("all", strokes, image)]
    for title, rows in look_groups():
        lines.append(f"  {title}")
        for name, test in rows:
            lines.append(paired_row(f"  {name}", strokes.subset(strokes.where(test)), image.subset(image.where(test))))
    lines.append("  label quality")
    for quality, name in (("OK", "checked (OK)"), ("?", "unchecked (?)")):
        members = np.array([digit.quality == quality for digit in held])
        lines.append(paired_row(f"  {name}", strokes.subset(members), image.subset(members)))
    lines.append(f"  {'accuracy per digit':<22}" + "".join(f"{k:>6}" for k in range(10)))
    lines += [f"    {'strokes':<20}{digit_cells(strokes)}", f"    {'image':<20}{digit_cells(image)}"]
    lines.append("  most common mistakes (true->answer count):")
    lines += [f"    strokes: {confusions(strokes).strip()}", f"    image:   {confusions(image).strip()}"]
    misread = Counter(writer for writer, right in zip(writers, strokes.correct, strict=True) if not right)
    total = Counter(writers)
    worst = ", ".join(f"{writer} {n}/{total[writer]}" for writer, n in misread.most_common(5))
    lines.append(f"  writers misread most (strokes, misread/digits): {worst or 'none'}")
    for via, results in (("strokes", strokes), ("image", image)):
        answered = ~results.blank
        error = calibration.ece(results.probabilities[answered], results.labels[answered])
        lines.append(f"  calibration error (ECE, {calibration.BINS} bins), {via}: {error:.3f}")
    return lines


def confusions(results: Results, top: int = 10) -> str:
    wrong = Counter(
        f"{label}->{'blank' if p < 0 else p}"
        for label, p in zip(results.labels, results.predicted, strict=True)
        if label != p
    )
    return "  " + ", ".join(f"{pair} {n}" for pair, n in wrong.most_common(top))


def other_table(
    drawings: list[Drawing],
    probabilities: np.ndarray,
    blank: np.ndarray,
    line: float,
    title: str = "non-digit canvases",
) -> list[str]:
    uncertain = ~blank & (probabilities.max(axis=1) < line)
    kinds = np.array([d.kind for d in drawings])
    lines = [f"  {title:<22}{'n':>6}{'uncertain':>11}{'blank':>8}{'flagged':>9}  most common answers"]
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


def save_failures(results: Results, directory: Path, via: str = "image") -> int:
    """Each misread drawing's canvas PNG (the same drawing as its strokes), named by what went wrong."""
    directory.mkdir(parents=True, exist_ok=True)
    failed = np.flatnonzero(~results.correct)
    for i in failed:
        d = results.drawings[i]
        said = "blank" if results.blank[i] else f"{results.predicted[i]}-{results.probabilities[i].max():.2f}"
        variant = d.variant.replace("/", "-")  # UNIPEN writers are site/session
        name = f"{via}_{i:05d}_true{d.label}_pred{said}_{variant}_{d.style}_pen{d.pen:.0f}_{d.size[0]}x{d.size[1]}.png"
        (directory / name).write_bytes(d.png)
    return len(failed)


def save_grid(results: Results, held: list[unipen.PenDigit], path: Path) -> int:
    """A PNG grid of the misread drawings, each as drawn (dark on white) under "true->answer confidence",
    with "?" where the writer's site never checked the label (label noise is likeliest there)."""
    failed = np.flatnonzero(~results.correct)
    rows = max(1, -(-len(failed) // GRID_COLUMNS))
    sheet = Image.new("L", (GRID_COLUMNS * GRID_CELL, rows * (GRID_CELL + 14)), 255)
    pen = ImageDraw.Draw(sheet)
    for n, i in enumerate(failed):
        x, y = n % GRID_COLUMNS * GRID_CELL, n // GRID_COLUMNS * (GRID_CELL + 14)
        sheet.paste(thumbnail(results.drawings[i].png, GRID_CELL - 8), (x + 4, y + 14))
        said = "blank" if results.blank[i] else f"{results.predicted[i]} {results.probabilities[i].max():.2f}"
        noted = " ?" if held[i].quality == "?" else ""
        pen.text((x + 4, y + 1), f"{results.labels[i]}->{said}{noted}", fill=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, optimize=True)
    return len(failed)


def thumbnail(png: bytes, side: int) -> Image.Image:
    """The drawing's ink, cropped to it and fitted in side x side, dark on white, whatever its canvas style."""
    with Image.open(io.BytesIO(png)) as canvas:
        strength = Image.fromarray(preprocessing.ink(canvas))
    box = strength.getbbox() or (0, 0, 1, 1)
    strength = strength.crop(box)
    strength.thumbnail((side, side), Image.Resampling.LANCZOS)
    cell = Image.new("L", (side, side), 255)
    cell.paste(ImageOps.invert(strength), ((side - strength.width) // 2, (side - strength.height) // 2))
    return cell


def usps_report(image: Results) -> list[str]:
    """USPS's held-out scans sent as canvases: accuracy, per digit, mistakes and calibration."""
    scans = image.subset(image.where(lambda d: d.source == "usps"))
    answered = ~scans.blank
    error = calibration.ece(scans.probabilities[answered], scans.labels[answered])
    return [
        f"USPS held-out part: {len(scans.drawings)} scanned digits, each sent as a canvas PNG",
        f"  {'usps digits':<22}{'n':>6}{'acc':>8}{'uncertain':>11}{'acc sure':>10}{'blank':>7}",
        scans.row("all", scans.where(lambda d: True)),
        f"  {'accuracy per digit':<22}" + "".join(f"{k:>6}" for k in range(10)),
        f"    {'image':<20}{digit_cells(scans)}",
        "  most common mistakes (true->answer count):",
        f"    {confusions(scans).strip()}",
        f"  calibration error (ECE, {calibration.BINS} bins): {error:.3f}",
    ]


def usps_held_out(limit: int | None) -> tuple[np.ndarray, np.ndarray, str]:
    """USPS's held-out part (the first `limit`; None: all), or none and the reason."""
    if limit == 0:
        return np.zeros((0, 28, 28)), np.zeros(0, np.uint8), "USPS: skipped (--usps 0)"
    try:
        images, labels = usps.split("held_out")
    except FileNotFoundError:
        return np.zeros((0, 28, 28)), np.zeros(0, np.uint8), f"USPS: skipped, its file is absent ({usps.usps_path()})"
    return images[:limit], labels[:limit], ""


def mnist_digits() -> tuple[np.ndarray, np.ndarray, str]:
    """MNIST's test split, or where its files are absent the project's own made digits, and a note saying so."""
    try:
        return *mnist.load("test"), ""
    except FileNotFoundError as exc:
        note = f"MNIST: {exc}; the 'mnist' canvases are the project's own made digits (training/samples.py)"
        return *samples.digits(1000), note


def held_out(limit: int | None) -> tuple[list[unipen.PenDigit], str]:
    """UNIPEN's held-out writers' digits (the first `limit`; None: all), or none and the reason."""
    if limit == 0:
        return [], "UNIPEN: skipped (--unipen 0)"
    path = unipen.unipen_path()
    try:
        digits = unipen.split("held_out", path)
    except FileNotFoundError:
        return [], f"UNIPEN: skipped, its file is absent ({path}); set UNIPEN_PATH, or provide ../shared/data/unipen"
    return digits[:limit], ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="digit canvases")
    parser.add_argument("--others", type=int, help="canvases of each non-digit kind (default count / 5)")
    parser.add_argument("--unipen", type=int, help="UNIPEN held-out digits (default: every one; 0: none)")
    parser.add_argument("--usps", type=int, help="USPS held-out digits (default: every one; 0: none)")
    parser.add_argument("--grid", type=Path, metavar="PNG", help="write the misread UNIPEN held-out digits here")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--model", type=Path, default=shipped_path())
    parser.add_argument("--save-failures", type=Path, metavar="DIR", help="write misclassified digit canvases here")
    args = parser.parse_args()
    others = args.count // 5 if args.others is None else args.others

    started = time.perf_counter()
    images, labels, mnist_note = mnist_digits()
    held, unipen_note = held_out(args.unipen)
    scanned, scan_labels, usps_note = usps_held_out(args.usps)
    digits = [canvases.digit_drawing(i, args.seed, images, labels) for i in range(args.count)]
    pen_digits = [canvases.unipen_drawing(i, args.seed, digit) for i, digit in enumerate(held)]
    pen_digits += [
        canvases.usps_drawing(i, args.seed, *pair) for i, pair in enumerate(zip(scanned, scan_labels, strict=True))
    ]
    non_digits = [canvases.other_drawing(i, args.seed, kind) for kind in canvases.OTHER_KINDS for i in range(others)]
    rendered = time.perf_counter() - started
    predictor = Predictor.from_file(args.model)
    line = predictor.uncertain_below
    image = Results(digits + pen_digits, *classify(predictor, digits + pen_digits), line)
    strokes = both_ways(predictor, image)
    # The suite's digit canvases (MNIST and templates, as images), reported as before UNIPEN came.
    results = image.subset(image.where(lambda d: d.source not in ("unipen", "usps")))
    answered = ~results.blank

    print(f"model {predictor.version} ({args.model}), uncertain below {line:.3f}")
    print(
        f"{len(digits)} digit canvases + {len(non_digits)} others + {len(held)} UNIPEN + {len(scanned)} USPS digits, "
        f"seed {args.seed}, rendered in {rendered:.0f} s"
    )
    for note in (mnist_note, unipen_note, usps_note):
        if note:
            print(note)
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
    print("The same drawings as strokes (ink.parse + ink.rasterise) and as a canvas PNG (preprocess)")
    print("\n".join(source_table(strokes, image)))
    if held:
        print()
        print("\n".join(unipen_report(strokes, image, held)))
    if len(scanned):
        print()
        print("\n".join(usps_report(image)))
    print()
    for via, title in (("image", "non-digit canvases"), ("strokes", "non-digits as strokes")):
        probabilities, blank = classify(predictor, non_digits, via)
        print("\n".join(other_table(non_digits, probabilities, blank, line, title)))
    if args.save_failures:
        failed = save_failures(image, args.save_failures) + save_failures(strokes, args.save_failures, "strokes")
        print(f"\n{failed} failures written to {args.save_failures}")
    if args.grid and held:
        pen_strokes, _ = pair(strokes, image, lambda d: d.source == "unipen")
        print(
            f"\n{save_grid(pen_strokes, held, args.grid)} misread UNIPEN held-out digits (strokes) drawn in {args.grid}"
        )


if __name__ == "__main__":
    main()
