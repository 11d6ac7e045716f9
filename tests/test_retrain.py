"""From labels to a better model: export, retrain with a promotion gate, workers switching versions."""

from __future__ import annotations

import time

import numpy as np
import pytest
import requests
from django.core.management import CommandError, call_command

from recognizer import ink, segmentation
from recognizer.model_files import shipped_path
from recognizer.models import NOT_A_DIGIT, ModelVersion
from tests.factories import drawing, ink_drawing
from tests.test_segmentation import number_body, png_of, read_strokes
from training import samples
from training.retraining import gate, register_shipped, retrain, split, verify
from training.samples import ONE, SEVEN
from worker.inference import Predictor


def labeled_set(admin_user) -> None:
    for image, label in [(SEVEN, 7)] * 6 + [(ONE, 1)] * 4:
        drawing(image=image, label=label, labeled_by=admin_user)
    drawing(label=NOT_A_DIGIT, labeled_by=admin_user)
    drawing()  # not reviewed


@pytest.mark.django_db
def test_it_exports_labeled_drawings_as_model_inputs(admin_user, tmp_path):
    labeled_set(admin_user)
    call_command("export_drawings", tmp_path / "digits.npz")
    exported = np.load(tmp_path / "digits.npz")
    assert exported["x"].shape == (10, 28, 28) and exported["x"].dtype == np.float32
    assert sorted(exported["y"].tolist()) == [1] * 4 + [7] * 6 and len(exported["ids"]) == 10
    call_command("export_drawings", tmp_path / "all.npz", "--include-not-a-digit")
    assert NOT_A_DIGIT in np.load(tmp_path / "all.npz")["y"]


@pytest.mark.django_db
def test_export_says_where_it_wrote_and_refuses_a_folder_that_is_not_there(admin_user, tmp_path, capsys):
    labeled_set(admin_user)
    call_command("export_drawings", tmp_path / "digits")  # numpy adds .npz: the message names that file
    assert capsys.readouterr().out.strip() == f"10 examples of 10 labeled drawings written to {tmp_path}/digits.npz"
    assert (tmp_path / "digits.npz").exists()
    with pytest.raises(CommandError, match="no folder"):
        call_command("export_drawings", tmp_path / "missing" / "digits.npz")


@pytest.mark.parametrize(
    "option",
    [["--epochs", "0"], ["--weight", "-3"], ["--weight", "nan"], ["--holdout", "-0.2"], ["--holdout", "1"],
     ["--holdout", "1.5"], ["--mnist-limit", "0"]],
)  # fmt: skip
def test_retrain_refuses_options_that_would_train_on_nothing_or_against_the_labels(option, monkeypatch):
    # Refused before MNIST is read or TensorFlow imported: no version is registered.
    monkeypatch.setenv("MNIST_PATH", "/nonexistent")
    with pytest.raises(CommandError, match=option[0]):
        call_command("retrain", *option)


@pytest.mark.django_db
def test_retrain_without_mnist_says_what_it_needs(monkeypatch, tmp_path):
    monkeypatch.setenv("MNIST_PATH", str(tmp_path))
    with pytest.raises(CommandError, match=r"MNIST is needed to retrain.*set MNIST_PATH"):
        call_command("retrain")


@pytest.mark.django_db
def test_it_exports_stroke_drawings_through_the_workers_rasteriser(admin_user, tmp_path):
    stored = ink_drawing(samples.ink_digit(7, (60, 30, 220, 250)), label=7, labeled_by=admin_user)
    call_command("export_drawings", tmp_path / "ink.npz")
    exported = np.load(tmp_path / "ink.npz")
    assert exported["y"].tolist() == [7] and exported["ids"].tolist() == [str(stored.id)]
    assert np.array_equal(exported["x"][0], stored.model_input()) and exported["x"][0].max() == 1


@pytest.mark.django_db
def test_it_exports_a_corrected_number_as_one_example_per_digit(admin_user, tmp_path):
    body = number_body([3, 1, 4])
    digits = [d.as_dict() for d in read_strokes(body, Predictor.from_file(shipped_path())).digits]
    assert len(digits) == 3
    read = {"mode": "number", "digit": None, "number": "314", "digits": digits, "labeled_by": admin_user}
    number = ink_drawing(body, **read, label_number="374")  # staff corrected the middle digit
    pictured = drawing(image=png_of(body), width=body["width"], height=body["height"], **read, label_number="314")
    ink_drawing(body, **{**read, "digits": digits[:2]}, label_number="314")  # two digits merged: no boxes to use
    # Labeled with one digit before a number drawing's label had to be its digits: not the whole
    # ink as that digit, but a number of one digit, which three boxes do not fit.
    ink_drawing(body, **read, label=4)
    call_command("export_drawings", tmp_path / "numbers.npz")
    exported = np.load(tmp_path / "numbers.npz")
    assert exported["y"].tolist() == [3, 7, 4, 3, 1, 4]
    assert exported["ids"].tolist() == [f"{d.id}/{place}" for d in (number, pictured) for place in range(3)]
    strokes = ink.parse(body)
    for place, digit in enumerate(digits):
        assert np.array_equal(exported["x"][place], segmentation.box_input(strokes, digit["box"]))
    # The image's digits through the same recipe: the model reads them as the strokes' digits.
    assert Predictor.from_file(shipped_path()).predict(exported["x"][3:]).argmax(axis=1).tolist() == [3, 1, 4]


def test_held_out_reviewed_examples_keep_a_numbers_digits_together():
    ids = ["a", "b/0", "b/1", "b/2", "c", "d/0", "d/1", "e"]
    train, held = split(ids, 0.4, seed=3)
    assert sorted([*train, *held]) == list(range(len(ids))) and len(held)
    held_drawings = {ids[i].split("/")[0] for i in held}
    assert all((ids[i].split("/")[0] in held_drawings) == (i in held) for i in range(len(ids)))


@pytest.mark.parametrize(
    ("scores", "force", "allowed"),
    [
        ({"mnist": (0.99, 0.99), "reviewed": (0.8, 0.9)}, False, True),
        ({"mnist": (0.99, 0.98), "reviewed": (0.8, 0.9)}, False, False),
        ({"mnist": (0.99, 0.995), "reviewed": (0.9, 0.8)}, False, False),
        ({"mnist": (0.99, 0.98), "reviewed": (0.8, 0.9)}, True, True),
        ({"mnist": (0.99, 0.99), "reviewed": (None, None)}, False, True),
    ],
)
def test_the_gate_refuses_a_version_worse_on_either_evaluation(scores, force, allowed):
    assert gate(scores, force)[0] is allowed


@pytest.mark.django_db
def test_it_retrains_on_a_tiny_dataset_and_registers_a_version(admin_user):
    labeled_set(admin_user)
    lines = []
    x, y = samples.digits(600)
    digits = (x[:400], y[:400], x[400:], y[400:])  # MNIST's place: train, test
    outcome = retrain(epochs=1, digits=digits, holdout=0.3, promote=False, log=lines.append)
    version = outcome.version
    assert outcome.base.version == register_shipped().version and version.parent == outcome.base
    assert not version.is_active and len(bytes(version.artifact)) > 100_000
    # Registered only after its stored file was loaded back and predicted the sample seven.
    assert version.verified_at is not None and version.verification["digits"][1] == 7
    assert 0.9 < version.mnist_accuracy <= 1 and version.reviewed_accuracy is not None
    assert (
        version.metadata["parameters"]["reviewed_train"] == 7 and version.metadata["parameters"]["reviewed_held"] == 3
    )
    assert any("reviewed" in line for line in lines)
    forced = retrain(epochs=1, digits=digits, force=True, log=lines.append)
    assert forced.promoted and ModelVersion.active() == forced.version and forced.version.parent == outcome.base


@pytest.mark.django_db(transaction=True)
def test_workers_switch_to_a_newly_activated_version_and_back(live_server_url):
    def predicted_version() -> str:
        image = samples.data_url(SEVEN)
        return requests.post(f"{live_server_url}/api/drawings/?wait=10", json={"image": image}, timeout=20).json()[
            "model_version"
        ]

    shipped = register_shipped()
    candidate = ModelVersion.objects.create(version="cnn-test-candidate", artifact=shipped_path().read_bytes())
    assert verify(candidate)
    candidate.activate()
    deadline = time.monotonic() + 20
    while predicted_version() != candidate.version:
        assert time.monotonic() < deadline, "the worker did not switch to the activated version"
        time.sleep(0.5)
    shipped.activate()  # roll back
    deadline = time.monotonic() + 20
    while predicted_version() != shipped.version:
        assert time.monotonic() < deadline, "the worker did not roll back"
        time.sleep(0.5)
