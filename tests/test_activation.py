"""A broken model version never stops predictions: it is checked before activation, and a worker
that cannot load the active version keeps a good model and says so on /healthz."""

from __future__ import annotations

import logging
import os
import socket
import time

import pytest
import requests
from celery import Celery
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from digitsite.redis_server import EmbeddedRedis, free_port
from digitsite.stack import stop, worker_command
from recognizer import operations, worker_state
from recognizer.model_files import read_metadata, shipped_path
from recognizer.models import ModelVersion
from tests import factories
from training import samples
from worker import active_model
from worker.inference import runtime_path

MODEL_VERSIONS = "/admin/recognizer/modelversion/"


def a_copy_of_the_shipped_model(name: str, **fields) -> ModelVersion:
    return ModelVersion.objects.create(
        version=name,
        artifact=shipped_path().read_bytes(),
        runtime_artifact=runtime_path(shipped_path()).read_bytes(),  # what workers load
        metadata=read_metadata(shipped_path()),
        **fields,
    )


def activate_in_the_admin(admin_client, version: ModelVersion) -> tuple[str, str]:
    """The one message the admin shows after the action: (level, text)."""
    response = admin_client.post(MODEL_VERSIONS, {"action": "activate", "_selected_action": [version.pk]}, follow=True)
    [(level, message)] = [(m.level_tag, m.message) for m in response.context["messages"]]
    return level, message


@pytest.mark.django_db
def test_a_corrupt_artifact_fails_its_check_and_cannot_be_activated_from_the_admin(admin_client):
    good = a_copy_of_the_shipped_model("cnn-good")
    corrupt = ModelVersion.objects.create(version="cnn-corrupt", artifact=b"not a model")
    with pytest.raises(CommandError, match="1 version"):
        call_command("verify_models")  # every version not checked yet
    good.refresh_from_db()
    corrupt.refresh_from_db()
    # The check loaded the stored bytes and predicted: blank, then the sample seven.
    assert good.verified_at is not None and good.verification["digits"][1] == 7
    assert len(good.verification["probabilities"]) == 2 and len(good.verification["probabilities"][1]) == 10
    assert corrupt.verified_at is None and corrupt.verification["error"]
    assert activate_in_the_admin(admin_client, good)[0] == "success"
    level, message = activate_in_the_admin(admin_client, corrupt)
    assert level == "error" and "cnn-corrupt failed its check" in message and corrupt.verification["error"] in message
    assert ModelVersion.active() == good
    # Staff see why: the version's page shows the check's error, the list which versions passed.
    assert corrupt.verification["error"] in admin_client.get(f"{MODEL_VERSIONS}{corrupt.pk}/change/").text
    listing = admin_client.get(MODEL_VERSIONS).text
    # Two boolean columns, active and checked: both yes for the good version, both no for the corrupt one.
    assert listing.count('alt="True"') == listing.count('alt="False"') == 2


@pytest.mark.django_db
def test_activation_is_logged_with_who_and_when(admin_client, admin_user, caplog):
    checked = ModelVersion.objects.create(version="cnn-checked", artifact=b"-", verified_at=timezone.now())
    with caplog.at_level(logging.INFO, logger="recognizer.models"):
        assert activate_in_the_admin(admin_client, checked)[0] == "success"
    checked.refresh_from_db()
    assert checked.activated_by == admin_user
    [record] = [r for r in caplog.records if r.name == "recognizer.models"]
    message = record.getMessage()
    assert "cnn-checked activated by admin" in message and checked.activated_at.isoformat() in message


@pytest.mark.django_db
def test_activating_the_active_version_again_changes_nothing(admin_client):
    checked = ModelVersion.objects.create(version="cnn-checked", artifact=b"-", verified_at=timezone.now())
    # The admin capitalises a message's first letter: a version's name must not come first.
    assert activate_in_the_admin(admin_client, checked) == (
        "success", "Version cnn-checked is active; workers read with it from their next drawing."
    )  # fmt: skip
    checked.refresh_from_db()
    activated_at = checked.activated_at
    assert activate_in_the_admin(admin_client, checked) == ("info", "Version cnn-checked is already active.")
    checked.refresh_from_db()
    assert checked.activated_at == activated_at


@pytest.mark.django_db
@pytest.mark.parametrize("bulk", [False, True])
def test_the_active_version_cannot_be_deleted(admin_client, bulk):
    # Workers fell back to the shipped model, unannounced, when the active version was deleted.
    active = ModelVersion.objects.create(version="cnn-active", artifact=b"-", verified_at=timezone.now())
    active.activate()
    other = ModelVersion.objects.create(version="cnn-other", artifact=b"-")
    if bulk:
        form = {"action": "delete_selected", "_selected_action": [active.pk, other.pk], "post": "yes"}
        response = admin_client.post(MODEL_VERSIONS, form)
    else:
        response = admin_client.post(f"{MODEL_VERSIONS}{active.pk}/delete/", {"post": "yes"})
    assert response.status_code == 200 and "cnn-active is active: activate another version first" in response.text
    assert set(ModelVersion.objects.values_list("version", flat=True)) == {"cnn-active", "cnn-other"}
    ModelVersion.objects.filter(pk=active.pk).update(is_active=False)
    assert admin_client.post(f"{MODEL_VERSIONS}{active.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not ModelVersion.objects.filter(pk=active.pk).exists()


@pytest.mark.django_db
def test_a_worker_that_cannot_load_the_active_version_predicts_with_the_shipped_model(monkeypatch):
    # A fresh worker process, in this one: nothing held yet, no heartbeat thread.
    redis = worker_state.client()
    fresh = {"_predictor": None, "_wanted": None, "_failed_at": None, "_checked_at": 0.0, "_state": {}}
    for name, value in fresh.items():
        monkeypatch.setattr(active_model, name, value)
    monkeypatch.setattr(active_model, "_heartbeat_pid", os.getpid())
    monkeypatch.setattr(active_model, "_redis", redis)
    me = f"{socket.gethostname()}:{os.getpid()}"
    try:
        # Forced active behind activate()'s back, as a manual UPDATE or a bad migration would.
        ModelVersion.objects.create(version="cnn-corrupt", artifact=b"not a model", is_active=True)
        model = active_model.current()
        shipped = read_metadata(shipped_path())["version"]
        assert model.version == shipped and model.predict(samples.digits(1)[0] / 255).shape == (1, 10)
        state = worker_state.read(redis)[me]
        assert state["serving"] == shipped and state["wanted"] == "cnn-corrupt" and state["error"]
        [problem] = operations.model_states()["problems"]
        assert me in problem and "cnn-corrupt" in problem and shipped in problem
        # Rolled back: the next look loads what is active now, and the complaint is gone.
        ModelVersion.objects.filter(version="cnn-corrupt").delete()
        monkeypatch.setattr(active_model, "_checked_at", 0.0)
        assert active_model.current().version == shipped
        assert worker_state.read(redis)[me] == {"serving": shipped, "wanted": None, "error": None}
        assert operations.model_states()["problems"] == []
    finally:
        redis.delete(worker_state.KEY_PREFIX + me)
        redis.close()


def test_a_worker_that_stopped_writing_drops_out():
    redis = worker_state.client()
    try:
        worker_state.publish(redis, "gone:1", {"serving": "a", "wanted": "b", "error": "x"})
        assert "gone:1" in worker_state.read(redis)
        redis.delete(worker_state.KEY_PREFIX + "gone:1")  # as its TTL would
        assert "gone:1" not in worker_state.read(redis)
        assert worker_state.KEY_PREFIX.encode() + b"gone:1" not in redis.smembers(worker_state.INDEX)
    finally:
        redis.close()


@pytest.mark.django_db(transaction=True)
def test_a_corrupt_version_forced_active_leaves_the_worker_on_the_last_good_model(live_server_url):
    def predict() -> dict:
        image = samples.data_url(samples.SEVEN)
        return requests.post(f"{live_server_url}/api/drawings/?wait=10", json={"image": image}, timeout=20).json()

    def health() -> requests.Response:
        return requests.get(f"{live_server_url}/healthz", timeout=10)

    good = a_copy_of_the_shipped_model("cnn-last-good", verified_at=timezone.now())
    good.activate()
    deadline = time.monotonic() + 30
    while predict()["model_version"] != good.version:
        assert time.monotonic() < deadline, "the worker did not switch to the good version"
        time.sleep(0.5)
    assert health().status_code == 200

    ModelVersion.objects.filter(pk=good.pk).update(is_active=False)
    ModelVersion.objects.create(version="cnn-corrupt", artifact=b"not a model", is_active=True)
    deadline = time.monotonic() + 30
    while (response := health()).status_code == 200:
        assert time.monotonic() < deadline, "/healthz stayed green while the worker could not load the active version"
        answer = predict()
        assert (answer["status"], answer["digit"], answer["model_version"]) == ("done", 7, good.version)
        time.sleep(0.5)
    body = response.json()
    assert response.status_code == 503 and body["status"] == "unhealthy"
    assert body["database"] == body["redis"] == "ok" and body["workers"] >= 1  # only the model is wrong
    [problem] = body["models"]["problems"]
    assert "cannot load cnn-corrupt" in problem and f"predicts with {good.version}" in problem
    answer = predict()  # still predicting, with the last good model
    assert (answer["status"], answer["digit"], answer["model_version"]) == ("done", 7, good.version)

    good.activate()  # the rollback an operator would make
    deadline = time.monotonic() + 30
    while health().status_code != 200:
        assert time.monotonic() < deadline, "/healthz stayed red after the rollback"
        time.sleep(0.5)
    assert predict()["model_version"] == good.version


@pytest.mark.django_db(transaction=True)
def test_a_worker_whose_model_file_is_missing_stops_at_start_and_takes_no_drawing(processes, tmp_path):
    # It logged a traceback, said ready, answered pings, and failed every drawing it took until
    # the drawing's tries were used up.
    redis = EmbeddedRedis(tmp_path / "redis", port=free_port())  # no other worker takes the drawing
    waiting = factories.drawing(digit=None, status="queued", enqueued_at=factories.not_yet_stale())
    Celery(broker=redis.url).send_task("worker.tasks.predict_drawing", args=[str(waiting.pk)])
    missing = tmp_path / "nonexistent.keras"
    env = {**processes.env, "REDIS_URL": redis.url, "MODEL_PATH": str(missing)}
    worker = processes.start("no-model-worker", worker_command("nomodel@%h"), env)
    try:
        assert worker.wait(60) == 1
    finally:
        stop([worker])
        redis.stop()
    log = (processes.logs / "no-model-worker.log").read_text(errors="replace")
    assert f"cannot start: the model {missing} cannot be loaded" in log and "ready." not in log
    waiting.refresh_from_db()
    assert (waiting.status, waiting.attempts, waiting.started_at) == ("queued", 0, None)


def test_a_broken_model_file_stops_the_worker_naming_it(settings, tmp_path):
    broken = tmp_path / "model.keras"
    broken.with_suffix(".json").write_text('{"version": "cnn-broken"}')
    broken.with_suffix(".tflite").write_bytes(b"not a model")
    settings.MODEL_PATH = str(broken)
    with pytest.raises(SystemExit, match=rf"cannot start: the model {broken} cannot be loaded \(ValueError"):
        active_model.fallback_or_exit()
    settings.MODEL_PATH = ""
    active_model.fallback_or_exit()  # the shipped file loads: nothing to say
