"""The HTTP API contract, in process: validation, storage, queueing, lookups, feedback."""

import asyncio
import base64
import json
import time
import uuid

import pytest
import redis
from asgiref.sync import sync_to_async
from channels.layers import channel_layers, get_channel_layer
from channels.testing import HttpCommunicator
from django.conf import settings
from django.test import Client

from digitsite.asgi import application
from recognizer import ink, services
from recognizer.models import Drawing
from tests import crafted
from tests.factories import drawing
from training import samples

pytestmark = pytest.mark.django_db


def post_json(client, body, **extra):
    return client.post("/api/drawings/", data=json.dumps(body), content_type="application/json", **extra)


def error_code(response) -> str:
    body = response.json()
    assert body["error"]["message"]
    return body["error"]["code"]


def test_it_stores_a_data_url_drawing_and_answers_queued(client):
    response = post_json(client, {"image": samples.data_url(samples.SEVEN)})
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued" and body["url"] == f"/api/drawings/{body['id']}/"
    drawing = Drawing.objects.get(pk=body["id"])
    assert bytes(drawing.image) == samples.SEVEN  # exactly as received
    assert (drawing.content_type, drawing.width, drawing.height) == ("image/png", 280, 280)
    assert drawing.status == "queued" and drawing.source == "api"


def test_it_queues_the_prediction_on_the_broker_after_commit(client, django_capture_on_commit_callbacks):
    broker = redis.Redis.from_url(settings.REDIS_URL)
    before = broker.llen("celery")
    with django_capture_on_commit_callbacks(execute=True):
        response = post_json(client, {"image": samples.data_url(samples.SEVEN)})
    deadline = time.monotonic() + 5  # the web's publisher thread sends it, without the request waiting
    while broker.llen("celery") == before and time.monotonic() < deadline:
        time.sleep(0.01)
    message = json.loads(broker.lindex("celery", 0))
    assert broker.llen("celery") == before + 1
    assert message["headers"]["task"] == "worker.tasks.predict_drawing"
    assert message["headers"]["argsrepr"] == repr([response.json()["id"]])


SEVEN_STROKES = {"strokes": [[[80, 70, 0], [200, 70, 90], [120, 230, 260]]], "width": 280, "height": 280, "pen": 18}


def test_it_stores_strokes_without_an_image(client):
    response = post_json(client, SEVEN_STROKES)
    assert response.status_code == 202
    drawing = Drawing.objects.get(pk=response.json()["id"])
    assert drawing.strokes == SEVEN_STROKES["strokes"] and (drawing.width, drawing.height, drawing.pen) == (
        280,
        280,
        18,
    )
    assert bytes(drawing.image) == b"" and drawing.content_type == ""
    assert drawing.model_input().shape == (28, 28)


@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        ({"strokes": "7"}, "invalid_strokes", "list"),
        ({"strokes": [[[1, 2, 3, 4]]]}, "invalid_strokes", "stroke 0, point 0"),
        ({"strokes": [[[1, True]]]}, "invalid_strokes", "stroke 0, point 0"),
        ({"strokes": [[]]}, "invalid_strokes", "stroke 0"),
        ({"strokes": [[[1, 2]]] * 65}, "invalid_strokes", "at most 64"),
        ({"strokes": [[[1, 2]]], "pen": -1}, "invalid_strokes", "pen"),
        ({"strokes": [[[1, 2]]], "image": "data:image/png;base64,AAAA"}, "image_and_strokes", "not both"),
        ({"strokes": None, "image": samples.data_url(samples.SEVEN)}, "image_and_strokes", "not both"),
        ({"ink": []}, "missing_image", "strokes"),
    ],
)
def test_it_refuses_bad_strokes_saying_what_is_wrong_and_stores_nothing(client, body, code, words):
    response = post_json(client, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == code and words in error["message"], error
    assert not Drawing.objects.exists()


def test_the_document_says_a_body_is_an_image_or_strokes_not_both(client):
    doc = client.get("/api/openapi.json").json()
    body = doc["paths"]["/api/drawings/"]["post"]["requestBody"]["content"]["application/json"]
    image, strokes = body["schema"]["oneOf"]
    assert image["not"] == {"required": ["strokes"]} and strokes["not"] == {"required": ["image"]}


def test_it_accepts_multipart_and_raw_png(client):
    multipart = client.post("/api/drawings/", {"image": samples.io.BytesIO(samples.SEVEN)})
    raw = client.post("/api/drawings/", data=samples.SEVEN, content_type="image/png")
    assert (multipart.status_code, raw.status_code) == (202, 202)
    assert Drawing.objects.count() == 2


BOUNDARY = "qa-7f3c9e1d2b"


def form(*parts: tuple[str, bytes]) -> bytes:
    """A multipart/form-data body (boundary BOUNDARY) of (Content-Disposition, content) parts."""
    return (
        b"".join(
            f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + content + b"\r\n"
            for disposition, content in parts
        )
        + f"--{BOUNDARY}--\r\n".encode()
    )


@pytest.mark.parametrize(
    "disposition",
    # RFC 7578 4.2: a filename is optional. requests' files={"image": (None, png)}, Go's CreateFormField
    # and curl's -F 'image=@f;filename=' send none (or an empty one).
    ['form-data; name="image"', 'form-data; name="image"; filename=""'],
)
def test_a_form_part_without_a_filename_is_the_image(client, disposition):
    body = form((disposition, samples.SEVEN), ('form-data; name="mode"', b"number"))
    response = client.generic("POST", "/api/drawings/", body, content_type=f"multipart/form-data; boundary={BOUNDARY}")
    assert response.status_code == 202, response.json()
    stored = Drawing.objects.get(pk=response.json()["id"])
    assert bytes(stored.image) == samples.SEVEN and stored.mode == "number"


def test_a_form_whose_media_type_is_not_in_lower_case_is_read(client):
    # Media types are case-insensitive (RFC 9110, 8.3.1); the boundary is not, and keeps its case.
    body = form(('form-data; name="image"; filename="seven.png"', samples.SEVEN))
    response = client.generic("POST", "/api/drawings/", body, content_type=f"Multipart/Form-Data; boundary={BOUNDARY}")
    assert response.status_code == 202, response.json()
    assert bytes(Drawing.objects.get(pk=response.json()["id"]).image) == samples.SEVEN


@pytest.mark.django_db(transaction=True)
async def test_a_chunked_form_is_read():
    # A chunked body declares no length (a client streaming its form: Go's multipart.Writer on a
    # pipe, requests with a generator); an ASGI server hands it over without a content-length.
    body = form(('form-data; name="image"; filename="seven.png"', samples.SEVEN))
    headers = [(b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode()), (b"host", b"127.0.0.1")]
    communicator = HttpCommunicator(application, "POST", "/api/drawings/", body, headers)
    response = await communicator.get_response(timeout=10)
    assert response["status"] == 202, response["body"]
    stored = await Drawing.objects.aget(pk=json.loads(response["body"])["id"])
    assert bytes(stored.image) == samples.SEVEN


def test_a_form_of_two_images_is_refused_not_read_in_part(client):
    two = client.post("/api/drawings/", {"image": [samples.io.BytesIO(samples.SEVEN), samples.io.BytesIO(b"x")]})
    assert two.status_code == 400 and two.json()["error"] == {
        "code": "invalid_multipart",
        "message": "the form has 2 parts named image: send one a request",
    }
    assert Drawing.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ("{not json", 400, "invalid_json"),
        ({"picture": "x"}, 400, "missing_image"),
        ([1, 2], 400, "missing_image"),
        ({"image": 7}, 400, "invalid_image_field"),
        ({"image": "hello"}, 400, "invalid_data_url"),
        ({"image": "data:image/png;base64,@@@"}, 400, "invalid_base64"),
        ({"image": "data:text/html;base64,PGgxPmhpPC9oMT4="}, 415, "unsupported_media_type"),
        ({"image": "data:image/png;base64," + base64.b64encode(b"hello" * 50).decode()}, 400, "invalid_image"),
        ({"image": samples.data_url(samples.SEVEN[: len(samples.SEVEN) // 2])}, 400, "invalid_image"),
        ({"image": samples.data_url(crafted.bad_compression_after_pixels(b"zTXt"))}, 400, "invalid_image"),
        ({"image": samples.data_url(crafted.bad_compression_after_pixels(b"iCCP"))}, 400, "invalid_image"),
        # Pixel data that is no zlib stream, or names no filter, behind valid CRCs.
        ({"image": samples.data_url(crafted.corrupt_pixels())}, 400, "invalid_image"),
        ({"image": samples.data_url(crafted.random_pixels())}, 400, "invalid_image"),
        ({"image": samples.data_url(crafted.unfiltered_pixels())}, 400, "invalid_image"),
        # A critical chunk PNG does not define: browsers refuse to show such an image.
        ({"image": samples.data_url(crafted.unknown_critical_chunk())}, 400, "invalid_image"),
        ({"image": ""}, 400, "invalid_data_url"),
        (crafted.nested_json(100_000), 400, "invalid_json"),  # past Python's stack: RecursionError
        ('{"image": ' + crafted.nested_json(100_000) + "}", 400, "invalid_json"),
    ],
)
def test_it_refuses_bad_input_with_a_code_and_stores_nothing(client, body, status, code):
    raw = body if isinstance(body, str) else json.dumps(body)
    response = client.post("/api/drawings/", data=raw, content_type="application/json")
    assert response.status_code == status
    assert error_code(response) == code
    assert not Drawing.objects.exists()


def test_a_png_whose_pixel_data_goes_wrong_past_its_start_is_accepted_as_documented(client):
    # Inflating every canvas at upload would cost the web a quarter more a drawing: the worker
    # finds this one out, and fails it alone (tests/test_batching.py).
    response = client.post("/api/drawings/", data=crafted.short_pixels(), content_type="image/png")
    assert response.status_code == 202
    doc = client.get("/api/openapi.json").json()
    [image, _] = doc["paths"]["/api/drawings/"]["post"]["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    assert "checked at their start" in image["properties"]["image"]["description"]


def test_it_refuses_an_oversized_request_before_reading_it(client):
    response = post_json(client, {"image": samples.data_url(samples.SEVEN + b"\0" * 12_000_000)})
    assert response.status_code == 413 and error_code(response) == "request_too_large"
    assert not Drawing.objects.exists()


def test_it_refuses_a_png_bomb_from_its_header(client, settings):
    settings.MAX_IMAGE_PIXELS = 1000 * 1000
    bomb = samples.png(samples.canvas(size=1001))
    response = client.post("/api/drawings/", data=bomb, content_type="image/png")
    assert response.status_code == 413 and error_code(response) == "too_many_pixels"


def test_it_refuses_unknown_content_types(client):
    response = client.post("/api/drawings/", data="image=x", content_type="text/plain")
    assert response.status_code == 415 and error_code(response) == "unsupported_media_type"


def test_a_body_in_a_content_encoding_is_refused_not_read_as_plain(client):
    body = json.dumps({"strokes": [[[10, 10], [10, 200]]]})
    for path in ("/api/drawings/", f"/api/drawings/{uuid.uuid4()}/feedback/"):
        response = client.post(path, data=body, content_type="application/json", HTTP_CONTENT_ENCODING="gzip")
        assert response.status_code == 415 and error_code(response) == "unsupported_media_type"
        assert "gzip" in response.json()["error"]["message"]
    assert not Drawing.objects.exists()
    plain = client.post("/api/drawings/", data=body, content_type="application/json", HTTP_CONTENT_ENCODING="identity")
    assert plain.status_code == 202


def test_it_refuses_a_wait_over_the_limit(client):
    response = post_json(client, {"image": samples.data_url(samples.SEVEN)}, QUERY_STRING="wait=31")
    assert response.status_code == 422 and error_code(response) == "invalid_request"
    for wait in ("NaN", "inf"):  # said to be no finite number, not over 30
        response = post_json(client, {"image": samples.data_url(samples.SEVEN)}, QUERY_STRING=f"wait={wait}")
        assert response.status_code == 422 and "finite" in response.json()["error"]["message"]


def test_it_describes_a_stored_drawing(client):
    drawing_id = post_json(client, {"image": samples.data_url(samples.SEVEN)}).json()["id"]
    body = client.get(f"/api/drawings/{drawing_id}/").json()
    assert body["status"] == "queued" and body["digit"] is None
    assert set(body) >= {"id", "status", "digit", "confidence", "probabilities", "model_version", "created_at"}


def test_a_drawing_answers_head_like_get_without_the_body(client):
    drawing_id = post_json(client, {"image": samples.data_url(samples.SEVEN)}).json()["id"]
    got, head = client.get(f"/api/drawings/{drawing_id}/"), client.head(f"/api/drawings/{drawing_id}/")
    assert head.status_code == got.status_code == 200 and head.content == b""
    assert head["Content-Type"] == got["Content-Type"] == "application/json; charset=utf-8"
    assert error_code(client.get(f"/api/drawings/{uuid.uuid4()}/")) == "not_found"
    assert client.head(f"/api/drawings/{uuid.uuid4()}/").status_code == 404


def test_a_drawings_id_is_found_in_upper_case_too(client):
    drawing_id = post_json(client, {"image": samples.data_url(samples.SEVEN)}).json()["id"]
    assert client.get(f"/api/drawings/{drawing_id.upper()}/").json()["id"] == drawing_id
    response = client.post(
        f"/api/drawings/{drawing_id.upper()}/feedback/", {"label": 1}, content_type="application/json"
    )
    assert response.status_code == 200 and Drawing.objects.get(pk=drawing_id).feedback_label == 1


def test_an_api_path_without_its_slash_is_a_308_which_keeps_the_method_and_body(client):
    response = client.post("/api/drawings?wait=1", data="{}", content_type="application/json")
    assert response.status_code == 308 and response["Location"] == "/api/drawings/?wait=1"
    drawing_id = uuid.uuid4()
    assert client.get(f"/api/drawings/{drawing_id}").status_code == 308
    assert client.post(f"/api/drawings/{drawing_id}/feedback").status_code == 308
    assert not Drawing.objects.exists()
    assert error_code(client.get("/api/nothing-here")) == "not_found"


def test_it_answers_404_with_an_error_body_for_unknown_ids_and_paths(client):
    assert error_code(client.get(f"/api/drawings/{uuid.uuid4()}/")) == "not_found"
    assert error_code(client.get("/api/drawings/not-a-uuid/")) == "not_found"
    assert error_code(client.get("/api/nothing-here/")) == "not_found"


def test_an_api_refusal_is_json_under_a_path_prefix_too(client):
    # Mounted under a prefix by a proxy (SCRIPT_NAME), the API's paths are still the API's.
    assert error_code(client.get("/api/nothing-here/", SCRIPT_NAME="/digits")) == "not_found"


def test_it_records_feedback(client):
    drawing_id = post_json(client, {"image": samples.data_url(samples.SEVEN)}).json()["id"]
    response = client.post(f"/api/drawings/{drawing_id}/feedback/", {"label": 1}, content_type="application/json")
    assert response.status_code == 200 and response.json()["feedback_label"] == 1
    drawing = Drawing.objects.get(pk=drawing_id)
    assert drawing.feedback_label == 1 and drawing.feedback_at is not None


@pytest.mark.parametrize("label", [10, -1, "seven", None, True, "3", 1.5, [3]])
def test_it_refuses_feedback_that_is_not_a_digit(client, label):
    drawing_id = post_json(client, {"image": samples.data_url(samples.SEVEN)}).json()["id"]
    response = client.post(f"/api/drawings/{drawing_id}/feedback/", {"label": label}, content_type="application/json")
    assert response.status_code == 422 and error_code(response) == "invalid_request"
    assert Drawing.objects.get(pk=drawing_id).feedback_label is None


def test_feedback_takes_an_integer_as_json_schema_means_it(client):
    drawing_id = post_json(client, {"image": samples.data_url(samples.SEVEN)}).json()["id"]
    response = client.post(f"/api/drawings/{drawing_id}/feedback/", '{"label": 3.0}', content_type="application/json")
    assert response.status_code == 200 and response.json()["feedback_label"] == 3


def test_feedback_nested_past_the_stack_is_invalid_json(client):
    drawing_id = post_json(client, {"image": samples.data_url(samples.SEVEN)}).json()["id"]
    body = '{"label": ' + crafted.nested_json(100_000) + "}"
    response = client.post(f"/api/drawings/{drawing_id}/feedback/", body, content_type="application/json")
    assert response.status_code == 400 and error_code(response) == "invalid_json"


def test_feedback_takes_a_json_body_only_and_answers_any_other_with_the_documented_415(client):
    drawing_id = post_json(client, {"image": samples.data_url(samples.SEVEN)}).json()["id"]
    feedback = f"/api/drawings/{drawing_id}/feedback/"
    for kind in ("text/plain", "application/x-www-form-urlencoded", "application/merge-patch+json", ""):
        response = client.post(feedback, '{"label": 1}', content_type=kind)
        assert (response.status_code, error_code(response)) == (415, "unsupported_media_type"), kind
    assert client.post(feedback, "", content_type="text/plain").status_code == 415  # not 422: unread
    assert Drawing.objects.get(pk=drawing_id).feedback_label is None
    operation = client.get("/api/openapi.json").json()["paths"]["/api/drawings/{drawing_id}/feedback/"]["post"]
    assert operation["responses"]["415"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorOut"
    }
    response = client.post(feedback, '{"label": 1}', content_type="application/json; charset=utf-8")
    assert response.status_code == 200 and response.json()["feedback_label"] == 1


def test_it_takes_an_mpo_jpeg_as_a_jpeg(client):
    """Many phone cameras write Multi-Picture JPEGs; Pillow calls them MPO."""
    raw = client.post("/api/drawings/", data=crafted.mpo(), content_type="image/jpeg")
    as_url = post_json(client, {"image": crafted.data_url(crafted.mpo(), "image/jpeg")})
    assert (raw.status_code, as_url.status_code) == (202, 202)
    assert set(Drawing.objects.values_list("content_type", flat=True)) == {"image/jpeg"}


def test_the_openapi_document_says_what_is_accepted(client):
    schemas = client.get("/api/openapi.json").json()["components"]["schemas"]
    create = client.get("/api/openapi.json").json()["paths"]["/api/drawings/"]["post"]
    as_image, as_strokes = create["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    image = as_image["properties"]["image"]
    assert image["pattern"].startswith("^data:image/") and image["minLength"] == len("data:image/png;base64,AAAA")
    assert as_strokes["required"] == ["strokes"] and as_strokes["properties"]["strokes"]["maxItems"] == ink.MAX_STROKES
    point = as_strokes["properties"]["strokes"]["items"]["items"]
    assert (point["minItems"], point["maxItems"], len(point["prefixItems"])) == (2, 3, 3)
    assert schemas["FeedbackIn"]["properties"]["label"] == {
        "description": "the digit the person meant", "maximum": 9, "minimum": 0, "title": "Label", "type": "integer",
    }  # fmt: skip


def test_it_publishes_an_openapi_document_with_every_path(client):
    doc = client.get("/api/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    assert {"/api/drawings/", "/api/drawings/{drawing_id}/", "/api/drawings/{drawing_id}/feedback/"} <= set(
        doc["paths"]
    )
    create = doc["paths"]["/api/drawings/"]["post"]
    assert {"200", "202", "400", "413", "415", "422", "429"} <= set(create["responses"])
    assert {"application/json", "multipart/form-data", "image/png"} <= set(create["requestBody"]["content"])


def test_the_documents_example_body_is_a_drawing_the_api_takes(client):
    doc = client.get("/api/openapi.json").json()
    example = doc["paths"]["/api/drawings/"]["post"]["requestBody"]["content"]["application/json"]["example"]
    assert post_json(client, example).status_code == 202
    assert ink.parse(example).strokes  # tests/test_shipped_model.py reads it as a 7


def test_it_serves_the_api_docs_from_local_assets(client):
    page = client.get("/api/docs/").content.decode()
    assert "swagger" in page.lower() and "cdn" not in page.lower()


@pytest.mark.django_db(transaction=True)
async def test_a_wait_falls_back_to_the_database_when_the_channel_layer_is_down(settings):
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]}}
    }
    channel_layers.backends.clear()
    try:
        done = await sync_to_async(drawing)()
        queued = await sync_to_async(drawing)(status="queued", digit=None, confidence=None)
        reply_to = await get_channel_layer().new_channel()  # nobody sends to it
        assert (await services.wait_for_result(done.id, reply_to, 2))["digit"] == 7
        assert await services.wait_for_result(queued.id, reply_to, 0.3) is None
    finally:
        channel_layers.backends.clear()


@pytest.mark.django_db(transaction=True)
async def test_a_wait_finds_a_result_stored_in_its_last_moment():
    """Stored, its push not come (or come after the wait stopped listening): the wait looks at the
    database until its deadline, not only a quarter of a second before it."""
    queued = await sync_to_async(drawing)(status="queued", digit=None, confidence=None)
    reply_to = await get_channel_layer().new_channel()  # nobody sends to it

    async def stored_late() -> None:
        # After the last look (at 1.75 s), and well before the deadline: a loaded machine is late.
        await asyncio.sleep(2 - services.LAST_LOOK_SECONDS * 0.8)
        await Drawing.objects.filter(pk=queued.id).aupdate(status="done", digit=3, confidence=0.9)

    storing = asyncio.create_task(stored_late())
    started = time.monotonic()
    result = await services.wait_for_result(queued.id, reply_to, 2)
    await storing
    assert result is not None and result["digit"] == 3 and time.monotonic() - started < 2.1


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("put", "/api/drawings/{id}/", "GET, HEAD"),
        ("delete", "/api/drawings/{id}/", "GET, HEAD"),
        ("get", "/api/drawings/", "POST"),
        ("get", "/api/drawings/{id}/feedback/", "POST"),
    ],
)
def test_a_method_the_path_does_not_answer_is_a_405_in_the_error_envelope(client, method, path, allowed):
    response = getattr(client, method)(path.format(id=uuid.uuid4()))
    assert response.status_code == 405 and response["Allow"] == allowed
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize("path", ["/api/openapi.json", "/api/docs/", "/healthz", "/metrics", "/"])
def test_a_read_only_path_answers_405_to_a_post_and_options_not_the_csrf_page(path):
    client = Client(enforce_csrf_checks=True)
    for method in ("post", "put", "delete", "options", "trace"):
        response = getattr(client, method)(path)
        assert response.status_code == 405, (method, response.status_code)
        if path != "/":  # what programs read answers in the envelope, as the API does; the page is a page
            assert error_code(response) == "method_not_allowed" and response["Allow"] == "GET, HEAD"
    assert client.head(path).status_code in (200, 503)  # healthz: 503 with no worker here


def test_what_django_itself_refuses_under_the_api_is_in_the_error_envelope(client):
    too_many_fields = "&".join(f"f{i}=1" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))
    response = client.post(f"/api/drawings/?{too_many_fields}", data="{}", content_type="application/json")
    assert response.status_code == 400 and error_code(response) == "bad_request"
    response = client.get(f"/api/drawings/{uuid.uuid4()}/", HTTP_HOST="elsewhere.example")
    assert response.status_code == 400 and error_code(response) == "bad_request"
    assert not Drawing.objects.exists()
    for path in ("/healthz", "/metrics"):  # what operators' programs read, too
        response = client.get(path, HTTP_HOST="elsewhere.example")
        assert response.status_code == 400 and error_code(response) == "bad_request"


def test_the_openapi_document_says_which_answers_carry_retry_after_and_ten_probabilities(client):
    document = client.get("/api/openapi.json").json()
    for path, method, statuses in [
        ("/api/drawings/", "post", ("429", "503")),
        ("/api/drawings/{drawing_id}/", "get", ("429",)),
        ("/api/drawings/{drawing_id}/feedback/", "post", ("429",)),
    ]:
        for status in statuses:
            answer = document["paths"][path][method]["responses"][status]
            assert answer["headers"]["Retry-After"]["required"], (path, status)
            assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorOut"}
    schemas = document["components"]["schemas"]
    for probabilities in (
        schemas["DigitOut"]["properties"]["probabilities"],
        schemas["DrawingOut"]["properties"]["probabilities"]["anyOf"][0],
    ):
        assert (probabilities["minItems"], probabilities["maxItems"]) == (10, 10)


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
def test_the_api_root_is_an_unknown_path_for_every_method(method):
    # Django Ninja's view at /api/ is not CSRF-exempt: a POST got Django's CSRF page in HTML.
    response = Client(enforce_csrf_checks=True).generic(method, "/api/")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "no such API path"}}
