"""The web's publisher: ids handed over without waiting, several to a message only when they queue up."""

import threading
import time

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
