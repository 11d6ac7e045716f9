"""Which model a worker predicts with: the active ModelVersion, else the shipped file.

Looked up again at a drawing, at most every CHECK_EVERY seconds, so activating or rolling back a
version in the admin reaches every running worker without a restart: an idle one with its next
drawing (its published state shows the version it served last until then).

A version this process cannot load never stops its predictions (activation checks a version
first, but a row can be changed behind its back): the process keeps the model it had, else
loads the shipped file, logs why, tries again every RETRY_AFTER seconds, and publishes its
state (recognizer.worker_state) so that /healthz turns red. The shipped file (MODEL_PATH) is what
every process falls back on, so a worker that cannot load it does not start (`fallback_or_exit`).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

from redis import Redis, RedisError

from recognizer import worker_state
from recognizer.model_files import shipped_path
from recognizer.models import ModelVersion
from worker.inference import Predictor

log = logging.getLogger(__name__)
CHECK_EVERY = 2.0  # seconds between looks at which version is active
RETRY_AFTER = 60.0  # seconds before a version that failed to load is tried again
_predictor: Predictor | None = None
_wanted: str | None = None  # the active version last looked up; None: none is active (the shipped file)
_failed_at: float | None = None  # when loading `_wanted` last failed; None: it is what this process serves
_checked_at = 0.0
_state: dict = {}  # what this process publishes, replaced whole so the heartbeat never sees half of it
_publishing = threading.Lock()
_heartbeat_pid: int | None = None
_redis: Redis | None = None


def current() -> Predictor:
    """The process's model; loaded once, and again only when another version is activated."""
    global _checked_at
    now = time.monotonic()
    if _predictor is not None and now - _checked_at < CHECK_EVERY:
        return _predictor
    _checked_at = now
    active = ModelVersion.objects.filter(is_active=True).values_list("version", flat=True).first()
    retry = _failed_at is not None and now - _failed_at >= RETRY_AFTER
    if _predictor is None or active != _wanted or retry:
        switch(active)
    return _predictor


def switch(active: str | None) -> None:
    """Load the active version; if that fails, keep the model held (else the shipped one) and say why."""
    global _predictor, _wanted, _failed_at, _state
    _wanted, error = active, None
    try:
        _predictor, _failed_at = load(active), None
        log.info("predicting with model %s", _predictor.version)
    except Exception as exc:  # whatever a broken file makes the runtime raise
        error, _failed_at = f"{exc.__class__.__name__}: {exc}"[:300], time.monotonic()
        if _predictor is None:  # nothing held yet; if the shipped file fails too, nothing can predict
            _predictor = load(None)
        log.error("cannot load model %s (%s); predicting with %s instead", active, error, _predictor.version)
    _state = {"serving": _predictor.version, "wanted": active, "error": error}
    publish()


def fallback_or_exit() -> None:
    """Stop the worker, exit status 1, naming the file, when the model it falls back on cannot be loaded.

    Run once in the worker's main process before its pool starts (the Predictor is gone before any
    fork). Without it such a worker answered pings, took drawings, and failed each of them until
    its tries were used up.
    """
    try:
        load(None)
    except Exception as exc:  # whatever a missing or broken file makes the runtime raise
        raise SystemExit(
            f"cannot start: the model {shipped_path()} cannot be loaded ({exc.__class__.__name__}: {exc}). "
            "MODEL_PATH must name a .keras file with the .tflite and .json that `make train` writes beside it."
        ) from None


def publish() -> None:
    """Tell /healthz what this process serves; started once per process, a thread repeats it."""
    global _redis, _heartbeat_pid
    if _heartbeat_pid != os.getpid():  # the first call in this (forked) process
        _heartbeat_pid, _redis = os.getpid(), worker_state.client()
        threading.Thread(target=heartbeat, name="model-state", daemon=True).start()
    with _publishing:  # so that an older state never lands after a newer one
        try:
            worker_state.publish(_redis, f"{socket.gethostname()}:{os.getpid()}", _state)
        except RedisError as exc:
            log.warning("cannot publish the model state (%s)", exc)


def heartbeat() -> None:
    # Keeps an idle process's state alive; a process that died stops, and its key expires.
    while True:
        time.sleep(worker_state.HEARTBEAT)
        publish()


def load(version: str | None) -> Predictor:
    """The shipped model (its .tflite beside the .keras file), or a version's export from the database."""
    if version is None:
        return Predictor.from_file(shipped_path())
    metadata, runtime_artifact = ModelVersion.objects.values_list("metadata", "runtime_artifact").get(version=version)
    if not runtime_artifact:
        raise ValueError(f"{version} has no runtime export: run `manage.py verify_models {version}`")
    return Predictor(bytes(runtime_artifact), version, metadata.get("uncertain_below"))
