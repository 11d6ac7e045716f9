"""Nothing accepted is lost: workers killed mid-load, Redis restarted mid-load, tasks delivered twice."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest
import redis
import requests

from digitsite.celery import app as celery_app
from digitsite.redis_server import EmbeddedRedis, free_port
from digitsite.stack import beat_command, stop, wait_for_workers, worker_command
from recognizer.metrics import queue_depth
from recognizer.models import Drawing
from training import samples

pytestmark = pytest.mark.django_db(transaction=True)
SEVEN_URL = samples.data_url(samples.SEVEN)
MAINTENANCE_QUEUE = "maintenance"  # beat's tasks' own queue (settings.MAINTENANCE_QUEUE)


class Submitter(threading.Thread):
    """Posts drawings without waiting, as fast as the server takes them, until stopped."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.accepted, self.refused, self.running = url, [], [], True

    def run(self) -> None:
        session = requests.Session()
        while self.running:
            try:
                response = session.post(self.url + "/api/drawings/", json={"image": SEVEN_URL}, timeout=10)
            except requests.RequestException as exc:
                self.refused.append(repr(exc))
                continue
            (self.accepted if response.status_code == 202 else self.refused).append(response.json().get("id"))
            time.sleep(0.01)

    def stop(self) -> None:
        self.running = False
        self.join(15)


def wait_until_all_done(ids: list[str], timeout: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = dict.fromkeys(Drawing.Status.values, 0)
        for status in Drawing.objects.filter(pk__in=ids).values_list("status", flat=True):
            states[status] += 1
        if states[Drawing.Status.QUEUED] == 0:
            return states
        time.sleep(0.5)
    return states


def assert_each_predicted_once(ids: list[str]) -> None:
    done = Drawing.objects.filter(pk__in=ids, status="done")
    assert done.count() == len(set(ids))
    assert not done.filter(digit__isnull=True).exists() and not done.filter(finished_at__isnull=True).exists()


def pool_children(worker) -> list[psutil.Process]:
    return psutil.Process(worker.pid).children(recursive=True)


def test_it_loses_no_drawing_when_workers_are_killed(processes, live_server_url):
    submitter = Submitter(live_server_url)
    submitter.start()
    kills = 0
    for round_number in range(3):
        worker = processes.start(f"victim{round_number}", worker_command(f"victim{round_number}@%h"))
        wait_for_workers(2, [worker])  # the session's worker and this one
        time.sleep(0.7)
        # The pool child, mid-drawing: the parent puts its message back and starts a new child.
        [child] = pool_children(worker)
        child.kill()
        deadline = time.monotonic() + 30
        while [p.pid for p in pool_children(worker)] in ([], [child.pid]):
            assert time.monotonic() < deadline, "no new pool child"
            time.sleep(0.1)
        time.sleep(5)  # the new child loads the model and takes drawings again
        # Then the whole worker: its message comes back after the visibility timeout.
        for process in [*pool_children(worker), psutil.Process(worker.pid)]:
            process.kill()
        worker.wait()
        kills += 2
    submitter.stop()
    states = wait_until_all_done(submitter.accepted, timeout=60)
    print(f"kills: {kills}, accepted {len(submitter.accepted)}, final states {states}")
    assert len(submitter.accepted) > 200 and not submitter.refused
    assert_each_predicted_once(submitter.accepted)


def test_it_predicts_a_drawing_once_when_its_task_arrives_twice(live_server_url):
    body = requests.post(live_server_url + "/api/drawings/?wait=10", json={"image": SEVEN_URL}, timeout=20).json()
    first = Drawing.objects.get(pk=body["id"])
    for _ in range(2):
        celery_app.send_task("worker.tasks.predict_drawing", args=[body["id"]])
    time.sleep(1)
    again = Drawing.objects.get(pk=body["id"])
    assert (again.finished_at, again.digit, again.probabilities) == (
        first.finished_at,
        first.digit,
        first.probabilities,
    )


@pytest.fixture
def own_redis(processes, tmp_path):
    """A stack (web, worker, beat) on a Redis of its own, which the test may stop."""
    redis = EmbeddedRedis(tmp_path / "redis", port=free_port())
    env = processes.env
    processes.env = {**env, "REDIS_URL": redis.url}
    yield redis
    processes.env = env
    redis.stop()


def test_beat_logs_one_line_a_try_while_redis_is_down_not_its_tracebacks(processes, own_redis):
    # Each sweep it could not send was an ERROR with 200 lines of tracebacks: 1,200 a minute.
    beat = processes.start("outage-beat", beat_command())
    log = processes.logs / "outage-beat.log"
    queue = redis.Redis.from_url(own_redis.url)
    deadline = time.monotonic() + 30
    while queue.llen(MAINTENANCE_QUEUE) < 2:  # two sweeps sent (no worker takes them here)
        assert beat.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")
        time.sleep(0.1)
    queue.close()
    # Nor a line for each sweep it sent: "Scheduler: Sending due task" every 10 s, for ever.
    assert "Sending due task" not in log.read_text(errors="replace")
    own_redis.stop()
    wait_for_line(log, "Message Error", beat)
    time.sleep(1.5)  # another try or two (SWEEP_INTERVAL is 1 s here)
    written = log.read_text(errors="replace")
    assert "ERROR celery.beat: Message Error: Couldn't apply scheduled task requeue-stale-drawings" in written
    assert "Traceback" not in written, written


def test_sweeps_sent_while_no_worker_runs_are_dropped_and_not_counted_as_queued_drawings(
    processes, own_redis, settings
):
    # With workers stopped, a sweep a SWEEP_INTERVAL piled up in the drawings' queue: queue_depth
    # counted them, and returning workers would have run them all back to back.
    beat = processes.start("idle-beat", beat_command())
    queue = redis.Redis.from_url(own_redis.url)
    deadline = time.monotonic() + 30
    while queue.llen(MAINTENANCE_QUEUE) < 3:
        assert beat.poll() is None and time.monotonic() < deadline, "beat sent no sweeps to their queue"
        time.sleep(0.1)
    stop([beat])
    sent = queue.llen(MAINTENANCE_QUEUE)
    settings.REDIS_URL = own_redis.url
    assert queue.llen("celery") == queue_depth() == 0  # no drawing waits
    time.sleep(1.5)  # each has expired (SWEEP_INTERVAL is 1 s here)
    worker = processes.start("idle-worker", worker_command("idle@%h"))
    log = processes.logs / "idle-worker.log"
    discarded = "Discarding revoked task: worker.tasks.requeue_stale_drawings"
    deadline = time.monotonic() + 60
    while log.read_text(errors="replace").count(discarded) < sent:
        assert worker.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")
        time.sleep(0.1)
    assert queue.llen(MAINTENANCE_QUEUE) == 0 and log.read_text(errors="replace").count(discarded) == sent
    queue.close()


def wait_for_line(log: Path, text: str, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        assert process.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")
        time.sleep(0.1)


def test_it_loses_no_drawing_when_redis_restarts(processes, own_redis, tmp_path):
    port = free_port()
    worker = processes.start("redis-worker", worker_command("redisworker@%h"))
    processes.start("redis-beat", beat_command())
    processes.start_web(port)
    url = f"http://127.0.0.1:{port}"
    wait_for_workers(1, [worker], broker_url=own_redis.url)
    submitter = Submitter(url)
    submitter.start()
    time.sleep(2)
    own_redis.stop()  # everything in Redis is gone: queue, unacked messages, groups
    during_outage = len(submitter.accepted)
    time.sleep(3)
    during_outage = len(submitter.accepted) - during_outage
    restarted = EmbeddedRedis(tmp_path / "redis", port=own_redis.port)
    time.sleep(2)
    submitter.stop()
    try:
        states = wait_until_all_done(submitter.accepted, timeout=60)
    finally:
        restarted.stop()
    print(f"accepted {len(submitter.accepted)} ({during_outage} while Redis was down), final states {states}")
    assert during_outage > 0 and not submitter.refused
    assert_each_predicted_once(submitter.accepted)
