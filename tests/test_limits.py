"""Limits that keep hostile input harmless: sizes, pixel bombs, rate limits, deployment settings."""

from __future__ import annotations

import io
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import time
import tracemalloc
import uuid
import zlib

import numpy as np
import pytest
import requests
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from PIL import Image, ImageDraw

from digitsite.asgi import application
from recognizer import images, preprocessing
from recognizer.images import InvalidImage
from recognizer.models import Drawing
from tests import crafted
from tests.test_ratelimit import a_fresh_window
from training import samples


def png_bomb(width: int, height: int) -> bytes:
    """A PNG whose header promises width x height pixels: a few hundred bytes on the wire."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    rows = zlib.compress(b"\0" * (width + 1) * 64, 9)  # the first 64 rows; the rest is implied
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [5_000, 12_000, 60_000])  # ours alone; ours and Pillow's warning; both
def test_it_refuses_a_png_bomb_before_decoding_it(side):
    bomb = png_bomb(side, side)  # up to 3.6 gigapixels: 3.6 GB once decoded
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(InvalidImage) as refused:
        images.from_bytes(bomb)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert refused.value.code == "too_many_pixels" and refused.value.status == 413
    assert peak < 2_000_000 and seconds < 0.1
    print(f"PNG bomb of {len(bomb)} bytes refused in {seconds * 1000:.2f} ms, peak memory {peak / 1024:.0f} KiB")


@pytest.mark.django_db
def test_it_answers_a_png_bomb_upload_with_413_and_stores_nothing(client):
    response = client.post("/api/drawings/", data=png_bomb(60_000, 60_000), content_type="image/png")
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_many_pixels"
    assert not Drawing.objects.exists()


@pytest.mark.django_db
def test_it_refuses_a_malformed_multipart_body(client):
    body = b"--x\r\nContent-Disposition: form-data; name=image; filename=a.png\r\n\r\nabc"  # never closed
    response = client.generic("POST", "/api/drawings/", body, content_type="multipart/form-data; boundary=x")
    assert response.status_code == 400 and response.json()["error"]["code"] in ("invalid_multipart", "missing_image")


@pytest.mark.django_db(transaction=True)
def test_the_server_refuses_oversized_bodies_without_reading_them(live_server_url):
    big = b"x" * 5_000_000
    declared = requests.post(
        live_server_url + "/api/drawings/", data=big, headers={"Content-Type": "image/png"}, timeout=10
    )
    chunked = requests.post(
        live_server_url + "/api/drawings/", data=iter([big[:1_000_000]] * 5), headers={"Content-Type": "image/png"},
        timeout=10,
    )  # fmt: skip
    for response in (declared, chunked):
        assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"
    assert not Drawing.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_content_length_with_spaces_round_it_is_read(live_server_url):
    # RFC 9110 allows them; the server passes them on. The response's first line is enough here.
    body = json.dumps({"strokes": [[[10, 10], [10, 200]]]}).encode()
    host, port = live_server_url.removeprefix("http://").split(":")
    head = f"POST /api/drawings/ HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(f"{head}Content-Length:  {len(body)} \r\nConnection: close\r\n\r\n".encode() + body)
        assert connection.recv(4096).split(b"\r\n")[0] == b"HTTP/1.1 202 Accepted"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("limit", "value", "code", "longest_wait"),
    [("RATE_LIMIT", 3, "rate_limited", 60), ("BYTE_BUDGET", 3 * len(samples.SEVEN), "byte_budget", 3600)],
)
def test_it_limits_each_client_over_http(client, settings, limit, value, code, longest_wait):
    setattr(settings, limit, value)  # three drawings' worth
    a_fresh_window()  # a window that ended between the drawings would count them again: the last let through
    address = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.7"  # a counter of its own
    post = lambda: client.post("/api/drawings/", data=samples.SEVEN, content_type="image/png", REMOTE_ADDR=address)  # noqa: E731
    assert [post().status_code for _ in range(3)] == [202, 202, 202]
    refused = post()
    assert refused.status_code == 429 and refused.json()["error"]["code"] == code
    assert 1 <= int(refused["Retry-After"]) <= longest_wait
    assert Drawing.objects.count() == 3
    other = client.post("/api/drawings/", data=samples.SEVEN, content_type="image/png", REMOTE_ADDR="10.255.255.1")
    assert other.status_code == 202  # other clients are not affected


async def answer_to(communicator: WebsocketCommunicator, frame: dict) -> dict:
    """The frame's own answer (queued or error). A worker of the live server, when an earlier test
    started one, may push a prediction for an earlier drawing first: that is passed over."""
    await communicator.send_json_to(frame)
    while (answer := await communicator.receive_json_from(timeout=5))["type"] == "prediction":
        pass
    return answer


@pytest.mark.django_db(transaction=True)
async def test_it_limits_drawings_per_client_over_the_websocket(settings):
    settings.RATE_LIMIT = 2
    a_fresh_window()
    communicator = WebsocketCommunicator(application, "/ws/recognize/")
    communicator.scope["client"] = (f"ws-{uuid.uuid4()}", 1234)  # a counter of its own
    assert (await communicator.connect(timeout=5))[0]
    frame = {"type": "drawing", "image": samples.data_url(samples.SEVEN), "ref": "r"}
    answers = [await answer_to(communicator, frame) for _ in range(3)]
    assert [answer["type"] for answer in answers] == ["queued", "queued", "error"]
    assert answers[2]["code"] == "rate_limited" and answers[2]["retry_after"] >= 1
    await communicator.disconnect()


def test_the_production_settings_pass_the_deployment_checks():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "digitsite.settings",
        "DEBUG": "false",
        "HTTPS": "true",
        "SECRET_KEY": "k" + uuid.uuid4().hex + uuid.uuid4().hex,
        "ALLOWED_HOSTS": "digits.example.com",
        "CSRF_TRUSTED_ORIGINS": "https://digits.example.com",
    }
    command = [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"]
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__))
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def canvas_png(size: int) -> bytes:
    """A 7 across a `size`-pixel square canvas, with the page's pen (6% of the side) and anti-aliased
    edges, as a browser draws them (drawn at twice the size, then scaled down)."""
    big = samples.canvas(2 * size)
    points = [(x * 2 * size, y * 2 * size) for x, y in [(0.2, 0.2), (0.8, 0.2), (0.4, 0.9)]]
    ImageDraw.Draw(big).line(points, fill=(0, 0, 0, 255), width=2 * size * 6 // 100, joint="curve")
    return samples.png(big.resize((size, size), Image.Resampling.LANCZOS))


@pytest.mark.django_db
def test_the_default_limits_take_a_large_real_canvas(client):
    drawing = canvas_png(2000)  # a tablet at devicePixelRatio 2, a large phone canvas at 3
    assert len(drawing) < django_settings.MAX_IMAGE_BYTES // 2  # room to spare
    response = client.post("/api/drawings/", data=drawing, content_type="image/png")
    assert response.status_code == 202


@pytest.mark.django_db
def test_the_default_limits_refuse_what_no_canvas_sends(client):
    too_wide = samples.png(samples.canvas(size=2561))
    noise = samples.png(Image.frombytes("RGB", (450, 450), os.urandom(450 * 450 * 3)))  # ~600 KB, few pixels
    for image, code in [(too_wide, "too_many_pixels"), (noise, "image_too_large")]:
        response = client.post("/api/drawings/", data=image, content_type="image/png")
        assert response.status_code == 413 and response.json()["error"]["code"] == code
    assert not Drawing.objects.exists()


@pytest.mark.django_db(transaction=True)
async def test_it_limits_bytes_per_client_over_the_websocket(settings):
    image = samples.data_url(samples.SEVEN)
    settings.BYTE_BUDGET = 2 * len(json.dumps({"type": "drawing", "image": image, "ref": "r"}))  # frames count
    communicator = WebsocketCommunicator(application, "/ws/recognize/")
    communicator.scope["client"] = (f"ws-{uuid.uuid4()}", 1234)  # a budget of its own
    assert (await communicator.connect(timeout=5))[0]
    answers = [await answer_to(communicator, {"type": "drawing", "image": image, "ref": "r"}) for _ in range(3)]
    await communicator.disconnect()
    assert [answer["type"] for answer in answers] == ["queued", "queued", "error"]
    assert answers[2]["code"] == "byte_budget" and 1 <= answers[2]["retry_after"] <= 3600
    assert await Drawing.objects.acount() == 2


def check_ms(data: bytes, repeat: int) -> float:
    """The median time of the upload check of `data`, in milliseconds."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        images.from_bytes(data)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def test_the_upload_check_costs_the_web_well_under_a_millisecond_for_a_canvas():
    # A PNG: its chunks, CRCs and Pillow's reading of the chunks after the pixels; no pixel is
    # inflated. The largest JPEG: its header only.
    canvas = check_ms(samples.SEVEN, 500)
    largest = {"PNG": check_ms(crafted.largest_png(), 20), "JPEG": check_ms(crafted.largest_jpeg(), 20)}
    print(
        f"upload check: 280 px canvas PNG {canvas:.3f} ms; largest PNG {largest['PNG']:.3f} ms, "
        f"largest JPEG {largest['JPEG']:.3f} ms (median)"
    )
    assert canvas < 1 and max(largest.values()) < 50


@pytest.mark.django_db
def test_small_jpegs_are_decoded_at_upload_and_large_ones_checked_from_their_header(client):
    cut = lambda data: data[: len(data) * 2 // 3]  # noqa: E731 - a JPEG missing its last third
    small = client.post(
        "/api/drawings/", data=cut(crafted.encoded(crafted.seven(280), "JPEG")), content_type="image/jpeg"
    )
    assert small.status_code == 400 and small.json()["error"]["code"] == "invalid_image"
    # Decoding a large one would cost the web up to a second: the worker reads it, and fails it alone.
    large = client.post("/api/drawings/", data=cut(crafted.largest_jpeg()), content_type="image/jpeg")
    assert large.status_code == 202


def test_the_worker_reads_the_largest_canvas_shrunk_and_as_the_same_digit():
    largest = crafted.largest_png()
    with Image.open(io.BytesIO(largest)) as image:
        assert max(preprocessing.shrunk(image).size) <= preprocessing.MAX_SIDE
    small = preprocessing.preprocess(crafted.encoded(crafted.seven(640), "PNG"))
    assert np.abs(preprocessing.preprocess(largest) - small).mean() < 0.01
