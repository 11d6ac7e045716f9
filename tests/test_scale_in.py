"""Scale-in: a worker told to stop (SIGTERM, as Kubernetes and `docker stop` do) leaves nothing behind.

It finishes the batch it holds, takes nothing new, and exits within the grace period its pod
gets (deploy/k8s); every drawing it did not answer is free and has its message waiting, so
the next worker answers it at once, not after the visibility timeout or the sweeper's
STALE_AFTER (both set far beyond this test's deadlines here).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from datetime import timedelta

import pytest
import redis
import yaml
from django.conf import settings
from django.utils import timezone

from digitsite.celery import app as celery_app
from digitsite.stack import BASE_DIR, wait_for_workers, worker_command
from recognizer import backlog
from recognizer.models import Drawing
from recognizer.services import PREDICT_TASK
from tests.factories import arrived
from training import samples

pytestmark = pytest.mark.django_db(transaction=True)
# What Kubernetes gives a worker pod between SIGTERM and SIGKILL.
WORKER_POD = next(yaml.safe_load_all((BASE_DIR / "deploy" / "k8s" / "base" / "worker.yaml").read_text()))
GRACE_SECONDS = WORKER_POD["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
QUEUE = f"scale-in-{os.getpid()}"  # its own queue, so that no other worker of the session takes these
# Large canvases: a batch holds ~16 of them (PREDICT_BATCH_PIXELS) and takes a good part of a second.
CANVAS = samples.digit_canvas(samples.digits(1)[0][0], "dark_on_light", size=1000, side=700, at=(150, 150))


def start_worker(processes, name: str) -> subprocess.Popen:
    # Redelivery and the sweeper far beyond the test's deadlines: only a prompt hand-back passes.
    env = processes.env | {"VISIBILITY_TIMEOUT": "600", "STALE_AFTER": "600"}
    log = open(processes.logs / f"{name}.log", "ab")  # noqa: SIM115 - the child holds it
    command = [*worker_command(f"{name}@%h"), "-Q", QUEUE]
    worker = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=log, stderr=log)
    processes.started.append(worker)
    return worker


def in_flight() -> set:
    """Drawings a worker has taken and not yet answered."""
    return set(Drawing.objects.queued().filter(started_at__isnull=False).values_list("pk", flat=True))


def messages_waiting() -> tuple[set[str], int]:
    """The drawing ids named by messages in this test's queue, and its messages taken but not acknowledged."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    waiting = {i for raw in client.lrange(QUEUE, 0, -1) for i in backlog._drawing_ids(json.loads(raw), PREDICT_TASK)}
    taken = [json.loads(raw) for raw in client.hvals("unacked")]
    return waiting, sum(1 for entry in taken if entry[2] == QUEUE)


def test_a_worker_told_to_stop_finishes_its_batch_and_hands_back_the_rest(processes):
    fields = {"image": CANVAS, "content_type": "image/png", "width": 1000, "height": 1000, "source": "api"}
    drawings = [arrived(**fields) for _ in range(120)]
    # Out of reach of the session's sweeper (STALE_AFTER=3 s, where live_server_url runs): it
    # would see their messages missing from the default queue and send them to its own worker.
    Drawing.objects.filter(pk__in=[d.pk for d in drawings]).update(enqueued_at=timezone.now() + timedelta(hours=1))
    for drawing in drawings:
        celery_app.send_task(PREDICT_TASK, args=[str(drawing.pk)], queue=QUEUE)
    leaving = start_worker(processes, "leaving")
    wait_for_workers(1, [leaving])
    deadline = time.monotonic() + 60
    while not (held := in_flight()):
        assert time.monotonic() < deadline and leaving.poll() is None, "the worker took no batch"
        time.sleep(0.005)

    leaving.send_signal(signal.SIGTERM)
    told = time.monotonic()
    assert leaving.wait(GRACE_SECONDS) == 0, "it did not exit cleanly within the grace period"
    exited_s = time.monotonic() - told
    answered = Drawing.objects.exclude(status=Drawing.Status.QUEUED)
    assert answered.filter(pk__in=held).count() == len(held), "the batch in hand at SIGTERM was answered"
    assert not in_flight(), "nothing is left held, waiting for its claim to run out"
    left = {str(pk) for pk in Drawing.objects.queued().values_list("pk", flat=True)}
    waiting, taken = messages_waiting()
    assert left and left <= waiting and taken == 0, "every drawing left has its message back in the queue"

    successor = start_worker(processes, "successor")
    try:
        deadline = time.monotonic() + 60
        while Drawing.objects.queued().exists():
            assert time.monotonic() < deadline and successor.poll() is None, (
                "the drawings handed back were not answered"
            )
            time.sleep(0.2)
    finally:
        # The rest of the session must not meet this queue's messages, which name drawings about to be deleted.
        successor.send_signal(signal.SIGTERM)
        successor.wait(GRACE_SECONDS)
        redis.Redis.from_url(settings.REDIS_URL).delete(QUEUE)
    print(f"\nscale-in: {len(held)} in hand at SIGTERM, exited after {exited_s:.1f} s, {len(left)} handed back")
