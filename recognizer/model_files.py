"""The model file that ships with the code, and the metadata JSON that lies beside every model file.

Plain files and JSON: the web reads the shipped version's name from here without loading
the model, and the worker and training read and write the same files.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings

SHIPPED_MODEL = Path(__file__).resolve().parent.parent / "worker" / "artifacts" / "model.keras"  # `make train`


def shipped_path() -> Path:
    """The model a worker uses while no version is active: MODEL_PATH, else the shipped file."""
    return Path(settings.MODEL_PATH or SHIPPED_MODEL)


def read_metadata(model: Path) -> dict:
    """The metadata written beside a model file (model.keras -> model.json): its version, calibration, scores."""
    return json.loads(model.with_suffix(".json").read_text())
