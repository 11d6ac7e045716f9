"""Backpressure and the sweeper under a backlog, on real Redis servers of their own (no worker reads them).

Each test's broker is a private Redis, so that a worker that other tests started on the
session's Redis cannot consume (or be handed) the messages these tests put in the queue.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
import redis
from asgiref.sync import sync_to_async
from celery import Celery
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from digitsite.asgi import application
from digitsite.redis_server import EmbeddedRedis
from recognizer import backlog, services
from recognizer.models import Drawing
from tests import factories
from training import samples

QUEUE = backlog.QUEUE


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory):
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def broker(private_redis, settings):
    """The private Redis as the broker whose queue backpressure reads, emptied for each test."""
    client = redis.Redis.from_url(private_redis.url)
    client.flushdb()
    backlog._readings.clear()  # a reading of the last test's backlog is not this one's
    settings.CELERY_BROKER_URL = private_redis.url
    yield client
    client.close()


def fill(client: redis.Redis, count: int) -> None:
    """`count` messages waiting in the queue, as a backlog nobody is working on."""
    client.lpush(QUEUE, *[json.dumps({"headers": {"task": "other"}}) for _ in range(count)])


def waiting(count: int) -> list[Drawing]:
    """`count` drawings queued and not answered: the backlog that sheds load."""
    return [factories.drawing(digit=None, status="queued") for _ in range(count)]


@pytest.mark.django_db
def test_it_sheds_load_over_http_with_503_and_retry_after_and_stores_nothing(client, broker, settings):
    settings.MAX_BACKLOG = 5
    waiting(5)
    response = client.post("/api/drawings/", data=samples.SEVEN, content_type="image/png")
    assert response.status_code == 503 and response.json()["error"]["code"] == "overloaded"
    assert int(response["Retry-After"]) >= 1
    assert Drawing.objects.count() == 5  # nothing stored
    # Once the backlog is answered, the next reading (at most a second later) lets drawings in.
    Drawing.objects.update(status="done")
    time.sleep(backlog.READING_SECONDS + 0.1)
    assert client.post("/api/drawings/", data=samples.SEVEN, content_type="image/png").status_code == 202


@pytest.mark.django_db
def test_it_takes_drawings_below_the_backlog_and_when_it_is_off(client, broker, settings):
    settings.MAX_BACKLOG = 5
    waiting(4)
    fill(broker, 100)  # messages are not the measure: one may carry several drawings, or none of ours
    assert client.post("/api/drawings/", data=samples.SEVEN, content_type="image/png").status_code == 202
    settings.MAX_BACKLOG = 0
    waiting(100)
    assert client.post("/api/drawings/", data=samples.SEVEN, content_type="image/png").status_code == 202


@pytest.mark.django_db(transaction=True)
async def test_it_sheds_load_over_the_websocket_with_an_overloaded_frame(broker, settings):
    settings.MAX_BACKLOG = 3
    await sync_to_async(waiting)(10)
    communicator = WebsocketCommunicator(application, "/ws/recognize/")
    assert (await communicator.connect(timeout=5))[0]
    await communicator.send_json_to({"type": "drawing", "image": samples.data_url(samples.SEVEN), "ref": "r1"})
    answer = await communicator.receive_json_from(timeout=5)
    await communicator.disconnect()
    assert answer["type"] == "error" and answer["code"] == "overloaded" and answer["ref"] == "r1"
    assert answer["retry_after"] >= 1
    assert await Drawing.objects.acount() == 10  # nothing stored


def test_the_openapi_document_lists_503_for_new_drawings(client):
    create = client.get("/api/openapi.json").json()["paths"]["/api/drawings/"]["post"]
    assert "503" in create["responses"]


@pytest.mark.django_db(transaction=True)
async def test_one_reading_serves_a_second_of_drawings(broker, settings):
    settings.MAX_BACKLOG = 5
    assert await backlog.depth() == 0
    await sync_to_async(waiting)(5)
    assert await backlog.depth() == 0  # the cached reading
    time.sleep(backlog.READING_SECONDS + 0.1)
    assert await backlog.depth() == 5


@pytest.fixture
def celery_on_broker(broker, private_redis, monkeypatch):
    """A Celery app with the project's settings on the private Redis, used by the sweeper to read and publish."""
    app = Celery("sweeper-test")
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.conf.broker_url = private_redis.url
    monkeypatch.setattr(services, "celery_app", app)
    monkeypatch.setattr(backlog, "celery_app", app)
    yield app
    app.close()


def newest_message_id(client: redis.Redis) -> str:
    """The drawing id of the message published last (kombu pushes on the left)."""
    return json.loads(client.lindex(QUEUE, 0))["headers"]["argsrepr"].strip("[]'")


def stale_drawings(count: int) -> list[Drawing]:
    long_ago = timezone.now() - timedelta(minutes=5)
    return [factories.drawing(digit=None, status="queued", enqueued_at=long_ago) for _ in range(count)]


@pytest.mark.django_db
def test_the_sweeper_publishes_only_what_the_broker_lost(broker, celery_on_broker):
    *published, together, lost = stale_drawings(13)
    for drawing in published:
        celery_on_broker.send_task(services.PREDICT_TASK, args=[str(drawing.id)])
    # The web's publisher puts drawings that arrived together in one message: all of them count.
    celery_on_broker.send_task(services.PREDICT_TASK, args=[str(published[-1].id), str(together.id)])
    # A worker takes one: kombu keeps it in the `unacked` hash while the connection that took
    # it is open (and puts it back in the queue when that closes without an ack).
    with celery_on_broker.connection_for_read() as connection:
        message = connection.default_channel.basic_get(QUEUE, no_ack=False)
        assert message.headers["argsrepr"] == f"['{published[0].id}']"  # the oldest message comes first
        broker.lpush(QUEUE, b"not kombu's")  # junk in the queue must not stop the sweeper
        before = broker.llen(QUEUE)

        assert services.requeue_stale(older_than=30) == 1
        assert broker.llen(QUEUE) == before + 1
        assert newest_message_id(broker) == str(lost.id)  # the lost one, and only it, was published
    # All of them were looked at: none is stale again until STALE_AFTER from now.
    assert not Drawing.objects.queued().filter(enqueued_at__lt=timezone.now() - timedelta(seconds=30)).exists()


@pytest.mark.django_db
def test_the_sweeper_publishes_nothing_while_the_queue_is_over_its_read_limit(broker, celery_on_broker, settings):
    settings.SWEEP_READ_LIMIT = 20
    stale_drawings(3)
    fill(broker, 21)
    assert services.requeue_stale(older_than=30) == 0
    assert broker.llen(QUEUE) == 21


@pytest.mark.django_db
def test_the_sweeper_publishes_when_it_cannot_read_the_broker(celery_on_broker, private_redis, tmp_path):
    # A Redis that has gone away: reading the queue fails, so the stale drawings are published,
    # as before backpressure (the publish fails too, and they stay queued for the next sweep).
    gone = EmbeddedRedis(tmp_path / "gone")
    gone.stop()
    celery_on_broker.conf.broker_url = gone.url
    stale_drawings(2)
    started = time.monotonic()
    assert services.requeue_stale(older_than=30) == 2
    assert time.monotonic() - started < 15
