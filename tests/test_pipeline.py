"""The whole path across processes: a real uvicorn, a real Celery worker, Redis and the database."""

import asyncio
import json
import time
import uuid

import numpy as np
import pytest
import requests
import websockets

from digitsite.logs import REFUSED_HANDSHAKE
from recognizer.models import Drawing
from training import samples

pytestmark = pytest.mark.django_db(transaction=True)


def ws_url(base: str) -> str:
    return base.replace("http", "ws", 1) + "/ws/recognize/"


async def recognise(base: str, drawings: list[bytes | dict]) -> list[tuple[dict, dict]]:
    """Send each drawing (PNG bytes, or a strokes body) over one websocket; (queued frame, answer frame) for each."""
    answers = []
    async with websockets.connect(ws_url(base), origin=base) as socket:
        for i, drawing in enumerate(drawings):
            body = drawing if isinstance(drawing, dict) else {"image": samples.data_url(drawing)}
            await socket.send(json.dumps({"type": "drawing", **body, "ref": f"r{i}"}))
            queued = json.loads(await asyncio.wait_for(socket.recv(), 10))
            answer = json.loads(await asyncio.wait_for(socket.recv(), 30))
            answers.append((queued, answer))
    return answers


async def handshake(url: str, origin: str | None = None) -> tuple[int, bytes]:
    """The handshake's HTTP status (101: a websocket opened) and the body of a refusal."""
    try:
        async with websockets.connect(url, origin=origin):
            return 101, b""
    except websockets.InvalidStatus as refused:
        return refused.response.status_code, refused.response.body


def test_a_websocket_anywhere_but_the_recognizers_path_is_a_404_not_a_500(live_server_url):
    base = live_server_url.replace("http", "ws", 1)
    assert asyncio.run(handshake(base + "/ws/recognize")) == (101, b"")  # without its slash, too
    for path in ("/ws/other/", "/ws/", "/", "/api/drawings/"):
        status, body = asyncio.run(handshake(base + path))
        assert status == 404 and json.loads(body)["error"]["code"] == "not_found", (path, status, body)
    status, body = asyncio.run(handshake(base + "/ws/recognize/", origin="http://elsewhere.example"))
    assert status == 403 and json.loads(body)["error"]["code"] == "forbidden_origin"


def test_the_servers_405_under_the_api_is_in_the_error_envelope(live_server_url):
    # The middleware's async path (the test client runs the sync one: tests/test_api.py).
    response = requests.delete(f"{live_server_url}/api/drawings/{uuid.uuid4()}/", timeout=10)
    assert response.status_code == 405 and response.headers["Allow"] == "GET, HEAD"
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_a_client_that_left_out_the_slash_or_asks_head_is_served_over_the_server(live_server_url):
    # The middleware's async path. requests follows the 308 with the same POST and body.
    posted = requests.post(
        f"{live_server_url}/api/drawings", json={"image": samples.data_url(samples.SEVEN)}, timeout=10
    )
    assert posted.status_code == 202 and posted.history[0].status_code == 308
    head = requests.head(f"{live_server_url}/api/drawings/{posted.json()['id'].upper()}/", timeout=10)
    assert head.status_code == 200 and head.content == b"" and int(head.headers["Content-Length"]) > 100


def test_it_pushes_predictions_over_the_websocket_and_stores_them(live_server_url):
    images, labels = samples.digits(12)
    styles = list(samples.STYLES)
    canvases = [samples.digit_canvas(image, styles[i % len(styles)]) for i, image in enumerate(images)]
    answers = asyncio.run(recognise(live_server_url, canvases))
    predicted = []
    for i, (queued, answer) in enumerate(answers):
        assert queued["type"] == "queued" and queued["ref"] == f"r{i}"
        assert answer["type"] == "prediction" and answer["ref"] == f"r{i}" and answer["id"] == queued["id"]
        assert len(answer["probabilities"]) == 10 and abs(sum(answer["probabilities"]) - 1) < 1e-3
        predicted.append(answer["digit"])
    assert (np.array(predicted) == labels).mean() >= 11 / 12
    stored = Drawing.objects.get(pk=answers[0][0]["id"])
    assert stored.status == "done" and stored.digit == predicted[0] and stored.model_version
    assert stored.created_at < stored.started_at < stored.finished_at and stored.predict_ms is not None


def test_it_reads_strokes_over_the_websocket_and_http_and_keeps_them(live_server_url):
    seven, one = samples.ink_digit(7, (60, 30, 220, 250)), samples.ink_digit(1, (120, 40, 160, 240), width=12)
    [(_, answer_seven), (_, answer_one)] = asyncio.run(recognise(live_server_url, [seven, one]))
    assert (answer_seven["digit"], answer_one["digit"]) == (7, 1)
    response = requests.post(f"{live_server_url}/api/drawings/?wait=10", json=seven, timeout=20)
    assert response.status_code == 200 and response.json()["digit"] == 7
    stored = Drawing.objects.get(pk=answer_one["id"])
    assert stored.strokes == one["strokes"] and stored.pen == 12 and bytes(stored.image) == b""
    assert stored.preprocess_ms is not None and stored.preprocess_ms < 50


def test_it_answers_an_empty_drawing_as_blank(live_server_url):
    [(_, answer)] = asyncio.run(recognise(live_server_url, [{"strokes": [], "width": 280, "height": 280}]))
    assert answer["type"] == "prediction" and answer["status"] == "blank" and answer["digit"] is None


def test_it_answers_a_blank_canvas_as_blank(live_server_url):
    [(_, answer)] = asyncio.run(recognise(live_server_url, [samples.blank()]))
    assert answer["type"] == "prediction" and answer["status"] == "blank" and answer["digit"] is None
    assert Drawing.objects.get(pk=answer["id"]).status == "blank"


def test_it_answers_an_http_wait_with_the_prediction(live_server_url):
    seven = samples.stroke_digit(7, "coloured", (60, 30, 220, 250))
    response = requests.post(
        f"{live_server_url}/api/drawings/?wait=10", json={"image": samples.data_url(seven)}, timeout=20
    )
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "done" and body["digit"] == 7 and body["model_version"]
    assert requests.get(f"{live_server_url}/api/drawings/{body['id']}/", timeout=5).json()["digit"] == 7


def test_it_serves_the_canvas_page_with_local_assets_only(live_server_url):
    page = requests.get(live_server_url + "/", timeout=5)
    assert page.status_code == 200 and "<canvas" in page.text and "http://" not in page.text
    assert requests.get(live_server_url + "/static/recognizer/canvas.js", timeout=5).status_code == 200


def test_a_client_that_closes_right_after_sending_logs_no_error_and_its_drawing_is_read(live_server_url, processes):
    log = processes.logs / f"web-{live_server_url.rsplit(':', 1)[1]}.log"
    seen = len(log.read_text(errors="replace"))
    before = Drawing.objects.filter(source="ws").count()

    async def send_and_leave(ref: str) -> None:
        async with websockets.connect(ws_url(live_server_url), origin=live_server_url) as socket:
            await socket.send(json.dumps({"type": "drawing", "image": samples.data_url(samples.SEVEN), "ref": ref}))

    for i in range(5):
        asyncio.run(send_and_leave(f"gone-{i}"))
    # The server may still be storing the last drawing when its client is gone: wait for all five.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        drawings = Drawing.objects.filter(source="ws")
        if drawings.count() == before + 5 and not drawings.filter(status="queued").exists():
            break
        time.sleep(0.1)
    assert Drawing.objects.filter(source="ws").count() == before + 5
    assert not Drawing.objects.filter(source="ws", status="queued").exists()
    written = log.read_text(errors="replace")[seen:]
    assert "ERROR" not in written and "Traceback" not in written, written


def test_a_refused_handshake_is_logged_as_refused_not_as_an_error(live_server_url, processes):
    # uvicorn logs an ERROR after every handshake the application answers with a refusal of its own.
    log = processes.logs / f"web-{live_server_url.rsplit(':', 1)[1]}.log"
    seen = len(log.read_text(errors="replace"))

    async def refused(path: str, origin: str | None) -> int:
        with pytest.raises(websockets.InvalidStatus) as caught:
            async with websockets.connect(live_server_url.replace("http", "ws", 1) + path, origin=origin):
                pass
        return caught.value.response.status_code

    assert asyncio.run(refused("/ws/recognize/", "http://elsewhere.example")) == 403
    assert asyncio.run(refused("/ws/nowhere/", None)) == 404
    deadline = time.monotonic() + 10
    while (written := log.read_text(errors="replace")[seen:]).count(REFUSED_HANDSHAKE) < 2:
        assert time.monotonic() < deadline, written
        time.sleep(0.05)
    assert "connection rejected (403 Forbidden)" in written and "connection rejected (404 Not Found)" in written
    assert "ERROR" not in written, written
