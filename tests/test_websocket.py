"""The websocket contract, in process, on the real Redis channel layer.

No worker answers here: the session's live worker (started by other modules) would race the fake
results these tests send, so drawings are recorded as queued instead of published.
"""

import json
import uuid

import pytest
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from digitsite.asgi import application
from recognizer import metrics, services
from recognizer.models import MAX_WAITERS, Drawing
from training import samples
from worker import replies

pytestmark = pytest.mark.django_db(transaction=True)
SEVEN_URL = samples.data_url(samples.SEVEN)


@pytest.fixture(autouse=True)
def queued_ids(monkeypatch) -> list:
    ids: list = []
    monkeypatch.setattr(services, "enqueue", ids.append)
    return ids


async def connected(origin: bytes | None = b"http://127.0.0.1:8000") -> WebsocketCommunicator:
    headers = [(b"origin", origin)] if origin else []
    communicator = WebsocketCommunicator(application, "/ws/recognize/", headers=headers)
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    return communicator


async def test_it_queues_a_drawing_and_forwards_its_pushed_result(queued_ids):
    communicator = await connected()
    await communicator.send_json_to({"type": "drawing", "image": SEVEN_URL, "ref": "a1"})
    queued = await communicator.receive_json_from(timeout=5)
    assert queued["type"] == "queued" and queued["ref"] == "a1"
    assert [str(i) for i in queued_ids] == [queued["id"]]
    drawing = await Drawing.objects.aget(pk=queued["id"])
    assert drawing.status == "queued" and drawing.source == "ws"
    await send_result_as_a_worker_would(drawing)
    prediction = await communicator.receive_json_from(timeout=5)
    assert prediction["type"] == "prediction" and prediction["ref"] == "a1" and prediction["digit"] == 7
    await communicator.disconnect()


async def send_result_as_a_worker_would(drawing: Drawing) -> None:
    """What a worker sends after storing the result: to each channel the drawing names."""
    assert drawing.reply_to.startswith("specific.")
    result = {**drawing.result(), "status": "done", "digit": 7, "probabilities": [0.0] * 7 + [1.0] + [0.0] * 2}
    message = {"type": "drawing.result", "drawing": result}
    await replies.send_all(get_channel_layer(), [(channel, message) for channel in drawing.reply_to.split()])


async def test_a_drawing_frame_names_its_mode_and_its_prediction_carries_the_number(queued_ids):
    communicator = await connected()
    strokes = [[[40, 60], [60, 200]], [[150, 60], [200, 60], [160, 200]]]
    frame = {"type": "drawing", "strokes": strokes, "width": 560, "height": 280, "mode": "number", "ref": "n"}
    await communicator.send_json_to(frame)
    queued = await communicator.receive_json_from(timeout=5)
    drawing = await Drawing.objects.aget(pk=queued["id"])
    assert drawing.mode == "number"
    digits = [
        {"digit": d, "confidence": 0.9, "probabilities": [0.9 if i == d else 0.01 for i in range(10)], "box": box}
        for d, box in ((1, [31, 51, 69, 209]), (7, [141, 51, 209, 209]))
    ]
    result = {**drawing.result(), "status": "done", "number": "17", "digits": digits, "confidence": 0.81}
    await replies.send_all(get_channel_layer(), [(drawing.reply_to, {"type": "drawing.result", "drawing": result})])
    prediction = await communicator.receive_json_from(timeout=5)
    assert prediction["type"] == "prediction" and prediction["ref"] == "n"
    assert (prediction["mode"], prediction["number"], prediction["digit"]) == ("number", "17", None)
    assert [entry["box"] for entry in prediction["digits"]] == [[31, 51, 69, 209], [141, 51, 209, 209]]
    await communicator.disconnect()


async def test_a_status_from_another_socket_moves_the_result_there():
    first, second = await connected(), await connected()
    await first.send_json_to({"type": "drawing", "image": SEVEN_URL, "ref": "a"})
    drawing_id = (await first.receive_json_from(timeout=5))["id"]
    await first.disconnect()  # the page reloaded, say
    await second.send_json_to({"type": "status", "id": drawing_id, "ref": "b"})
    assert await second.receive_json_from(timeout=5) == {"type": "queued", "id": drawing_id, "ref": "b"}
    await send_result_as_a_worker_would(await Drawing.objects.aget(pk=drawing_id))
    prediction = await second.receive_json_from(timeout=5)
    assert prediction["type"] == "prediction" and prediction["ref"] == "b" and prediction["id"] == drawing_id
    await second.disconnect()


async def test_every_socket_that_asks_for_a_queued_drawing_gets_its_prediction():
    # A status from another socket took the push away from the socket that sent the drawing, still
    # open, and from every socket that had asked before.
    sender, *askers = [await connected() for _ in range(3)]
    await sender.send_json_to({"type": "drawing", "image": SEVEN_URL, "ref": "a"})
    drawing_id = (await sender.receive_json_from(timeout=5))["id"]
    for ref, asker in zip("bc", askers, strict=True):
        await asker.send_json_to({"type": "status", "id": drawing_id, "ref": ref})
        assert await asker.receive_json_from(timeout=5) == {"type": "queued", "id": drawing_id, "ref": ref}
    await send_result_as_a_worker_would(await Drawing.objects.aget(pk=drawing_id))
    for ref, communicator in zip("abc", [sender, *askers], strict=True):
        prediction = await communicator.receive_json_from(timeout=5)
        assert (prediction["type"], prediction["id"], prediction["ref"]) == ("prediction", drawing_id, ref)
        await communicator.disconnect()


async def test_the_socket_that_sent_a_drawing_keeps_its_push_however_many_others_ask():
    # Only the newest MAX_WAITERS were kept: eight sockets asking left the sender, still open, unanswered.
    sender, *askers = [await connected() for _ in range(MAX_WAITERS + 1)]
    await sender.send_json_to({"type": "drawing", "image": SEVEN_URL, "ref": "a"})
    drawing_id = (await sender.receive_json_from(timeout=5))["id"]
    for asker in askers:
        await asker.send_json_to({"type": "status", "id": drawing_id, "ref": "b"})
        assert (await asker.receive_json_from(timeout=5))["type"] == "queued"
    await send_result_as_a_worker_would(await Drawing.objects.aget(pk=drawing_id))
    prediction = await sender.receive_json_from(timeout=5)
    assert (prediction["type"], prediction["ref"]) == ("prediction", "a")
    for communicator, answered in [(askers[0], False), (askers[-1], True)]:  # the oldest asker made room
        assert await communicator.receive_nothing(timeout=0.3) is not answered
    for communicator in [sender, *askers]:
        await communicator.disconnect()


async def test_a_socket_that_leaves_after_another_asked_leaves_the_push_to_it():
    # The page's reconnect: the new socket asks for the drawing before the server sees the old one
    # go. The old one's leaving unhooked the drawing from the new one too: no answer came.
    old, new = await connected(), await connected()
    await old.send_json_to({"type": "drawing", "image": SEVEN_URL, "ref": "a"})
    drawing_id = (await old.receive_json_from(timeout=5))["id"]
    await new.send_json_to({"type": "status", "id": drawing_id, "ref": "b"})
    assert await new.receive_json_from(timeout=5) == {"type": "queued", "id": drawing_id, "ref": "b"}
    await old.disconnect()
    drawing = await Drawing.objects.aget(pk=drawing_id)
    assert len(drawing.reply_to.split()) == 1  # the new socket's channel, the old one's gone
    await send_result_as_a_worker_would(drawing)
    prediction = await new.receive_json_from(timeout=5)
    assert (prediction["type"], prediction["ref"]) == ("prediction", "b")
    await new.disconnect()


async def test_a_status_on_the_drawing_s_own_socket_leaves_its_first_ref_answered_too():
    # A client polling for a slow result on the socket that sent it: each frame, the drawing's and the
    # status's, is answered by its own prediction (the status's ref took the drawing's place, which
    # then was never answered).
    communicator = await connected()
    await communicator.send_json_to({"type": "drawing", "image": SEVEN_URL, "ref": "a"})
    drawing_id = (await communicator.receive_json_from(timeout=5))["id"]
    await communicator.send_json_to({"type": "status", "id": drawing_id, "ref": "b"})
    assert await communicator.receive_json_from(timeout=5) == {"type": "queued", "id": drawing_id, "ref": "b"}
    await send_result_as_a_worker_would(await Drawing.objects.aget(pk=drawing_id))
    predictions = [await communicator.receive_json_from(timeout=5) for _ in range(2)]
    assert [(p["type"], p["id"], p["ref"]) for p in predictions] == [
        ("prediction", drawing_id, "a"),
        ("prediction", drawing_id, "b"),
    ]
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


async def test_a_socket_that_leaves_unhooks_its_drawings():
    communicator = await connected()
    await communicator.send_json_to({"type": "drawing", "image": SEVEN_URL})
    drawing_id = (await communicator.receive_json_from(timeout=5))["id"]
    assert (await Drawing.objects.aget(pk=drawing_id)).reply_to
    await communicator.disconnect()
    assert (await Drawing.objects.aget(pk=drawing_id)).reply_to == ""


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
        ('{"type": "drawing", "image": "x", "ref": "\\ud800"}', "invalid_ref"),  # echoed, no strict parser reads it
        ('{"type": "status", "id": "nope"}', "invalid_id"),
        # Only the forms GET /api/drawings/<id>/ takes, which uuid.UUID reads more widely.
        ('{"type": "status", "id": "{12345678-1234-5678-1234-567812345678}"}', "invalid_id"),
        ('{"type": "status", "id": "urn:uuid:12345678-1234-5678-1234-567812345678"}', "invalid_id"),
        ('{"type": "status", "id": "12345678123456781234567812345678"}', "invalid_id"),
        ('{"type": "status", "id": 7}', "invalid_id"),
        ('{"type": "drawing", "strokes": [[[1, 2]]], "mode": "Number"}', "invalid_mode"),
        ('{"type": "drawing", "strokes": [[[1, 2]]], "mode": null}', "invalid_mode"),
        ('{"type": "drawing", "image": "x", "mode": ["number"]}', "invalid_mode"),
        ('{"type": "drawing", "strokes": [[[1, 2]]], "pen": 1' + "0" * 400 + "}", "invalid_strokes"),  # past float
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


async def test_a_refused_drawing_frame_is_counted_as_the_http_door_counts_it():
    # Only strokes and images refused after the presence check were counted: a frame without a
    # drawing, or not JSON at all, was refused unseen by /metrics, where the same body over HTTP is.
    def refused(code: str) -> float:
        return metrics.DRAWINGS_REFUSED.labels(code)._value.get()

    communicator = await connected()
    for frame, code, counted in (
        ('{"type": "drawing"}', "missing_image", 1),
        ("{", "invalid_json", 1),
        ('{"type": "drawing", "image": "x", "ref": 5}', "invalid_ref", 1),
        ('{"type": "status", "id": "x", "ref": 5}', "invalid_ref", 0),  # no drawing: not counted as one
        ('{"type": "ping"}', "unknown_type", 0),
    ):
        before = refused(code)
        await communicator.send_to(text_data=frame)
        assert (await communicator.receive_json_from(timeout=5))["code"] == code
        assert refused(code) == before + counted
    await communicator.disconnect()


async def test_the_frame_limit_counts_bytes_not_characters(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    communicator = await connected()
    frame = json.dumps({"type": "status", "id": "€" * 400}, ensure_ascii=False)  # 434 characters, 1,234 bytes
    await communicator.send_to(text_data=frame)
    assert (await communicator.receive_json_from(timeout=5))["code"] == "frame_too_large"
    await communicator.send_to(text_data=json.dumps({"type": "status", "id": "€" * 300}, ensure_ascii=False))
    assert (await communicator.receive_json_from(timeout=5))["code"] == "invalid_id"  # 934 bytes: read
    await communicator.disconnect()


async def test_a_frame_that_starts_with_a_byte_order_mark_is_read_as_over_http():
    communicator = await connected()
    await communicator.send_to(text_data="\ufeff" + json.dumps({"type": "drawing", "image": SEVEN_URL, "ref": "bom"}))
    assert (await communicator.receive_json_from(timeout=5))["type"] == "queued"
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
    accepted, _ = await foreign.connect(timeout=5)
    assert not accepted
    communicator = await connected(origin=None)
    await communicator.disconnect()
