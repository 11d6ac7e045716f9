"""What a prediction task's own steps cost: loading a drawing through the ORM or plain SQL, publishing
its message through Celery's send_task or one LPUSH (recognizer.task_messages).

    .venv/bin/python -m benchmarks.task_queries [--count 100]

A temporary SQLite database (migrated, in WAL mode as the stack's) holding `count` stroke drawings
stored as the web stores them, and a Redis of its own. Each step runs `count` times back to back,
then `count` times with 100 ms between calls, as at light load, where the caches have gone cold
between drawings; the medians are printed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

GAP = 0.1  # seconds between calls at "light load"
QUEUE = "task-queries-benchmark"


def median_ms(step: Callable[[int], object], count: int, gap: float) -> float:
    times = []
    for i in range(count):
        started = time.perf_counter()
        step(i)
        times.append((time.perf_counter() - started) * 1000)
        if gap:
            time.sleep(gap)
    return statistics.median(times[5:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="task-queries-"))
    from digitsite.redis_server import EmbeddedRedis

    redis_server = EmbeddedRedis(folder)
    os.environ.update(DATABASE_URL=f"sqlite:///{folder / 'db.sqlite3'}", REDIS_URL=redis_server.url)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "digitsite.settings")
    try:
        run(args.count)
    finally:
        redis_server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def run(count: int) -> None:
    import django

    django.setup()
    from django.core.management import call_command

    from digitsite.celery import app
    from recognizer import services, task_messages
    from recognizer.models import Drawing
    from training import samples

    call_command("migrate", verbosity=0)
    bodies, _ = samples.page_bodies(count, "strokes")
    drawings = [Drawing.arrived(**services.stored_fields(services.read_drawing(body))) for body in bodies]
    Drawing.store_arrived(drawings)
    ids = [str(d.pk) for d in drawings]
    steps = {
        "load one queued drawing, ORM": lambda i: list(Drawing.objects.filter(pk__in=[ids[i]]).order_by("enqueued_at")),
        "load one queued drawing, plain SQL": lambda i: Drawing.objects.load([ids[i]], queued=True),
        "publish one task, send_task": lambda i: app.send_task(services.PREDICT_TASK, args=[ids[i]], queue=QUEUE),
        "publish one task, one LPUSH": lambda i: task_messages.publish(services.PREDICT_TASK, [ids[i]], QUEUE),
    }
    print(f"{count} stroke drawings, medians (ms): back to back | {GAP * 1000:.0f} ms apart")
    for name, step in steps.items():
        print(f"  {name:36s} {median_ms(step, count, 0):6.3f} | {median_ms(step, count, GAP):6.3f}")


if __name__ == "__main__":
    main()
