"""Drawings that staff labeled, as the 28x28 inputs the model sees."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recognizer.errors import Refused
from recognizer.models import INPUT_FIELDS, NOT_A_DIGIT, Drawing
from recognizer.preprocessing import BlankDrawing


def labeled_inputs(include_not_a_digit: bool = False) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Inputs (N, 28, 28) float32, labels (N,) and drawing ids of the labeled drawings, oldest first."""
    drawings = Drawing.objects.reviewed()
    if not include_not_a_digit:
        drawings = drawings.exclude(label=NOT_A_DIGIT)
    inputs, labels, ids = [], [], []
    rows = drawings.order_by("created_at").only("id", "label", *INPUT_FIELDS)
    for drawing in rows.iterator(chunk_size=500):
        try:
            inputs.append(drawing.model_input())  # strokes and images alike, as the worker reads them
        except (BlankDrawing, Refused, OSError, ValueError):
            continue  # labeled, but nothing the model could learn from
        labels.append(drawing.label)
        ids.append(str(drawing.id))
    return np.array(inputs, np.float32).reshape(-1, 28, 28), np.array(labels, np.uint8), ids


def export(path: Path, include_not_a_digit: bool = False) -> int:
    """Write the labeled drawings' inputs (x), labels (y) and ids to an .npz file."""
    images, labels, ids = labeled_inputs(include_not_a_digit)
    np.savez_compressed(path, x=images, y=labels, ids=np.array(ids))
    return len(labels)
