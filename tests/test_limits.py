"""Limits that keep hostile input harmless: sizes, pixel bombs, rate limits, deployment settings."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
import tracemalloc
import uuid
import zlib

import pytest
import requests
from channels.testing import WebsocketCommunicator

from digitsite.asgi import application
from recognizer import images
from recognizer.images import InvalidImage
from recognizer.models import Drawing
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


@pytest.mark.django_db
def test_it_limits_drawings_per_client_over_http(client, settings):
    settings.RATE_LIMIT = 3
    address = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.7"  # a counter of its own
    post = lambda: client.post("/api/drawings/", data=samples.SEVEN, content_type="image/png", REMOTE_ADDR=address)  # noqa: E731
    assert [post().status_code for _ in range(3)] == [202, 202, 202]
    refused = post()
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert Drawing.objects.count() == 3
    other = client.post("/api/drawings/", data=samples.SEVEN, content_type="image/png", REMOTE_ADDR="10.255.255.1")
    assert other.status_code == 202  # other clients are not affected


@pytest.mark.django_db(transaction=True)
async def test_it_limits_drawings_per_client_over_the_websocket(settings):
    settings.RATE_LIMIT = 2
    communicator = WebsocketCommunicator(application, "/ws/recognize/")
    communicator.scope["client"] = (f"ws-{uuid.uuid4()}", 1234)  # a counter of its own
    assert (await communicator.connect())[0]
    frame = json.dumps({"type": "drawing", "image": samples.data_url(samples.SEVEN), "ref": "r"})
    answers = []
    for _ in range(3):
        await communicator.send_to(text_data=frame)
        answers.append(await communicator.receive_json_from(timeout=5))
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
