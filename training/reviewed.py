"""Drawings that staff labeled, as the 28x28 inputs the model sees.

A digit drawing is one example: its input (`Drawing.model_input`) and its label. A number drawing
whose number staff corrected (or confirmed) gives one example per digit: each digit's box, as the
worker stored it, through the same recipe as the worker's candidates (`segmentation.box_input`),
with the corrected digit at that place. Only where the worker found as many digits as the
corrected number holds: where it merged or split digits, its boxes do not say where each digit is.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from recognizer import ink, segmentation
from recognizer.errors import Refused
from recognizer.models import INPUT_FIELDS, NOT_A_DIGIT, Drawing
from recognizer.preprocessing import BlankDrawing

UNREADABLE = (BlankDrawing, Refused, OSError, ValueError)  # labeled, but nothing the model could learn from


def labeled_inputs(include_not_a_digit: bool = False) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Inputs (N, 28, 28) float32, labels (N,) and ids of the labeled drawings, oldest first.

    A number drawing's digits have the ids `<drawing id>/<place>` (0 is the leftmost digit).
    """
    drawings = Drawing.objects.reviewed()
    if not include_not_a_digit:
        drawings = drawings.exclude(label=NOT_A_DIGIT)
    rows = drawings.order_by("created_at").only("id", "mode", "label", "label_number", "digits", *INPUT_FIELDS)
    inputs, labels, ids = [], [], []
    for drawing in rows.iterator(chunk_size=500):
        for image, label, name in examples(drawing):
            inputs.append(image)
            labels.append(label)
            ids.append(name)
    return np.array(inputs, np.float32).reshape(-1, 28, 28), np.array(labels, np.uint8), ids


def examples(drawing: Drawing) -> Iterator[tuple[np.ndarray, int, str]]:
    """A labeled drawing's training examples: (input, label, id), none where it cannot be read."""
    number = drawing.label_number
    if number is None and drawing.mode == Drawing.Mode.NUMBER and drawing.label != NOT_A_DIGIT:
        number = str(drawing.label)  # a digit given before a number drawing's label had to be its digits
    if number is None:
        try:
            image = drawing.model_input()  # as the worker reads it
        except UNREADABLE:
            return
        yield image, drawing.label, str(drawing.id)
        return
    boxes = [d["box"] for d in drawing.digits or []]
    if len(boxes) != len(number):
        return  # merged or split: no box per digit
    try:
        source = stored_source(drawing)
    except UNREADABLE:
        return
    for place, (box, digit) in enumerate(zip(boxes, number, strict=True)):
        try:
            yield segmentation.box_input(source, box), int(digit), f"{drawing.id}/{place}"
        except UNREADABLE:
            continue


def stored_source(drawing: Drawing) -> ink.Ink | bytes:
    """What `segmentation.box_input` reads of a stored drawing: its Ink, or its image file."""
    if drawing.strokes is not None:
        return ink.Ink.from_stored(drawing.strokes, drawing.width, drawing.height, drawing.pen)
    return bytes(drawing.image)


def export(path: Path, include_not_a_digit: bool = False) -> tuple[int, int]:
    """Write the labeled drawings' inputs (x), labels (y) and ids to an .npz file at `path` (which
    ends in .npz: numpy would add it); (examples, drawings) written."""
    images, labels, ids = labeled_inputs(include_not_a_digit)
    np.savez_compressed(path, x=images, y=labels, ids=np.array(ids))
    return len(labels), len({name.split("/")[0] for name in ids})
