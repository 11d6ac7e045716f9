"""What operators see: /healthz for load balancers, /metrics for Prometheus."""

from __future__ import annotations

import pytest
import requests

from training import samples

pytestmark = pytest.mark.django_db(transaction=True)


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
    version = f'digits_predictions_total{{model_version="{answer["model_version"]}",status="done"}}'
    assert metric(after, version) >= 1
    assert "digits_queue_depth" in after and "digits_drawings_queued" in after
