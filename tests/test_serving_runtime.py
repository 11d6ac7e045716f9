"""Workers serve the Keras model's LiteRT export (issue #14): the same answers, batched, without TensorFlow."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import numpy as np
import psutil
import pytest
import requests

from recognizer.model_files import shipped_path
from recognizer.models import ModelVersion
from training import samples
from training.export import PARITY_TOLERANCE, configure_tensorflow, export_runtime, keras_probabilities
from worker.inference import BUCKETS, Predictor, runtime_path

# Files a process has mapped that only TensorFlow or Keras would bring in.
TENSORFLOW_FILE = re.compile(r"/site-packages/(tensorflow|keras|tf_keras)/|libtensorflow")


@cache
def keras_model():
    configure_tensorflow()
    import keras

    return keras.models.load_model(shipped_path(), compile=False)


@cache
def shipped() -> Predictor:
    return Predictor.from_file(shipped_path())


def test_the_shipped_export_lies_beside_the_keras_file_and_is_small():
    exported = runtime_path(shipped_path())
    assert exported.name == "model.tflite" and exported.parent == shipped_path().parent
    assert 100_000 < exported.stat().st_size < 2_000_000


def test_the_export_answers_what_the_keras_model_answers(test_digits):
    # test_digits: the project's sample digits always, MNIST test where its files are present.
    images, _ = test_digits
    x = images.astype(np.float32) / 255
    expected, got = keras_probabilities(keras_model(), x), shipped().predict(x)
    assert got.shape == expected.shape == (len(x), 10) and got.dtype == np.float32
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).all()
    assert np.abs(got - expected).max() <= PARITY_TOLERANCE


@pytest.mark.parametrize("n", [1, 3, 8, 63, 64, 65, 200])
def test_a_batch_answers_what_each_drawing_answers_alone(n):
    images = samples.digits(n)[0].astype(np.float32) / 255
    together = shipped().predict(images)
    alone = np.concatenate([shipped().predict(image[None]) for image in images])
    assert together.shape == (n, 10)
    assert np.abs(together - alone).max() <= 1e-6


def test_each_batch_size_bucket_is_planned_once():
    predictor = Predictor.from_file(shipped_path())
    images = samples.digits(64)[0].astype(np.float32) / 255
    predictor.predict(images[:4])
    planned = dict(predictor._interpreters)
    for n in (3, 4, 3, 2, 4):
        predictor.predict(images[:n])
    assert set(predictor._interpreters) == {1, 2, 4}  # 1: the warm-up at load; 3 goes as 2 + 1
    assert predictor._interpreters[4] is planned[4]
    predictor.predict(images[:9])
    assert set(predictor._interpreters) == {1, 2, 4, 8}  # 9 = 8 + 1: nothing padded
    predictor.predict(np.concatenate([images, images]))
    assert max(predictor._interpreters) == BUCKETS[-1] == 64


def perturbed_export() -> bytes:
    """An export of another model: the shipped one with its weights nudged (it answers differently)."""
    import keras

    model = keras.models.clone_model(keras_model())
    rng = np.random.default_rng(0)
    model.set_weights(keras_model().get_weights())
    for weight in model.weights:
        if weight.path.endswith("kernel"):
            weight.assign(weight.numpy() * rng.normal(1, 0.3, weight.shape).astype(np.float32))
    return export_runtime(model)


@pytest.mark.django_db
def test_a_version_whose_export_differs_from_its_keras_model_is_refused():
    from training.retraining import verify

    version = ModelVersion.objects.create(
        version="cnn-bad-export",
        artifact=shipped_path().read_bytes(),
        runtime_artifact=perturbed_export(),
        metadata={"version": "cnn-bad-export"},
    )
    assert not verify(version)
    version.refresh_from_db()
    assert version.verified_at is None
    assert re.search(r"another digit|differ", version.verification["error"]), version.verification
    assert version.verification["parity"]["max_abs_difference"] > PARITY_TOLERANCE
    with pytest.raises(ModelVersion.NotVerified):
        version.activate()


@pytest.mark.django_db
def test_verify_exports_a_version_registered_without_an_export_and_records_parity():
    from training.retraining import verify

    version = ModelVersion.objects.create(version="cnn-unexported", artifact=shipped_path().read_bytes())
    assert verify(version)
    version.refresh_from_db()
    assert len(bytes(version.runtime_artifact)) > 100_000 and version.verified_at is not None
    parity = version.verification["parity"]
    assert parity["images"] == 502 and parity["argmax_differs"] == 0
    assert parity["max_abs_difference"] <= PARITY_TOLERANCE


def mapped_files(pid: int) -> set[str]:
    with open(f"/proc/{pid}/maps") as maps:
        return {line.split(maxsplit=5)[5].strip() for line in maps if len(line.split(maxsplit=5)) == 6}


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc/<pid>/maps (Linux)")
def test_the_worker_predicts_without_tensorflow_in_a_small_process(processes, live_server_url):
    images, _ = samples.digits(20)
    styles = list(samples.STYLES)
    for i, image in enumerate(images):
        canvas = samples.digit_canvas(image, styles[i % len(styles)])
        body = requests.post(
            f"{live_server_url}/api/drawings/?wait=20", json={"image": samples.data_url(canvas)}, timeout=30
        ).json()
        assert body["status"] == "done", body
    # The live one: a browser test may have stopped the first and started another of that name.
    [worker] = [p for p in processes.started if "worker1@%h" in p.args and p.poll() is None]
    parent = psutil.Process(worker.pid)
    children = parent.children(recursive=True)
    assert children, "no pool child"
    for process in [parent, *children]:
        files = mapped_files(process.pid)
        assert any("ai_edge_litert" in f for f in files) or process is parent
        assert not [f for f in files if TENSORFLOW_FILE.search(f)], f"pid {process.pid} maps TensorFlow files"
    for child in children:  # the model-holding pool child, after answering drawings
        rss = child.memory_info().rss / 2**20
        print(f"pool child {child.pid}: {rss:.0f} MB RSS")
        assert rss < 250, f"{rss:.0f} MB"
