"""What operators see: /healthz for load balancers, /metrics for Prometheus."""

from __future__ import annotations

import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
import requests
import yaml
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from digitsite.celery import app as celery_app
from digitsite.redis_server import free_port
from digitsite.stack import shared_metrics, wait_for_port, web_command
from recognizer import metrics, operations, worker_state
from tests.factories import drawing
from training import samples

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def nothing_cached():
    """Each test reads afresh: the caches live as long as the (test) process."""
    operations.HEALTH.forget()
    metrics.STORED_FIGURES.cached.forget()
    yield
    operations.HEALTH.forget()
    metrics.STORED_FIGURES.cached.forget()


def metric(text: str, name: str) -> float:
    """The sum of a metric's samples in Prometheus' text format."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_it_is_healthy_with_a_database_redis_and_a_worker(live_server_url):
    response = requests.get(live_server_url + "/healthz", timeout=10)
    body = response.json()
    assert response.status_code == 200 and body["status"] == "ok"
    assert body["database"] == body["redis"] == "ok" and body["workers"] >= 1 and body["queue_depth"] >= 0


def test_it_is_unhealthy_without_redis(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "unhealthy" and response.json()["redis"].startswith("error")


def test_it_counts_drawings_predictions_and_latency(live_server_url):
    before = requests.get(live_server_url + "/metrics", timeout=10).text
    answer = requests.post(
        live_server_url + "/api/drawings/?wait=10", json={"image": samples.data_url(samples.SEVEN)}, timeout=20
    ).json()
    requests.post(live_server_url + "/api/drawings/", json={"image": "data:image/png;base64,@@"}, timeout=10)
    after = requests.get(live_server_url + "/metrics", timeout=10).text
    received = 'digits_drawings_received_total{source="api"}'
    assert metric(after, received) == metric(before, received) + 1
    assert metric(after, 'digits_drawings_refused_total{code="invalid_base64"}') >= 1
    assert (
        metric(after, "digits_end_to_end_latency_seconds_count")
        == metric(before, "digits_end_to_end_latency_seconds_count") + 1
    )
    version = f'digits_answered_drawings{{model_version="{answer["model_version"]}",status="done"}}'
    assert metric(after, version) >= 1
    assert "digits_queue_depth" in after and "digits_drawings_queued" in after


def test_web_processes_behind_one_port_count_together(processes, tmp_path):
    # Two uvicorn processes share the port and each keeps its own counters: every scrape, whichever
    # process answers it, must give the sum of both.
    port, directory = free_port(), tmp_path / "metrics"
    env = {**processes.env, **shared_metrics(2, directory)}
    wait_for_port("127.0.0.1", port, processes.start("web-two", web_command("127.0.0.1", port, 2), env))
    url = f"http://127.0.0.1:{port}"

    def refused(_) -> int:  # a connection of its own, so that either process may take it
        return requests.post(url + "/api/drawings/", json={"image": "data:image/png;base64,@@"}, timeout=10).status_code

    # Which process accepts a connection is the kernel's choice: on a busy machine one may take a
    # whole round. Rounds go on until both processes have refused some (each has its file).
    sent = 0
    with ThreadPoolExecutor(8) as pool:
        while len(list(directory.glob("counter_*.db"))) < 2 and sent < 400:
            assert set(pool.map(refused, range(40))) == {400}
            sent += 40
    assert len(list(directory.glob("counter_*.db"))) == 2  # both processes refused some
    name = 'digits_drawings_refused_total{code="invalid_base64"}'
    scrapes = [requests.get(url + "/metrics", timeout=10).text for _ in range(10)]
    assert [metric(text, name) for text in scrapes] == [sent] * 10
    assert all("digits_queue_depth" in text for text in scrapes)  # the shared figures too


def test_it_is_unhealthy_when_no_worker_process_holds_a_model(client, monkeypatch):
    """A worker's main process answers the ping while its model-holding child is hung (seen with
    the child stopped: the oldest drawing aged and /healthz stayed 200)."""
    monkeypatch.setattr(celery_app.control, "ping", lambda *a, **k: [{"worker@host": {"ok": "pong"}}])
    monkeypatch.setattr(worker_state, "read", lambda connection: {})
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 503 and body["status"] == "unhealthy" and body["workers"] == 1
    [problem] = body["models"]["problems"]
    assert "no worker process holding a model" in problem
    serving = {"host:1": {"serving": "cnn-x", "wanted": None, "error": None}}
    monkeypatch.setattr(worker_state, "read", lambda connection: serving)
    operations.HEALTH.forget()
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json()["models"]["problems"] == []


def test_health_counts_every_worker_process_holding_a_model(client, monkeypatch):
    # The ping stops at the first answer; WORKERS=2 was reported as one worker.
    monkeypatch.setattr(celery_app.control, "ping", lambda *a, **k: [{"worker1@host": {"ok": "pong"}}])
    serving = {f"host:{pid}": {"serving": "cnn-x", "wanted": None, "error": None} for pid in (11, 12)}
    monkeypatch.setattr(worker_state, "read", lambda connection: serving)
    body = client.get("/healthz").json()
    assert body["status"] == "ok" and body["workers"] == 2
    monkeypatch.setattr(celery_app.control, "ping", lambda *a, **k: [])  # none answers: their states are stale
    operations.HEALTH.forget()
    body = client.get("/healthz").json()
    assert body["status"] == "unhealthy" and body["workers"] == 0


def test_health_is_read_at_most_once_a_period(client, settings, monkeypatch):
    settings.HEALTH_CACHE_SECONDS = 60
    pings = []
    real_ping = celery_app.control.ping
    monkeypatch.setattr(celery_app.control, "ping", lambda *a, **k: pings.append(1) or real_ping(*a, **k))
    drawing(digit=None, status="queued", created_at=timezone.now() - timedelta(seconds=30))
    first = client.get("/healthz").json()  # no worker in this process's reach: unhealthy, after a 1 s ping
    assert len(pings) == 1 and 29 < first["oldest_queued_seconds"] < 60
    assert {"database", "redis", "workers", "queue_depth", "status"} <= first.keys()
    drawing(digit=None, status="queued", created_at=timezone.now() - timedelta(hours=1))
    assert [client.get("/healthz").json() for _ in range(5)] == [first] * 5 and len(pings) == 1
    settings.HEALTH_CACHE_SECONDS = 0  # the period is over
    assert client.get("/healthz").json()["oldest_queued_seconds"] >= 3600 and len(pings) == 2


def test_metrics_read_the_database_at_most_once_a_period(client, settings):
    settings.METRICS_CACHE_SECONDS = 60
    drawing()
    with CaptureQueriesContext(connection) as first:
        text = client.get("/metrics").content.decode()
    assert len(first) >= 3 and metric(text, "digits_answered_drawings") == 1  # GROUP BY, queued count, oldest
    drawing()
    with CaptureQueriesContext(connection) as again:
        texts = [client.get("/metrics").content.decode() for _ in range(5)]
    assert len(again) == 0 and all(metric(t, "digits_answered_drawings") == 1 for t in texts)
    settings.METRICS_CACHE_SECONDS = 0  # the period is over
    with CaptureQueriesContext(connection) as later:
        text = client.get("/metrics").content.decode()
    assert len(later) >= 3 and metric(text, "digits_answered_drawings") == 2
    assert "digits_oldest_queued_seconds" in text


def test_metrics_token_is_required_when_set(client, settings):
    settings.METRICS_TOKEN = "s3cret-token"
    missing = client.get("/metrics")
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "unauthorized"
    assert missing["WWW-Authenticate"].startswith("Bearer")
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "forbidden"
    assert client.get("/metrics", HTTP_AUTHORIZATION="Basic czNjcmV0LXRva2Vu").status_code == 401
    right = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token")
    assert right.status_code == 200 and "digits_drawings_received_total" in right.content.decode()
    # The scheme's case is free (RFC 7235), the token's is not: "bearer" was refused with 401.
    assert [client.get("/metrics", HTTP_AUTHORIZATION=f"{scheme} s3cret-token").status_code
            for scheme in ("bearer", "BEARER", "beARer")] == [200] * 3  # fmt: skip
    assert client.get("/metrics", HTTP_AUTHORIZATION="bearer S3CRET-TOKEN").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearers3cret-token").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token ").status_code == 200  # a space after
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 200  # unset: public


def test_the_compose_web_healthcheck_passes_behind_production_settings(live_server_url, processes):
    # A site's own name in ALLOWED_HOSTS and HTTPS=true, as the README recommends: a plain request
    # to 127.0.0.1 was refused (400, a host not allowed), then redirected to https.
    compose = yaml.safe_load((Path(__file__).parent.parent / "docker-compose.yml").read_text())
    check = compose["services"]["web"]["healthcheck"]["test"][-1]
    allowed = compose["x-app"]["environment"]["ALLOWED_HOSTS"].replace("${ALLOWED_HOSTS:-127.0.0.1}", "digits.example")
    port = free_port()
    env = {**processes.env, "ALLOWED_HOSTS": allowed, "HTTPS": "true", "SECRET_KEY": "k" + uuid.uuid4().hex * 2}
    wait_for_port("127.0.0.1", port, processes.start("web-production", web_command("127.0.0.1", port), env))
    command = [sys.executable, "-c", check.replace("127.0.0.1:8000", f"127.0.0.1:{port}")]
    assert subprocess.run(command, capture_output=True, text=True, timeout=60).returncode == 0
    # The check as it was, a plain request, fails there.
    plain = f"import urllib.request as u; u.urlopen('http://127.0.0.1:{port}/healthz')"
    assert subprocess.run([sys.executable, "-c", plain], capture_output=True, timeout=60).returncode != 0
