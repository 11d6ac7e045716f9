"""The web's publisher: ids handed over without waiting, several to a message only when they queue up;
the messages it writes are the ones Celery writes."""

import json
import threading
import time
import uuid

import pytest
import redis
from celery import Celery

from digitsite.redis_server import EmbeddedRedis
from recognizer import services, task_messages
from recognizer.publisher import Publisher


class SlowBroker:
    """Records each message; the first publish blocks until released, as a busy Redis would."""

    def __init__(self, fail_first: bool = False) -> None:
        self.messages: list[list[str]] = []
        self.release, self.fail_first = threading.Event(), fail_first

    def send(self, ids: list[str]) -> None:
        if not self.messages and not self.release.is_set():
            self.release.wait(5)
        self.messages.append(ids)
        if self.fail_first and len(self.messages) == 1:
            raise ConnectionError("Redis went away")


def wait_for(condition, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_ids_that_queue_up_behind_a_publish_go_in_one_message_of_at_most_most():
    broker = SlowBroker()
    publisher = Publisher(broker.send, most=3)
    publisher.put("a")
    time.sleep(0.05)  # "a" is being published, alone
    for name in "bcdef":
        publisher.put(name)
    broker.release.set()
    wait_for(lambda: sum(map(len, broker.messages)) == 6)
    assert broker.messages == [["a"], ["b", "c", "d"], ["e", "f"]]


def test_a_drawing_alone_is_sent_at_once():
    broker = SlowBroker()
    broker.release.set()
    publisher = Publisher(broker.send, most=64)
    started = time.monotonic()
    publisher.put("a")
    wait_for(lambda: broker.messages == [["a"]])
    assert time.monotonic() - started < 0.5


def test_a_failed_publish_does_not_stop_the_publisher(caplog):
    broker = SlowBroker(fail_first=True)
    broker.release.set()
    publisher = Publisher(broker.send, most=64)
    publisher.put("a")
    wait_for(lambda: len(broker.messages) == 1)
    publisher.put("b")
    wait_for(lambda: len(broker.messages) == 2)
    assert broker.messages[1] == ["b"] and "could not queue 1 drawing(s): a" in caplog.text


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


def test_a_task_message_is_the_one_celery_writes_for_the_same_task_but_for_its_ids(redis_server, settings):
    settings.CELERY_BROKER_URL = redis_server.url
    app = Celery("compared")
    app.config_from_object("django.conf:settings", namespace="CELERY")
    args = [str(uuid.uuid4()) for _ in range(3)]
    app.send_task(services.PREDICT_TASK, args=args)
    task_messages.publish(services.PREDICT_TASK, args, app.conf.task_default_queue)
    client = redis.Redis.from_url(redis_server.url)
    ours, celerys = (json.loads(m) for m in client.lrange(app.conf.task_default_queue, 0, -1))  # newest first
    app.close()
    assert ours["headers"]["id"] == ours["headers"]["root_id"] == ours["properties"]["correlation_id"]
    for message in (ours, celerys):  # what differs from one message to the next
        for part, name in [("headers", "id"), ("headers", "root_id"), ("headers", "origin"),
                           ("properties", "correlation_id"), ("properties", "reply_to"),
                           ("properties", "delivery_tag")]:  # fmt: skip
            assert message[part].pop(name)
    assert ours == celerys
