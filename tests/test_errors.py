"""The one error vocabulary: the same code and message over HTTP, in Django responses and on the websocket."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.db import OperationalError

from digitsite.asgi import application
from digitsite.logs import BrokerOutage, ClientMistakes
from recognizer import api, ratelimit, services
from recognizer.consumers import result_frame
from recognizer.errors import Refused, envelope
from recognizer.images import InvalidImage
from tests import factories


def test_envelope_is_the_http_error_body():
    assert envelope("not_found", "no such API path") == {"error": {"code": "not_found", "message": "no such API path"}}


def test_refused_defaults_to_a_400_without_retry():
    refused = Refused("invalid_json", "the body is not valid JSON")
    assert (refused.status, refused.retry_after, str(refused)) == (400, None, "the body is not valid JSON")
    assert refused.body() == envelope("invalid_json", "the body is not valid JSON")


def test_refused_renders_a_json_response():
    response = Refused("server_error", "something broke on our side", 500).response()
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content) == envelope("server_error", "something broke on our side")
    assert not response.has_header("Retry-After")


def test_refused_renders_a_websocket_frame():
    frame = Refused("unknown_type", 'type must be "drawing" or "status"').frame("r1")
    assert frame == {
        "type": "error",
        "ref": "r1",
        "code": "unknown_type",
        "message": 'type must be "drawing" or "status"',
    }


def test_a_rate_limit_refusal_tells_when_to_retry_everywhere():
    refused = ratelimit.refusal(17)
    message = "too many drawings from this client: try again in 17 s"
    assert (refused.code, refused.message, refused.status) == ("rate_limited", message, 429)
    response = refused.response()
    assert response.status_code == 429 and response["Retry-After"] == "17"
    assert json.loads(response.content) == envelope("rate_limited", message)
    frame = refused.frame(None)
    assert list(frame) == ["type", "ref", "code", "message", "retry_after"]
    assert frame["retry_after"] == 17


def test_an_invalid_image_is_a_refusal():
    refused = InvalidImage("too_many_pixels", "too big", 413)
    assert isinstance(refused, Refused)
    assert (refused.code, refused.message, refused.status) == ("too_many_pixels", "too big", 413)


def test_a_failed_prediction_is_a_prediction_frame_with_its_reason_not_an_error_frame():
    # Accepted, then not readable: the result as the HTTP API gives it (DESIGN: error frames are
    # for what the server refuses).
    result = {"id": "d1", "status": "failed", "digit": None, "error": "the model crashed"}
    assert result_frame(result, "r2") == {"type": "prediction", "ref": "r2", **result}


@pytest.mark.django_db
def test_a_clients_mistakes_are_logged_as_one_warning_line_not_an_error_with_its_traceback(client):
    # A Host not allowed, a form of too many fields: Django logs each at ERROR with a traceback.
    [console] = [h for h in logging.getLogger().handlers if any(isinstance(f, ClientMistakes) for f in h.filters)]
    written = io.StringIO()
    stream = console.setStream(written)
    try:
        assert client.get("/api/openapi.json", HTTP_HOST="elsewhere.example").status_code == 400
        fields = "&".join(f"f{i}=1" for i in range(1500))
        assert client.post("/admin/login/", fields, content_type="application/x-www-form-urlencoded").status_code == 400
    finally:
        console.setStream(stream)
    logged = written.getvalue()
    assert "WARNING django.security.DisallowedHost" in logged and "WARNING django.security.TooManyFieldsSent" in logged
    assert "ERROR" not in logged and "Traceback" not in logged, logged


@pytest.mark.django_db
def test_a_staff_user_refused_by_the_admin_is_one_warning_line_without_a_traceback(client):
    # Each 403 wrote "Forbidden (Permission denied)" and some 50 lines of PermissionDenied's traceback.
    client.force_login(User.objects.create_user("no-permissions", password="pw", is_staff=True))
    drawing = factories.drawing()
    [console] = [h for h in logging.getLogger().handlers if any(isinstance(f, ClientMistakes) for f in h.filters)]
    written = io.StringIO()
    stream = console.setStream(written)
    try:
        assert client.get("/admin/recognizer/modelversion/").status_code == 403
        assert client.post(f"/admin/recognizer/drawing/{drawing.pk}/change/", {"label": 1}).status_code == 403
    finally:
        console.setStream(stream)
    logged = written.getvalue()
    assert "Traceback" not in logged, logged
    assert [line.split(" ", 2)[2] for line in logged.splitlines()] == [
        "WARNING django.request: Forbidden (Permission denied): /admin/recognizer/modelversion/",
        f"WARNING django.request: Forbidden (Permission denied): /admin/recognizer/drawing/{drawing.pk}/change/",
    ]


def test_a_server_error_keeps_its_traceback():
    try:
        raise ValueError("a bug")
    except ValueError:
        record = logging.LogRecord(
            "django.request", logging.ERROR, __file__, 1, "Internal Server Error", None, sys.exc_info()
        )
    record.status_code = 500
    assert ClientMistakes().filter(record) and record.levelname == "ERROR" and record.exc_info is not None


@pytest.mark.parametrize(("status", "level"), [(503, "WARNING"), (500, "ERROR")])
def test_load_shed_is_a_warning_and_a_server_error_stays_an_error(status, level):
    record = logging.LogRecord("django.request", logging.ERROR, __file__, 1, "Service Unavailable", None, None)
    record.status_code = status
    assert ClientMistakes().filter(record) and record.levelname == level


def test_beat_keeps_the_traceback_of_a_failure_other_than_an_unreachable_broker():
    try:
        raise KeyError("an argument the task cannot take")
    except KeyError as exc:
        record = logging.LogRecord(
            "celery.beat", logging.ERROR, __file__, 1, "Message Error: %s\n%s", (exc, ["the stack"]), sys.exc_info()
        )
    assert BrokerOutage().filter(record) and record.exc_info is not None and record.args[1] == ["the stack"]


@pytest.mark.django_db
def test_a_database_that_does_not_answer_is_a_503_with_retry_after_not_a_500(client, monkeypatch, caplog):
    """Seen with DATABASE_URL naming a PostgreSQL that refused connections: POST answered 500
    server_error and logged a traceback at ERROR, where load shedding answers 503 with Retry-After."""

    async def refused(*args, **kwargs):
        raise OperationalError('connection failed: connection to server at "127.0.0.1", port 5432 failed')

    monkeypatch.setattr(services, "submit", refused)
    monkeypatch.setattr(api, "find", refused)
    drawing_id = "0f94f06f-ea28-4198-93f8-3bca193760b6"
    strokes = {"strokes": [[[80, 60], [200, 60], [120, 230]]], "width": 280, "height": 280, "pen": 18}
    with caplog.at_level(logging.WARNING):
        answers = [
            client.post("/api/drawings/", strokes, content_type="application/json"),
            client.get(f"/api/drawings/{drawing_id}/"),
        ]
    for response in answers:
        assert response.status_code == 503 and response["Retry-After"] == "5"
        assert response.json()["error"]["code"] == "unavailable"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    doc = client.get("/api/openapi.json").json()["paths"]
    for path, method in [("/api/drawings/", "post"), ("/api/drawings/{drawing_id}/", "get")]:
        assert "Retry-After" in doc[path][method]["responses"]["503"]["headers"]


@pytest.mark.django_db(transaction=True)
async def test_a_database_that_does_not_answer_is_an_unavailable_frame_on_the_websocket(monkeypatch):
    async def refused(*args, **kwargs):
        raise OperationalError("connection failed")

    monkeypatch.setattr(services, "submit", refused)
    communicator = WebsocketCommunicator(application, "/ws/recognize/")
    assert (await communicator.connect(timeout=5))[0]
    strokes = {"strokes": [[[80, 60], [200, 60], [120, 230]]], "width": 280, "height": 280, "pen": 18}
    await communicator.send_json_to({"type": "drawing", **strokes, "ref": "r1"})
    answer = await communicator.receive_json_from(timeout=5)
    await communicator.disconnect()
    assert answer["type"] == "error" and answer["code"] == "unavailable" and answer["ref"] == "r1"
    assert answer["retry_after"] == 5
