"""The websocket contract, in process, on the real Redis channel layer (no worker here)."""

import json
import uuid

import pytest
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from digitsite.asgi import application
from recognizer.models import Drawing, group_for
from training import samples

pytestmark = pytest.mark.django_db(transaction=True)
SEVEN_URL = samples.data_url(samples.SEVEN)


async def connected(origin: bytes | None = b"http://127.0.0.1:8000") -> WebsocketCommunicator:
    headers = [(b"origin", origin)] if origin else []
    communicator = WebsocketCommunicator(application, "/ws/recognize/", headers=headers)
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def test_it_queues_a_drawing_and_forwards_its_pushed_result():
    communicator = await connected()
    await communicator.send_json_to({"type": "drawing", "image": SEVEN_URL, "ref": "a1"})
    queued = await communicator.receive_json_from(timeout=5)
    assert queued["type"] == "queued" and queued["ref"] == "a1"
    drawing = await Drawing.objects.aget(pk=queued["id"])
    assert drawing.status == "queued" and drawing.source == "ws"
    # What a worker sends after storing the result:
    result = {**drawing.result(), "status": "done", "digit": 7, "probabilities": [0.0] * 7 + [1.0] + [0.0] * 2}
    await get_channel_layer().group_send(group_for(drawing.id), {"type": "drawing.result", "drawing": result})
    prediction = await communicator.receive_json_from(timeout=5)
    assert prediction["type"] == "prediction" and prediction["ref"] == "a1" and prediction["digit"] == 7
    await communicator.disconnect()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{", "invalid_json"),
        ("[1]", "invalid_message"),
        ('{"type": "nope"}', "unknown_type"),
        ('{"type": ["drawing"]}', "unknown_type"),
        ('{"type": "drawing"}', "missing_image"),
        ('{"type": "drawing", "image": 7}', "invalid_image_field"),
        ('{"type": "drawing", "image": "data:image/png;base64,@@", "ref": "x"}', "invalid_base64"),
        ('{"type": "drawing", "image": "data:text/html;base64,PGgxPg=="}', "unsupported_media_type"),
        ('{"type": "drawing", "image": "x", "ref": {"a": 1}}', "invalid_ref"),
        ('{"type": "status", "id": "nope"}', "invalid_id"),
    ],
)
async def test_it_answers_bad_frames_with_an_error_and_stays_open(frame, code):
    communicator = await connected()
    await communicator.send_to(text_data=frame)
    error = await communicator.receive_json_from(timeout=5)
    assert error["type"] == "error" and error["code"] == code and error["message"]
    await communicator.send_to(text_data=json.dumps({"type": "drawing", "image": SEVEN_URL, "ref": "after"}))
    assert (await communicator.receive_json_from(timeout=5))["type"] == "queued"
    assert await Drawing.objects.acount() == 1  # only the good drawing was stored
    await communicator.disconnect()


async def test_it_refuses_binary_frames():
    communicator = await connected()
    await communicator.send_to(bytes_data=b"\x89PNG")
    assert (await communicator.receive_json_from(timeout=5))["code"] == "text_frames_only"
    await communicator.disconnect()


async def test_it_tells_the_status_of_a_drawing_and_of_an_unknown_one():
    communicator = await connected()
    await communicator.send_json_to({"type": "drawing", "image": SEVEN_URL})
    drawing_id = (await communicator.receive_json_from(timeout=5))["id"]
    await communicator.send_json_to({"type": "status", "id": drawing_id, "ref": "s"})
    assert await communicator.receive_json_from(timeout=5) == {"type": "queued", "id": drawing_id, "ref": "s"}
    await communicator.send_json_to({"type": "status", "id": str(uuid.uuid4())})
    assert (await communicator.receive_json_from(timeout=5))["code"] == "not_found"
    await communicator.disconnect()


async def test_it_refuses_a_foreign_origin_and_accepts_clients_without_one():
    foreign = WebsocketCommunicator(application, "/ws/recognize/", headers=[(b"origin", b"http://evil.example.com")])
    accepted, _ = await foreign.connect()
    assert not accepted
    communicator = await connected(origin=None)
    await communicator.disconnect()
