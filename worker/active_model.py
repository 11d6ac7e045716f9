"""Which model a worker predicts with: the active ModelVersion, else the shipped file.

Looked up again every few seconds, so activating or rolling back a version in the admin
reaches every running worker without a restart.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

from recognizer.model_files import shipped_path
from recognizer.models import ModelVersion
from worker.inference import Predictor

log = logging.getLogger(__name__)
CHECK_EVERY = 2.0  # seconds between looks at which version is active
CACHE_DIR = Path(tempfile.gettempdir()) / "digits-models"
_predictor: Predictor | None = None
_source: str | None = None  # the active version it was loaded for; None for the shipped file
_checked_at = 0.0


def current() -> Predictor:
    """The process's model; loaded once, and again only when another version is activated."""
    global _predictor, _source, _checked_at
    if _predictor is not None and time.monotonic() - _checked_at < CHECK_EVERY:
        return _predictor
    _checked_at = time.monotonic()
    active = ModelVersion.objects.filter(is_active=True).values_list("version", flat=True).first()
    if _predictor is None or active != _source:
        _predictor, _source = load(active), active
        log.info("predicting with model %s", _predictor.version)
    return _predictor


def load(version: str | None) -> Predictor:
    if version is None:
        return Predictor.from_file(shipped_path())
    path = CACHE_DIR / f"{version}.keras"
    metadata = ModelVersion.objects.values_list("metadata", flat=True).get(version=version)
    if not path.exists():
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        artifact = ModelVersion.objects.values_list("artifact", flat=True).get(version=version)
        partial = path.with_name(f"{path.stem}.{time.monotonic_ns()}.keras")
        partial.write_bytes(bytes(artifact))
        partial.replace(path)  # whole files only, even with several workers on one machine
    return Predictor(path, version, metadata.get("uncertain_below"))
