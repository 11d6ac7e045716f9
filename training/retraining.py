"""Fine-tuning the active model on MNIST plus reviewed drawings, with a gate on promotion."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from django.utils import timezone

from recognizer.model_files import read_metadata, shipped_path
from recognizer.models import ModelVersion
from recognizer.preprocessing import preprocess
from training import mnist, samples
from training.export import configure_tensorflow, export_runtime, keras_probabilities, parity
from training.reviewed import labeled_inputs

PARITY_SAMPLES = 500  # sample digits on which the export must answer what the Keras model answers
# Train images and labels, test images and labels: MNIST in production, a small sample in tests.
Digits = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@dataclass
class Outcome:
    version: ModelVersion
    base: ModelVersion
    promoted: bool
    reason: str


def register_shipped() -> ModelVersion:
    """The model that ships with the code, as a checked version (so it can be rolled back to)."""
    path = shipped_path()
    metadata = read_metadata(path)
    version, _ = ModelVersion.objects.get_or_create(
        version=metadata["version"],
        defaults={
            "artifact": path.read_bytes(),
            "metadata": metadata,
            "mnist_accuracy": metadata.get("mnist_test_accuracy"),
        },
    )
    exported = path.with_suffix(".tflite")  # the shipped export, beside the .keras file
    if not version.runtime_artifact and exported.exists():  # new, or a row from before exports
        version.runtime_artifact = exported.read_bytes()
        version.verified_at = None  # checked again, with the export
        version.save(update_fields=["runtime_artifact", "verified_at"])
    if version.verified_at is None:
        verify(version)  # exports the .keras file here if no export shipped beside it
    return version


def verify(version: ModelVersion) -> bool:
    """Check the version's stored files as a worker would use them; record the outcome.

    The worker's file (the LiteRT export) is loaded back and predicts fixed inputs: a blank
    canvas, a clear 7 and the project's sample digits (training.samples.digits); its answers
    must be ten probabilities and match the Keras model's (training.export.parity). A version
    registered before exports existed is exported here first. Only a version that passed can
    be activated (ModelVersion.activate): the admin, which cannot load a model itself, never
    sends the workers a file they cannot use.
    """
    from worker.inference import Predictor

    configure_tensorflow()
    digits, _ = samples.digits(PARITY_SAMPLES)
    inputs = np.concatenate([np.stack([np.zeros((28, 28), np.float32), preprocess(samples.SEVEN)]), digits / 255])
    inputs = inputs.astype(np.float32)
    measured: dict = {}
    try:
        model = load(version)
        if not version.runtime_artifact:
            version.runtime_artifact = export_runtime(model)
            version.save(update_fields=["runtime_artifact"])
        expected = keras_probabilities(model, inputs)
        probabilities = Predictor(bytes(version.runtime_artifact), version.version).predict(inputs)
        problem = implausible(probabilities[:2])
        if problem is None:
            problem, measured = parity(expected, probabilities)
    except Exception as exc:  # whatever a broken file makes Keras, TensorFlow or LiteRT raise
        probabilities, problem = None, f"{exc.__class__.__name__}: {exc}"[:500]
    now = timezone.now()
    if problem:
        version.verified_at = None
        version.verification = {"error": problem, "checked_at": now.isoformat()}
        if measured:
            version.verification["parity"] = measured
    else:
        version.verified_at = now
        version.verification = {
            "inputs": ["blank", "training.samples.SEVEN"],
            "digits": [int(row.argmax()) for row in probabilities[:2]],
            "probabilities": [[round(float(p), 6) for p in row] for row in probabilities[:2]],
            "runtime": "litert",
            "parity": {**measured, "inputs": f"blank, SEVEN, training.samples.digits({PARITY_SAMPLES})"},
        }
    version.save(update_fields=["verified_at", "verification"])
    return problem is None


def implausible(probabilities: np.ndarray) -> str | None:
    """Why these cannot be a digit model's answers to two inputs, or None."""
    if probabilities.shape != (2, 10):
        return f"it answered an array of shape {probabilities.shape}, not ten probabilities per input"
    if not np.isfinite(probabilities).all():
        return "it answered NaN or infinite probabilities"
    if not np.allclose(probabilities.sum(axis=1), 1, atol=1e-3) or (probabilities < 0).any():
        return "its answers are not probabilities (negative, or not summing to 1)"
    return None


def mnist_digits(limit: int | None = None) -> Digits:
    """MNIST's train split (its first `limit` digits) and its whole test split, from MNIST_PATH: the
    gate's MNIST figure, stored with the version, is then comparable with every other version's."""
    (x_train, y_train), (x_test, y_test) = mnist.load("train"), mnist.load("test")
    return x_train[:limit], y_train[:limit], x_test, y_test


def split(ids: list[str], holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and held-out indices of the reviewed examples, by drawing: the digits of one number
    drawing (ids `<drawing id>/<place>`, training/reviewed.py) are all on one side."""
    drawings = sorted({name.split("/")[0] for name in ids})
    order = np.random.default_rng(seed).permutation(len(drawings))
    held = {drawings[i] for i in order[: round(len(drawings) * holdout)]}
    side = np.array([name.split("/")[0] in held for name in ids], bool)
    return np.flatnonzero(~side), np.flatnonzero(side)


def accuracy(model, images: np.ndarray, labels: np.ndarray) -> float | None:
    if not len(images):
        return None
    return float((model.predict(images[..., None], batch_size=1000, verbose=0).argmax(axis=1) == labels).mean())


def load(version: ModelVersion):
    import keras

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        path.write_bytes(bytes(version.artifact))
        return keras.models.load_model(path, compile=False)


def retrain(
    epochs: int = 1,
    weight: float = 20.0,
    digits: Digits | None = None,
    holdout: float = 0.2,
    seed: int = 1,
    force: bool = False,
    promote: bool = True,
    log=print,
) -> Outcome:
    """Fine-tune the active version, register the result, and activate it if it is no worse."""
    configure_tensorflow()
    import keras

    keras.utils.set_random_seed(seed)
    base = ModelVersion.objects.filter(is_active=True).first() or register_shipped()
    images, labels, ids = labeled_inputs()
    train_idx, held_idx = split(ids, holdout, seed)
    x_mnist, y_mnist, x_test, y_test = digits or mnist_digits()
    x_mnist, x_test = x_mnist.astype(np.float32) / 255, x_test.astype(np.float32) / 255
    log(f"base {base.version}; {len(x_mnist)} MNIST + {len(train_idx)} reviewed drawings (weight {weight:g}), "
        f"{len(held_idx)} held out")  # fmt: skip

    x = np.concatenate([x_mnist, images[train_idx]])[..., None]
    y = np.concatenate([y_mnist, labels[train_idx]]).astype(np.int32)
    # A few hundred relabels among 60,000 MNIST digits would count for nothing unweighted.
    sample_weight = np.concatenate([np.ones(len(x_mnist)), np.full(len(train_idx), weight)]).astype(np.float32)
    started = time.monotonic()
    model = load(base)
    # Scored before fine-tuning changes it: one copy of the base model, loaded once.
    held_images, held_labels = images[held_idx], labels[held_idx]
    before = {"mnist": accuracy(model, x_test, y_test), "reviewed": accuracy(model, held_images, held_labels)}
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy")
    model.fit(x, y, sample_weight=sample_weight, epochs=epochs, batch_size=128, shuffle=True, verbose=2)
    after = {"mnist": accuracy(model, x_test, y_test), "reviewed": accuracy(model, held_images, held_labels)}
    scores = {name: (before[name], after[name]) for name in before}
    for name, (old, new) in scores.items():
        log(f"{name} accuracy: {old} -> {new}")
    version = register(model, base, scores, epochs, weight, len(train_idx), len(held_idx), time.monotonic() - started)
    allowed, reason = gate(scores, force)
    if version.verified_at is None:  # even --force: workers could not load it
        allowed, reason = False, f"its saved file failed the check ({version.verification['error']})"
    promoted = promote and allowed
    if promoted:
        version.activate()
    return Outcome(version, base, promoted, reason)


def gate(scores: dict[str, tuple[float | None, float | None]], force: bool) -> tuple[bool, str]:
    """May a version with these (before, after) scores replace the active one?"""
    worse = [name for name, (before, after) in scores.items() if before is not None and (after or 0) < before]
    if not worse:
        return True, "no worse on either evaluation"
    return force, f"worse on {', '.join(worse)}" + (", activated anyway (forced)" if force else "")


def register(model, base, scores, epochs, weight, trained, held, seconds) -> ModelVersion:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        model.save(path)
        artifact = path.read_bytes()
    runtime_artifact = export_runtime(model)  # what the workers load; verify() checks it against the model
    name = f"cnn-{datetime.now(UTC):%Y%m%d-%H%M%S}-ft"
    metadata = {
        "version": name,
        "fine_tuned_from": base.version,
        # Fine-tuning keeps the base's temperature layer, so its calibrated line still holds roughly.
        "uncertain_below": base.metadata.get("uncertain_below"),
        "mnist_test_accuracy": scores["mnist"][1],
        "reviewed_holdout_accuracy": scores["reviewed"][1],
        "parameters": {"epochs": epochs, "reviewed_weight": weight, "reviewed_train": trained, "reviewed_held": held},
        "training_seconds": round(seconds, 1),
        "base_scores": {name: before for name, (before, _) in scores.items()},
    }
    version = ModelVersion.objects.create(
        version=name,
        artifact=artifact,
        runtime_artifact=runtime_artifact,
        metadata=metadata,
        mnist_accuracy=scores["mnist"][1],
        reviewed_accuracy=scores["reviewed"][1],
        parent=base,
    )
    verify(version)  # the bytes as stored, loaded back the way a worker will load them
    return version
