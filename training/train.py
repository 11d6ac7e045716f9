"""Training the digit CNNs: `python -m training.train` (two members, 10 epochs each).

The served model averages the logits of `--members` small CNNs trained alike from different
seeds: two of them are right more often than either, for twice a very small cost.
Each trains on
- MNIST's first 55,000 training digits;
- UNIPEN's real pen digits by the training writers (training/unipen.py splits by writer),
  each rendered on RENDERS canvases through the service's own stroke and image paths
  (training/pen_inputs.py): how people really write, European 1s and open 4s included;
- USPS's scanned digits (training part of its split, training/usps.py);
- 6,000 synthetic pen-stroke digits (training/strokes.py: crossed 7s, slashed zeros);
all distorted afresh every epoch (training/augment.py). Then stage two: TUNE_EPOCHS more, at a lower
rate, with the digits number mode cuts out of the training writers' numbers added (`tune_on_numbers`;
`--members-from` a trained model runs this stage alone on its members).
Seeded and reproducible on a CPU. Nothing held out is trained on: MNIST's last 5,000 training
digits and UNIPEN's calibration writers watch training; the calibration writers alone fit the
temperature that calibrates the confidence and set the line below which an answer is flagged
uncertain, since pens are what the service reads. MNIST test, UNIPEN's held-out writers and
USPS's held-out part are only reported, never used to choose.
Writes the model, its export for the workers (model.tflite, checked to answer as the model
does), a metadata JSON (the data used, accuracy and calibration per set, confusion matrices,
curve) and the training curve as a PNG, all beside each other.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from recognizer.model_files import SHIPPED_MODEL, read_metadata
from training import calibration, curves, mnist, numbers, pen_inputs, strokes, unipen, usps
from training.augment import augment
from training.export import export_runtime, keras_probabilities, parity

HOLDOUT = 5000
SYNTHETIC = 6000  # pen-stroke digits (training/strokes.py) added to the training digits
RENDERS = 3  # canvases each UNIPEN training writer's digit is rendered on
CALIBRATION_RENDERS = 4  # ... and each calibration or held-out writer's digit
# Stage two: each member learns TUNE_EPOCHS more at TUNE_RATE, falling, with the digits that number
# mode cuts out of NUMBER_CROPS numbers by the training writers (training.numbers.digit_crops) added
# to the training digits: a digit as a number's candidate keeps what a cut left of it and bits of its
# neighbours. It took the calibration writers' numbers from 91.2 to 92.5 % as images and from 96.4 to
# 97.5 % as strokes (BENCHMARKS.md, fourteenth session).
TUNE_EPOCHS = 2
TUNE_RATE = 3e-4
NUMBER_CROPS = 3000
TRAINED_ON = ("train", "number_crops")  # sets the model learns from, never reported


def build_model() -> keras.Model:
    """A small CNN (~125k weights, ~6M multiply-adds): a fraction of a millisecond per drawing on one thread.

    Outputs logits; the temperature and softmax go on top once training is done.
    """

    def conv(x, filters: int, kernel: int = 3, padding: str = "same"):
        x = layers.Conv2D(filters, kernel, padding=padding, use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        return layers.Activation("relu")(x)

    inputs = keras.Input((28, 28, 1), name="image")
    x = conv(inputs, 32, 5)
    x = layers.MaxPooling2D()(x)
    x = conv(x, 64)
    x = layers.MaxPooling2D()(x)
    x = conv(x, 128, padding="valid")
    x = layers.Flatten()(x)
    x = layers.Dropout(0.4)(x)
    outputs = layers.Dense(10, name="logits")(x)
    return keras.Model(inputs, outputs, name="digits_cnn")


def with_temperature(logits_model: keras.Model, temperature: float) -> keras.Model:
    """The served model: probabilities = softmax(logits / temperature)."""
    inputs = keras.Input((28, 28, 1), name="image")
    scaled = layers.Rescaling(1 / temperature, name="temperature")(logits_model(inputs))
    return keras.Model(inputs, layers.Softmax(name="probabilities")(scaled), name="digits")


def scaled(images: np.ndarray) -> np.ndarray:
    return (images.astype(np.float32) / 255)[..., None]


def training_data(x: np.ndarray, y: np.ndarray, seed: int, batch: int, epochs: int) -> tf.data.Dataset:
    """Shuffled, distorted batches for every epoch; each step's distortions keyed by (seed, step)."""
    data = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    data = data.repeat(epochs).batch(batch, drop_remainder=True).enumerate()
    seed = tf.constant(seed, tf.int64)
    return data.map(
        lambda step, pair: (augment(pair[0], tf.stack([seed, step])), pair[1]),
        num_parallel_calls=tf.data.AUTOTUNE,
    ).prefetch(tf.data.AUTOTUNE)


def train(epochs: int, seed: int, batch: int, out: Path, members: int = 1, members_from: Path | None = None) -> dict:
    """Train `members` CNNs (seeds seed, seed+1, ...), or take those of the model at `members_from`;
    tune each on the digits cut out of numbers too; average their logits, calibrate, save."""
    data = datasets(seed)
    x_train, y_train = data["train"]
    watched = tuple(np.concatenate(pair) for pair in zip(data["mnist_held"], data["calibration"], strict=True))
    parameters = {"epochs": epochs, "seed": seed, "batch_size": batch, "members": members}
    if members_from is None:
        trained = [train_member(x_train, y_train, watched, epochs, seed + i, batch) for i in range(members)]
        models, histories = [m for m, _ in trained], [h for _, h in trained]
    else:  # stage one done already: that model's members, as they were trained, and their histories
        before = read_metadata(members_from)
        models = keras.models.load_model(members_from, compile=False).get_layer("digits_ensemble").layers[1:-1]
        histories = before["members"]
        parameters.update(members=len(models), stage_one_from=before["version"])
    histories = [{**h, "stage": "digits"} for h in histories]
    x_tune, y_tune = (np.concatenate(pair) for pair in zip(data["train"], data["number_crops"], strict=True))
    tuned = [tune_on_numbers(m, x_tune, y_tune, watched, seed + i, batch) for i, m in enumerate(models)]
    histories += [{**h, "stage": "numbers"} for _, h in tuned]
    return save(combine([m for m, _ in tuned]), histories, data, out, parameters)


def datasets(seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every set as (images (N, 28, 28, 1) in [0, 1], labels): "train", the sets that watch training
    or calibrate ("mnist_held", "calibration"), and the ones only reported."""
    x, y = mnist.load("train")
    x, x_test = scaled(x), scaled(mnist.load("test")[0])
    drawn, drawn_labels = strokes.digits(SYNTHETIC, seed)
    renders = {"train": RENDERS, "calibration": CALIBRATION_RENDERS, "held_out": CALIBRATION_RENDERS}
    pens = {name: pen_inputs.inputs(unipen.split(name), count, seed) for name, count in renders.items()}
    scans = {name: usps.split(name) for name in unipen.SPLITS}
    parts = [
        (x[:-HOLDOUT], y[:-HOLDOUT]),
        channel(drawn, drawn_labels),
        channel(*pens["train"]),
        channel(*scans["train"]),
    ]
    return {
        "train": (np.concatenate([images for images, _ in parts]), np.concatenate([labels for _, labels in parts])),
        "number_crops": channel(*numbers.digit_crops("train", NUMBER_CROPS, seed)),
        "mnist_held": (x[-HOLDOUT:], y[-HOLDOUT:]),
        "calibration": channel(*pens["calibration"]),
        "mnist_test": (x_test, mnist.load("test")[1]),
        "unipen_held_out": channel(*pens["held_out"]),
        "usps_calibration": channel(*scans["calibration"]),
        "usps_held_out": channel(*scans["held_out"]),
    }


def channel(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inputs already in [0, 1] (N, 28, 28) with the channel axis the model takes."""
    return images[..., None], labels


def train_member(x, y, held, epochs: int, seed: int, batch: int) -> tuple[keras.Model, dict]:
    """One CNN, trained from scratch; returns it (logits) and its history."""
    keras.utils.set_random_seed(seed)
    steps = len(x) // batch
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, epochs * steps, warmup_target=3e-3, warmup_steps=steps * 2, alpha=0.01
    )
    return fit(build_model(), x, y, held, epochs, seed, batch, schedule)


def tune_on_numbers(model: keras.Model, x, y, held, seed: int, batch: int) -> tuple[keras.Model, dict]:
    """Stage two: a trained member learns TUNE_EPOCHS more, at a lower rate, from the training digits
    with the digits cut out of numbers (`number_crops`) among them; returns it and its history."""
    keras.utils.set_random_seed(seed)
    steps = len(x) // batch
    schedule = keras.optimizers.schedules.CosineDecay(TUNE_RATE, TUNE_EPOCHS * steps, alpha=0.05)
    return fit(model, x, y, held, TUNE_EPOCHS, seed, batch, schedule)


def fit(model: keras.Model, x, y, held, epochs: int, seed: int, batch: int, schedule) -> tuple[keras.Model, dict]:
    """`model` fitted on distorted batches of (x, y) at the rates of `schedule`, `held` watching; and its history."""
    steps = len(x) // batch
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    started = time.monotonic()
    history = model.fit(
        training_data(x, y.astype(np.int32), seed, batch, epochs),
        epochs=epochs,
        steps_per_epoch=steps,
        validation_data=(held[0], held[1].astype(np.int32)),
        verbose=2,
    )
    rounded = {k: [round(float(v), 5) for v in vals] for k, vals in history.history.items()}
    return model, {"seed": seed, "seconds": round(time.monotonic() - started, 1), "history": rounded}


def combine(members: list[keras.Model]) -> keras.Model:
    """One model whose logits are the members' average (a single member is returned as it is)."""
    if len(members) == 1:
        return members[0]
    inputs = keras.Input((28, 28, 1), name="image")
    for i, member in enumerate(members):
        member.name = f"member_{i + 1}"
    logits = layers.Average(name="logits")([member(inputs) for member in members])
    return keras.Model(inputs, logits, name="digits_ensemble")


def save(model: keras.Model, histories: list[dict], data: dict, out: Path, parameters: dict) -> dict:
    """Calibrate on the calibration writers, then write the served model, its metadata and its curve."""
    report = evaluate(model, data)
    served = with_temperature(model, report["calibration"]["temperature"])
    out.parent.mkdir(parents=True, exist_ok=True)
    served.save(out)
    runtime = check_export(served, out.with_suffix(".tflite"), data["mnist_test"][0])
    version = f"cnn-{datetime.now(UTC):%Y%m%d-%H%M}"
    # Stage two's epochs follow stage one's.
    curve = {
        f"{h['stage']}, seed {h['seed']}: {name}": [None] * (h["stage"] == "numbers") * parameters["epochs"] + values
        for h in histories
        for name, values in h["history"].items()
    }
    curves.plot(
        {k: v for k, v in curve.items() if k.endswith(("loss", "accuracy"))},
        out.with_suffix(".png"),
        f"{version}: {parameters['members']} member(s), {parameters['epochs']} + {TUNE_EPOCHS} epochs each",
    )
    metadata = {
        "version": version,
        "mnist_test_accuracy": report["sets"]["mnist_test"]["accuracy"],
        "uncertain_below": report["calibration"]["uncertain_below"],
        "calibration": report["calibration"],
        "sets": report["sets"],
        "confusion_matrix": report["sets"]["mnist_test"]["confusion"],
        "data": data_used(data),
        "mnist_sha256": mnist.checksum(),
        "parameters": {
            **parameters,
            "weights": model.count_params(),
            "held_out": HOLDOUT,
            "tune_epochs": TUNE_EPOCHS,
            "tune_rate": TUNE_RATE,
            "number_crops": NUMBER_CROPS,
            "synthetic": SYNTHETIC,
            "renders": RENDERS,
            "calibration_renders": CALIBRATION_RENDERS,
        },
        "training_seconds": round(sum(h["seconds"] for h in histories), 1),
        "members": histories,
        "curve": out.with_suffix(".png").name,
        "runtime": runtime,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }
    out.with_suffix(".json").write_text(json.dumps(metadata, indent=2) + "\n")
    return metadata


def data_used(data: dict) -> dict:
    """What each set holds, for the metadata: its size and where it came from."""
    return {
        "train_is": f"MNIST train less its last {HOLDOUT}, UNIPEN's training writers x{RENDERS} renders, "
        f"USPS's train split, {SYNTHETIC} synthetic stroke digits",
        "unipen_sha256": file_checksum(unipen.unipen_path()),
        "usps_sha256": file_checksum(usps.usps_path()),
        "sizes": {name: len(labels) for name, (_, labels) in data.items()},
    }


def file_checksum(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def check_export(served: keras.Model, path: Path, images: np.ndarray) -> dict:
    """Export the served model for the workers (LiteRT, beside the .keras file); it must answer as the model does."""
    from worker.inference import Predictor

    export_runtime(served, path)
    problem, measured = parity(keras_probabilities(served, images), Predictor(path, "export").predict(images))
    if problem:
        path.unlink()
        raise RuntimeError(f"the exported model fails parity with the Keras model: {problem}")
    return {"file": path.name, "format": "litert", "parity_on_mnist_test": measured}


def evaluate(model: keras.Model, data: dict) -> dict:
    """Accuracy, confusion and calibration error per set; temperature and uncertain line fitted on
    the calibration writers only."""
    logits = {
        name: model.predict(x, batch_size=1000, verbose=0) for name, (x, _) in data.items() if name not in TRAINED_ON
    }
    labels = {name: y for name, (_, y) in data.items()}
    temperature = calibration.fit_temperature(logits["calibration"], labels["calibration"])
    line = calibration.uncertain_line(calibration.softmax(logits["calibration"], temperature), labels["calibration"])
    sets = {}
    for name, values in logits.items():
        probabilities = calibration.softmax(values, temperature)
        predicted = values.argmax(axis=1)
        sets[name] = {
            "n": len(predicted),
            "accuracy": round(float((predicted == labels[name]).mean()), 5),
            "ece": round(calibration.ece(probabilities, labels[name]), 5),
            "ece_before": round(calibration.ece(calibration.softmax(values), labels[name]), 5),
            "flagged_uncertain": round(float((probabilities.max(axis=1) < line).mean()), 5),
            "confusion": calibration.confusion(predicted, labels[name]),
        }
    return {"sets": sets, "calibration": {"temperature": round(temperature, 4), "uncertain_below": round(line, 4),
                                          "fitted_on": "UNIPEN calibration writers"}}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description="Train the digits CNN on MNIST, UNIPEN pens and USPS scans.")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--members", type=int, default=2, help="CNNs averaged (seeds seed, seed+1, ...)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--out", type=Path, default=SHIPPED_MODEL, help="where the .keras file goes")
    parser.add_argument(
        "--members-from",
        type=Path,
        help="a trained model (.keras) whose members to take instead of training them: stage two alone",
    )
    args = parser.parse_args()
    metadata = train(args.epochs, args.seed, args.batch_size, args.out, args.members, args.members_from)
    print(
        f"{metadata['version']}: "
        + ", ".join(f"{name} {figures['accuracy']:.4f}" for name, figures in metadata["sets"].items())
        + f"; temperature {metadata['calibration']['temperature']}, {metadata['training_seconds']} s -> {args.out}"
    )


if __name__ == "__main__":
    main()
