"""Single-drawing latency over the websocket at light load: submit -> `prediction` frame.

    .venv/bin/python -m benchmarks.latency [--url http://127.0.0.1:8000] [--count 300] [--rate 10]

Sends synthetic digits as the page does (training/samples.py): pen strokes by default, or with
--input image MNIST-like digits drawn on 280 px canvases (mixed ink styles) as PNG data URLs;
from one client at a steady rate, each after the previous answer. Prints the frame size,
p50 / p95 / p99 and accuracy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import websockets

from training import samples


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def run(url: str, count: int, rate: float, kind: str) -> tuple[list[str], list[float]]:
    bodies, labels = samples.page_bodies(count, kind)
    frames = [json.dumps({"type": "drawing", **body, "ref": str(i)}) for i, body in enumerate(bodies)]
    total, queued, ids, right = [], [], [], 0
    ws_url = url.replace("http", "ws", 1).rstrip("/") + "/ws/recognize/"
    async with websockets.connect(ws_url, max_size=2**22) as socket:
        for i, frame in enumerate(frames):
            started = time.perf_counter()
            await socket.send(frame)
            first = json.loads(await socket.recv())
            queued.append((time.perf_counter() - started) * 1000)
            answer = json.loads(await socket.recv())
            total.append((time.perf_counter() - started) * 1000)
            assert first["type"] == "queued" and answer["type"] == "prediction", (first, answer)
            right += answer["digit"] == labels[i]
            ids.append(answer["id"])
            await asyncio.sleep(max(0.0, 1 / rate - (time.perf_counter() - started)))
    warm = total[5:]  # the first few include connection set-up in the server and worker
    print(f"websocket latency, {len(warm)} drawings as {kind} at {rate:g}/s, one client ({url})")
    print(f"  frame size: median {statistics.median(len(frame) for frame in frames):,.0f} bytes")
    print(f"  submit -> queued:     p50 {statistics.median(queued[5:]):6.2f} ms")
    print(
        f"  submit -> prediction: p50 {statistics.median(warm):6.2f} ms   p95 {percentile(warm, 0.95):6.2f} ms   "
        f"p99 {percentile(warm, 0.99):6.2f} ms   max {max(warm):6.2f} ms"
    )
    print(f"  accuracy: {right}/{count}")
    return ids[5:], warm


def print_breakdown(ids: list[str], total: list[float]) -> None:
    """Where the time goes, from the timestamps the service stores (same machine, same database)."""
    import django

    django.setup()
    from recognizer.models import Drawing

    rows = list(
        Drawing.objects.filter(pk__in=ids).values(
            "created_at", "started_at", "finished_at", "preprocess_ms", "predict_ms"
        )
    )

    def ms(start: str, end: str) -> float:
        return statistics.median((r[end] - r[start]).total_seconds() * 1000 for r in rows)

    stored = ms("created_at", "finished_at")
    print("  where the time goes (medians, from the stored timestamps):")
    print(f"    stored -> a worker takes it:      {ms('created_at', 'started_at'):6.2f} ms")
    print(f"    strokes or image -> model input:  {statistics.median(r['preprocess_ms'] for r in rows):6.2f} ms")
    print(f"    predict:                          {statistics.median(r['predict_ms'] for r in rows):6.2f} ms")
    print(f"    stored -> result stored:          {stored:6.2f} ms")
    print(f"    the rest (receive, store; push):  {statistics.median(total) - stored:6.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--rate", type=float, default=10, help="drawings per second")
    parser.add_argument("--input", choices=["strokes", "image"], default="strokes", help="what the page sends")
    parser.add_argument("--breakdown", action="store_true", help="read the stored timings (same machine and database)")
    args = parser.parse_args()
    ids, total = asyncio.run(run(args.url, args.count + 5, args.rate, args.input))
    if args.breakdown:
        print_breakdown(ids, total)


if __name__ == "__main__":
    main()
