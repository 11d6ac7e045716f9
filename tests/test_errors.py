"""The one error vocabulary: the same code and message over HTTP, in Django responses and on the websocket."""

from __future__ import annotations

import io
import json
import logging

import pytest

from digitsite.logs import ClientMistakes
from recognizer import ratelimit
from recognizer.consumers import result_frame
from recognizer.errors import Refused, envelope
from recognizer.images import InvalidImage


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


@pytest.mark.parametrize(("status", "level"), [(503, "WARNING"), (500, "ERROR")])
def test_load_shed_is_a_warning_and_a_server_error_stays_an_error(status, level):
    record = logging.LogRecord("django.request", logging.ERROR, __file__, 1, "Service Unavailable", None, None)
    record.status_code = status
    assert ClientMistakes().filter(record) and record.levelname == level
