"""Deadlines that hold when Redis stops answering: packets dropped rather than connections refused.

A refused connection fails at once; a Redis that drops packets leaves a client waiting for
TCP's own timeouts, minutes. Two stand-ins, on 127.0.0.1: one accepts connections and never
answers (a Redis that hung, or whose replies are lost), one never completes a connection
(its SYNs are dropped). Each is the channel layer, with the project's own host settings.
"""

from __future__ import annotations

import asyncio
import copy
import json
import socket
import threading
import time

import pytest
from asgiref.sync import sync_to_async
from channels.layers import channel_layers, get_channel_layer
from channels.testing import WebsocketCommunicator
from channels_redis.core import RedisChannelLayer
from django.conf import settings as django_settings
from redis.exceptions import RedisError

from digitsite.asgi import application
from digitsite.redis_server import EmbeddedRedis
from recognizer import services
from recognizer.models import Drawing
from tests import factories
from training import samples

MARGIN = 0.75  # seconds past a deadline for the rest of the request on a busy 2-core machine


class SilentRedis:
    """Accepts connections and never answers."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0), backlog=100)
        self.held: list[socket.socket] = []
        threading.Thread(target=self._hold, daemon=True).start()

    def _hold(self) -> None:
        while True:
            try:
                self.held.append(self.server.accept()[0])
            except OSError:  # closed
                return

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.server.getsockname()[1]}/0"

    def close(self) -> None:
        for connection in [self.server, *self.held]:
            connection.close()


class UnreachableRedis(SilentRedis):
    """Never completes a connection: its one-slot backlog is full, so the kernel drops new SYNs."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0), backlog=0)
        self.held = [socket.create_connection(self.server.getsockname())]  # fills the backlog


@pytest.fixture(params=[SilentRedis, UnreachableRedis], ids=["silent", "unreachable"])
def dead_layer(request, settings):
    """The channel layer on a Redis that does not answer, with the project's timeouts."""
    dead = request.param()
    layers = copy.deepcopy(settings.CHANNEL_LAYERS)
    layers["default"]["CONFIG"]["hosts"][0]["address"] = dead.url
    settings.CHANNEL_LAYERS = layers
    channel_layers.backends.clear()
    yield dead
    channel_layers.backends.clear()
    dead.close()


def layer_host() -> dict:
    return django_settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"][0]


def test_every_redis_client_gives_up_on_a_redis_that_does_not_answer():
    host = layer_host()
    # Longer than the layer's own blocking read, or every idle consumer would time out.
    assert host["socket_timeout"] > RedisChannelLayer.brpop_timeout
    assert host["socket_connect_timeout"] <= 5
    broker = django_settings.CELERY_BROKER_TRANSPORT_OPTIONS
    assert broker["socket_timeout"] and broker["socket_connect_timeout"] <= 5
    assert django_settings.CELERY_BROKER_CONNECTION_TIMEOUT <= 5


@pytest.mark.django_db
def test_a_wait_answers_within_its_deadline_when_redis_drops_packets(client, dead_layer):
    started = time.monotonic()
    response = client.post("/api/drawings/?wait=2", data=samples.SEVEN, content_type="image/png")
    elapsed = time.monotonic() - started
    assert response.status_code == 202 and response.json()["status"] == "queued"
    assert 1.5 <= elapsed < 2 + MARGIN, elapsed  # polling the database stops a step early


@pytest.mark.django_db(transaction=True)
async def test_a_wait_still_finds_a_stored_result_when_redis_drops_packets(dead_layer):
    """Its push never came (the worker could not send it): the database has the last word, in time."""
    done = await sync_to_async(factories.drawing)()
    started = time.monotonic()
    result = await services.wait_for_result(done.id, await get_channel_layer().new_channel(), 2)
    assert result["digit"] == 7
    assert time.monotonic() - started < 2 + MARGIN


@pytest.mark.django_db(transaction=True)
async def test_a_websocket_on_a_redis_that_drops_packets_does_not_hang(dead_layer):
    """Within the layer's socket timeout the client has its answer or a closed socket, never silence."""
    communicator = WebsocketCommunicator(application, "/ws/recognize/")
    assert (await communicator.connect(timeout=5))[0]
    started = time.monotonic()
    await communicator.send_json_to({"type": "drawing", "image": samples.data_url(samples.SEVEN), "ref": "r"})
    limit = layer_host()["socket_timeout"] + 2
    while communicator.output_queue.empty() and not communicator.future.done():
        assert time.monotonic() - started < limit, "the consumer hangs"
        await asyncio.sleep(0.1)
    if not communicator.output_queue.empty():
        answer = json.loads(communicator.output_queue.get_nowait()["text"])
        assert answer["type"] in ("queued", "error")
    if communicator.future.done():
        # The consumer's own read from the layer gave up, which ends it: the server closes the
        # socket and the page reconnects.
        assert isinstance(communicator.future.exception(), RedisError | OSError)
    else:
        await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_an_idle_websocket_outlives_the_layers_blocking_read():
    """The socket timeout must not end a consumer that simply has nothing to read (redis/redis-py#4091)."""
    communicator = WebsocketCommunicator(application, "/ws/recognize/")
    assert (await communicator.connect(timeout=5))[0]
    await asyncio.sleep(RedisChannelLayer.brpop_timeout + 1.5)
    assert not communicator.future.done()
    await communicator.send_json_to({"type": "drawing", "image": samples.data_url(samples.SEVEN), "ref": "r"})
    assert (await communicator.receive_json_from(timeout=5))["type"] == "queued"
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_wait_goes_on_from_the_database_when_redis_goes_away_while_it_listens(settings, tmp_path):
    redis_server = EmbeddedRedis(tmp_path / "redis")
    layers = copy.deepcopy(settings.CHANNEL_LAYERS)
    layers["default"]["CONFIG"]["hosts"][0]["address"] = redis_server.url
    settings.CHANNEL_LAYERS = layers
    channel_layers.backends.clear()
    try:
        queued = await sync_to_async(factories.drawing)(status="queued", digit=None, confidence=None)
        waiting = asyncio.create_task(services.wait_for_result(queued.id, await get_channel_layer().new_channel(), 5))
        await asyncio.sleep(0.5)  # listening by now
        await asyncio.to_thread(redis_server.stop)
        await Drawing.objects.filter(pk=queued.id).aupdate(status="done", digit=3)  # a worker stored it
        result = await asyncio.wait_for(waiting, 6)
        assert result["status"] == "done" and result["digit"] == 3
    finally:
        channel_layers.backends.clear()
        redis_server.stop()
