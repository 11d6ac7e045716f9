"""The steps of a drawing's way through the service, back to back and after the pause between drawings.

    .venv/bin/python -m benchmarks.idle [--count 200] [--pause 0.1]

At light load (10 drawings a second, `benchmarks.latency`) every process on a drawing's way has
been idle for about 100 ms when the drawing reaches it. This times the same steps done back to back
(as under load) and each after such a pause:

- Python work: building a task message (recognizer.task_messages), checking a stroke frame and
  drawing it as the model's input (recognizer.ink), one model call (the shipped model, LiteRT);
- hops between threads and processes, as the web's database and publisher threads and Celery's
  prefork pool make them: a round trip to a thread, to a child process over a pipe, and a Redis
  LPUSH (an embedded redis-server the script starts, as `make run` does).

Each step is timed `count` times either way; the medians are printed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import queue
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import redis

from benchmarks.ink import synthetic
from digitsite.redis_server import EmbeddedRedis
from recognizer import ink, task_messages
from recognizer.model_files import shipped_path
from worker.inference import Predictor


def median_ms(step: Callable[[], object], count: int, pause: float) -> float:
    """The step's median time over `count` calls, each `pause` seconds after the one before."""
    times = []
    for _ in range(count):
        if pause:
            time.sleep(pause)
        started = time.perf_counter()
        step()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def thread_round_trip() -> Callable[[], object]:
    there, back = queue.SimpleQueue(), queue.SimpleQueue()

    def echo() -> None:
        while True:
            back.put(there.get())

    threading.Thread(target=echo, daemon=True).start()
    return lambda: (there.put(1), back.get())


def _echo(connection) -> None:
    while True:
        connection.send_bytes(connection.recv_bytes())


def process_round_trip() -> Callable[[], object]:
    ours, theirs = multiprocessing.Pipe()
    multiprocessing.Process(target=_echo, args=(theirs,), daemon=True).start()
    return lambda: (ours.send_bytes(b"x" * 600), ours.recv_bytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="calls per step and way")
    parser.add_argument("--pause", type=float, default=0.1, help="seconds between calls, the second way")
    args = parser.parse_args()
    frame = json.loads(json.dumps(synthetic(0)[0]))
    model = Predictor.from_file(shipped_path())
    image = ink.rasterise(ink.parse(frame))[None]
    with tempfile.TemporaryDirectory() as directory:
        server = EmbeddedRedis(Path(directory))
        client = redis.Redis.from_url(server.url)
        message = task_messages.message("worker.tasks.predict_drawing", ["id"], "bench")
        steps = {
            "build a task message": lambda: task_messages.message("worker.tasks.predict_drawing", ["id"], "bench"),
            "check a stroke frame, draw it 28x28": lambda: ink.rasterise(ink.parse(frame)),
            "predict one drawing": lambda: model.predict(image),
            "round trip to a thread": thread_round_trip(),
            "round trip to a child process (pipe)": process_round_trip(),
            "LPUSH to Redis": lambda: client.lpush("bench", message),
        }
        try:
            print(f"{'step':40} {'back to back':>14} {f'after {args.pause * 1000:.0f} ms':>14}  ratio")
            for name, step in steps.items():
                step()  # loaded, planned, connected
                busy = median_ms(step, args.count, 0)
                idle = median_ms(step, args.count, args.pause)
                print(f"{name:40} {busy:11.3f} ms {idle:11.3f} ms {idle / busy:6.1f}x")
        finally:
            client.close()
            server.stop()


if __name__ == "__main__":
    main()
