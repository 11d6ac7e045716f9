"""Fine-tuning the active model on MNIST plus reviewed drawings, with a gate on promotion."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from recognizer.model_files import read_metadata, shipped_path
from recognizer.models import ModelVersion
from training import mnist
from training.reviewed import labeled_inputs
from worker.inference import configure_tensorflow

# Train images and labels, test images and labels: MNIST in production, a small sample in tests.
Digits = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@dataclass
class Outcome:
    version: ModelVersion
    base: ModelVersion
    promoted: bool
    reason: str


def register_shipped() -> ModelVersion:
    """The model that ships with the code, as a version (so it can be rolled back to)."""
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
    return version


def mnist_digits(limit: int | None = None) -> Digits:
    """MNIST's train and test splits (the first `limit` digits of each), from MNIST_PATH."""
    (x_train, y_train), (x_test, y_test) = mnist.load("train"), mnist.load("test")
    return x_train[:limit], y_train[:limit], x_test[:limit], y_test[:limit]


def split(count: int, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and held-out indices of the reviewed drawings."""
    order = np.random.default_rng(seed).permutation(count)
    cut = round(count * holdout)
    return order[cut:], order[:cut]


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
    images, labels, _ = labeled_inputs()
    train_idx, held_idx = split(len(images), holdout, seed)
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
    return ModelVersion.objects.create(
        version=name,
        artifact=artifact,
        metadata=metadata,
        mnist_accuracy=scores["mnist"][1],
        reviewed_accuracy=scores["reviewed"][1],
        parent=base,
    )
