"""The HTTP API (Django Ninja): its OpenAPI document is generated from this module."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Annotated, Literal

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, QueryDict
from django.http.multipartparser import MultiPartParserError
from django.urls import register_converter
from ninja import Field, NinjaAPI, Query, Schema, Status
from ninja.decorators import decorate_view
from ninja.errors import HttpError, ValidationError
from pydantic import BeforeValidator, WithJsonSchema, model_validator
from pydantic_core import PydanticCustomError

from recognizer import backlog, images, ink, metrics, ratelimit, services
from recognizer.errors import Refused, database_unavailable, envelope
from recognizer.ink import Ink
from recognizer.models import DRAWING_ID, NUMBER_PATTERN, Drawing
from recognizer.views import read_only

log = logging.getLogger(__name__)


class AnyCaseUUID:
    """A drawing's id in a path, in either case (models.DRAWING_ID): Django's own converter takes
    lower case only. The string goes on to pydantic, which makes it a UUID."""

    regex = DRAWING_ID

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: object) -> str:
        return str(value)


register_converter(AnyCaseUUID, "anycaseuuid")

api = NinjaAPI(
    title="digits",
    version="1",
    description="Handwritten-digit recognition: send a canvas drawing, get the digit (or the number) back.",
    urls_namespace="api",
    docs_url="/docs/",
    openapi_url="/openapi.json",
    docs_decorator=read_only,  # a POST there is a 405 in the envelope, not the CSRF page
)


class ErrorDetail(Schema):
    code: str = Field(examples=["invalid_image"])
    message: str


class ErrorOut(Schema):
    error: ErrorDetail


# A drawing's mode, wherever it is sent (JSON body, query string, websocket frame); checked by
# services.read_mode, which refuses anything else with 400 invalid_mode.
MODE = {
    "type": "string",
    "enum": Drawing.Mode.values,
    "default": Drawing.Mode.DIGIT,
    "description": "digit: read one digit; number: read several, left to right",
}


class ImageIn(Schema):
    # A drawing is an image or strokes: a body naming both is refused (400 image_and_strokes), even
    # with strokes null, so neither branch of the body's oneOf may hold the other's key.
    model_config = {"json_schema_extra": {"not": {"required": ["strokes"]}}}
    image: str = Field(
        description="a data URL: data:image/png;base64,... (PNG, JPEG or WebP); an image the pattern "
        "allows is still refused with 400 invalid_image when its bytes are not a readable image (a PNG's "
        "compressed pixels are checked at their start: one that goes wrong further in is accepted, and its "
        "drawing ends failed with the reason)",
        pattern=images.DATA_URL_PATTERN,
        min_length=images.DATA_URL_MIN_LENGTH,
    )
    mode: Annotated[str, WithJsonSchema(MODE)] = Drawing.Mode.DIGIT


def _number(low: float, high: float, description: str) -> dict:
    return {"type": "number", "minimum": low, "maximum": high, "description": description}


def _optional(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}], "description": schema.pop("description")}


# The strokes form of a drawing (DESIGN.md), with the limits recognizer.ink enforces. Written as
# JSON Schema rather than a model: a point is a tuple (prefixItems), which it says exactly. A
# body the schema allows can still be refused with 400 invalid_strokes: at most ink.MAX_POINTS
# points in all, and t on every point of a drawing or on none.
STROKES_IN = {
    "title": "StrokesIn",
    "type": "object",
    "required": ["strokes"],
    "not": {"required": ["image"]},
    "properties": {
        "strokes": {
            "type": "array",
            "maxItems": ink.MAX_STROKES,
            "description": "pen-down traces in the order drawn; points in canvas pixels, origin top left, y down",
            "items": {
                "type": "array",
                "minItems": 1,
                "maxItems": ink.MAX_POINTS,
                "items": {
                    "type": "array",
                    "description": "[x, y] or [x, y, t] (t in milliseconds)",
                    "prefixItems": [
                        _number(-ink.MAX_COORDINATE, ink.MAX_COORDINATE, "x"),
                        _number(-ink.MAX_COORDINATE, ink.MAX_COORDINATE, "y"),
                        _number(-ink.MAX_TIME, ink.MAX_TIME, "t"),
                    ],
                    "items": False,
                    "minItems": 2,
                    "maxItems": 3,
                },
            },
        },
        "width": _optional(_number(1, ink.MAX_COORDINATE, "the canvas width in pixels; default: holds every point")),
        "height": _optional(_number(1, ink.MAX_COORDINATE, "the canvas height in pixels; default: holds every point")),
        "pen": _optional(_number(ink.MIN_PEN, ink.MAX_PEN, "the line width in pixels; default: as the page draws")),
        "mode": MODE,
    },
}


class QueuedOut(Schema):
    id: uuid.UUID
    status: Literal["queued"]
    url: str


class DigitOut(Schema):
    digit: int = Field(ge=0, le=9)
    confidence: float
    probabilities: list[float] = Field(min_length=10, max_length=10, description="ten probabilities, for digits 0 to 9")
    box: list[float] = Field(
        min_length=4,
        max_length=4,
        description="[x0, y0, x1, y1] in the drawing's own pixels; in digit mode the whole drawing",
    )


class DrawingOut(Schema):
    id: uuid.UUID
    status: Literal["queued", "done", "blank", "failed"] = Field(
        description="done: digit (or number) read; blank: nothing drawn; failed: see error"
    )
    mode: Literal["digit", "number"]
    digit: int | None = Field(ge=0, le=9, description="the digit, when exactly one was read")
    confidence: float | None = Field(description="the probability that the whole number is right")
    probabilities: list[float] | None = Field(
        min_length=10,
        max_length=10,
        description="ten probabilities, for digits 0 to 9, when exactly one digit was read",
    )
    number: str | None = Field(
        pattern=NUMBER_PATTERN, description="the digits read, left to right; null when queued, blank or failed"
    )
    digits: list[DigitOut] | None = Field(description="each digit read, left to right")
    uncertain: bool | None = Field(
        description="true when the confidence is below the model's calibrated line: a scribble, a letter, "
        "or a digit drawn too unlike any it knows"
    )
    model_version: str | None
    created_at: datetime
    latency_ms: float | None = Field(description="from receipt to stored prediction")
    error: str | None


def json_integer(value: object) -> object:
    """An integer as JSON Schema means it (3 or 3.0), never true or "3", which pydantic's int would take."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


# What the OpenAPI document's "type": "integer" promises, and no more.
JsonInteger = Annotated[int, BeforeValidator(json_integer)]


def no_default(schema: dict) -> None:
    """Leave out the schema's `"default": null`: a field left out is not a field sent as null."""
    schema.pop("default", None)


class FeedbackIn(Schema):
    """Exactly one of `label` and `number`. A field sent as null is refused: left out is how to leave it out."""

    model_config = {"json_schema_extra": {"oneOf": [{"required": ["label"]}, {"required": ["number"]}]}}
    label: JsonInteger = Field(None, ge=0, le=9, description="the digit the person meant", json_schema_extra=no_default)
    number: str = Field(
        None,
        pattern=NUMBER_PATTERN,
        description="the digits the person meant, left to right (one digit said of a digit drawing is its label)",
        json_schema_extra=no_default,
    )

    @model_validator(mode="after")
    def one_answer(self) -> FeedbackIn:
        if len(self.model_fields_set & {"label", "number"}) != 1:
            raise ValueError('send either "label" (a digit) or "number" (a string of digits)')
        return self


class FeedbackOut(Schema):
    id: uuid.UUID
    feedback_label: int | None
    feedback_number: str | None


INVALID_JSON = "the body is not valid JSON (or nests too deeply)"
ERRORS = {400: ErrorOut, 404: ErrorOut, 413: ErrorOut, 415: ErrorOut, 422: ErrorOut, 429: ErrorOut}


def retry_after_header(*statuses: int) -> dict:
    """The OpenAPI of these answers' Retry-After header (Ninja's Status() cannot declare one)."""
    header = {"required": True, "description": "seconds to wait before trying again", "schema": {"type": "integer"}}
    return {"responses": {status: {"headers": {"Retry-After": header}} for status in statuses}}


# A 7 in one stroke, on the page's canvas and pen: what /api/docs/ offers to try (a body it made up
# from the data URL's pattern was no image, and answered 400).
SEVEN_IN_STROKES = {"strokes": [[[80, 60], [200, 60], [120, 230]]], "width": 280, "height": 280, "pen": 18}
UPLOAD_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": {"oneOf": [ImageIn.json_schema(), STROKES_IN]}, "example": SEVEN_IN_STROKES},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["image"],
                "properties": {"image": {"type": "string", "format": "binary"}, "mode": MODE},
            }
        },
        **{kind: {"schema": {"type": "string", "format": "binary"}} for kind in images.FORMATS.values()},
    },
}


@api.exception_handler(ValidationError)
def invalid_request(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    first = exc.errors[0] if exc.errors else {}
    where = ".".join(str(part) for part in first.get("loc", ()))
    message = f"{where}: {first.get('msg', 'invalid')}" if where else "the request is invalid"
    return api.create_response(request, envelope("invalid_request", message), status=422)


@api.exception_handler(OperationalError)
@api.exception_handler(InterfaceError)
def database_error(request: HttpRequest, exc: Exception) -> HttpResponse:
    """503 with Retry-After, as load shedding answers, rather than a 500 with a traceback."""
    log.warning("the database did not answer: %s", exc.__class__.__name__)
    return database_unavailable().response()


@api.exception_handler(HttpError)
def http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    if exc.status_code == 400 and isinstance(exc.__cause__, (ValueError, RecursionError)):
        # Ninja could not parse a JSON body (feedback): the same answer as read_upload gives.
        return api.create_response(request, envelope("invalid_json", INVALID_JSON), status=400)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
    return api.create_response(request, envelope(code, str(exc)), status=exc.status_code)


def is_json(request: HttpRequest) -> bool:
    """Whether the body is declared JSON. Django has dropped the parameters (a charset) and
    lower-cased the type already."""
    return request.content_type == "application/json"


def unsupported_media_type(accepted: str) -> Refused:
    """The 415 for a body of a Content-Type the operation does not read; `accepted` says what it does."""
    return Refused("unsupported_media_type", f"send {accepted}", 415)


def json_only(run: Callable[..., Awaitable[HttpResponse]]) -> Callable[..., Awaitable[HttpResponse]]:
    """A 415 for a body not declared JSON, before Ninja reads it: Ninja parses any body as JSON,
    whatever its Content-Type says. For async operations (decorate_view wraps Ninja's `run`)."""

    async def checked(request: HttpRequest, **path: object) -> HttpResponse:
        if not is_json(request):
            refused = unsupported_media_type("application/json")
            return api.create_response(request, refused.body(), status=refused.status)
        return await run(request, **path)

    return checked


def read_mode(body: Mapping[str, object], query_mode: str | None) -> str:
    """The mode a POST names: its JSON body's (or form's) `mode`, else its query's, else digit; or Refused invalid_mode.

    A body and a query that name different modes are refused rather than one chosen silently.
    """
    query = {} if query_mode is None else {"mode": query_mode}
    named = {services.read_mode(sent) for sent in (body, query) if "mode" in sent}
    if len(named) > 1:
        raise Refused("invalid_mode", "the body and the query string name different modes: send one")
    return named.pop() if named else Drawing.Mode.DIGIT


def refuse_two_modes(form: QueryDict, where: str) -> None:
    """Refused invalid_mode where a form or query string names different modes: one is not chosen silently."""
    if len(set(form.getlist("mode"))) > 1:
        raise Refused("invalid_mode", f"the {where} names more than one mode: send one")


def read_upload(request: HttpRequest, query_mode: str | None = None) -> tuple[images.CheckedImage | Ink, str]:
    """The drawing of a POST: JSON with strokes or a data URL, a multipart field `image`, or a raw image body;
    and the mode to read it in (see read_mode).

    Raises Refused (InvalidImage, InvalidStrokes for the drawing itself) with the status to answer.
    """
    refuse_two_modes(request.GET, "query string")
    mode = read_mode({}, query_mode)  # checked before the body is read: it costs nothing
    length = int(request.META.get("CONTENT_LENGTH") or 0)
    if length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
        raise Refused("request_too_large", f"the request is over {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes", 413)
    kind = request.content_type or ""
    if is_json(request):
        try:
            body = json.loads(request.body)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than Python's stack allows
            raise Refused("invalid_json", INVALID_JSON) from None
        return services.read_drawing(body), read_mode(body if isinstance(body, dict) else {}, query_mode)
    if kind == "multipart/form-data":
        return read_form(request, query_mode)
    if kind in images.FORMATS.values():
        return images.from_bytes(request.body), mode
    raise unsupported_media_type(
        "application/json with a data URL, multipart/form-data, or an image/png, image/jpeg or image/webp body"
    )


def read_form(request: HttpRequest, query_mode: str | None) -> tuple[images.CheckedImage, str]:
    """The image of a multipart form, its one part named `image` (with a filename or without), and the
    mode to read it in; or Refused."""
    as_django_reads_forms(request)
    try:
        files = request.FILES.getlist("image")
        # A part without a filename (RFC 7578 makes it optional: requests' (None, data), Go's
        # CreateFormField) is a text field to Django: decoded as Latin-1, its bytes come back whole.
        texts = [text.encode("latin-1") for text in request.POST.getlist("image")]
    except MultiPartParserError:
        raise Refused("invalid_multipart", "the multipart body is malformed") from None
    parts = [*files, *texts]
    if not parts:
        raise Refused("missing_image", "the form needs a part named image holding the image file")
    # A form of two drawings is refused rather than one of them chosen silently.
    if len(parts) > 1:
        raise Refused("invalid_multipart", f"the form has {len(parts)} parts named image: send one a request")
    refuse_two_modes(request.POST, "form")
    if "mode" in request.FILES:  # a file part is not read as the mode: refused, not left out silently
        raise Refused("invalid_mode", "send mode as a plain form field (no filename), not as a file")
    data = parts[0] if isinstance(parts[0], bytes) else parts[0].read()  # bounded by the body's limit
    return images.from_bytes(data), read_mode(request.POST, query_mode)


def as_django_reads_forms(request: HttpRequest) -> None:
    """A valid multipart request made one Django's form parser reads as it is meant."""
    # A media type is case-insensitive (RFC 9110, 8.3.1), but the parser takes only "multipart/" in
    # lower case: the type is given to it so (the boundary keeps its case).
    declared, semicolon, parameters = request.META["CONTENT_TYPE"].partition(";")
    request.META["CONTENT_TYPE"] = declared.strip().lower() + semicolon + parameters
    if not request.META.get("CONTENT_LENGTH"):
        # A chunked body declares no length, and the parser reads nothing of a body of no length. Its
        # length is that of the body as read (bounded by BodySizeLimit).
        request.META["CONTENT_LENGTH"] = str(len(request.body))
    # Text fields decoded as Latin-1 keep their bytes (the image's, above); the others (mode) are ASCII.
    request.encoding = "latin-1"


@api.post(
    "/drawings/",
    response={200: DrawingOut, 202: QueuedOut, **ERRORS, 503: ErrorOut},
    openapi_extra={"requestBody": UPLOAD_BODY, **retry_after_header(429, 503)},
    summary="Submit a drawing",
    description="Stores the drawing and queues its prediction (202). With `wait`, answers 200 with the "
    "result as soon as it exists, or 202 when the wait ran out. `mode` (in a JSON body or a multipart form, "
    "or in the query string) says whether to read one digit or a number.",
)
async def create_drawing(
    request: HttpRequest,
    wait: float = Query(0, ge=0, le=settings.MAX_WAIT_SECONDS, allow_inf_nan=False),
    # Checked by read_mode (400 invalid_mode, as in a body or a frame), not by Ninja (422).
    mode: Annotated[str | None, WithJsonSchema(MODE)] = Query(None),
):
    # Shed load before anything is counted or stored; a figure read at most a second ago.
    if overloaded := await backlog.overloaded():
        return overloaded.response()  # 503 with Retry-After
    client = ratelimit.request_client(request)
    # The bytes as sent: the declared length, or the body itself when it came chunked (the
    # ASGI body limit has bounded it already).
    length = request.META.get("CONTENT_LENGTH", "")
    if over_limit := await ratelimit.admit(client, int(length) if length.isdigit() else len(request.body)):
        # Status() cannot carry a header, so the 429 is a response of its own, with Retry-After.
        return over_limit.response()
    # A waiting request gives the worker a channel of its own to send the result to (a name
    # made here, no Redis call).
    reply_to = await get_channel_layer().new_channel() if wait else ""
    try:
        # Reading the body (decoding an image, checking strokes) in a thread, off the event loop.
        drawn, mode = await sync_to_async(read_upload)(request, mode)
        drawing = await services.submit(drawn, Drawing.Source.API, reply_to=reply_to, mode=mode)
    except Refused as exc:
        metrics.DRAWINGS_REFUSED.labels(exc.code).inc()
        return Status(exc.status, exc.body())
    if wait and (result := await services.wait_for_result(drawing.id, reply_to, wait)):
        metrics.observe_result(result)
        return Status(200, result)
    return Status(202, {"id": drawing.id, "status": "queued", "url": f"/api/drawings/{drawing.id}/"})


async def find(drawing_id: uuid.UUID) -> Drawing:
    try:
        return await Drawing.objects.without_payload().aget(pk=drawing_id)
    except Drawing.DoesNotExist:
        raise HttpError(404, "no drawing has this id") from None


@api.get(
    "/drawings/{anycaseuuid:drawing_id}/",
    response={200: DrawingOut, **ERRORS, 503: ErrorOut},
    openapi_extra=retry_after_header(429, 503),
    summary="A drawing and its prediction",
)
async def get_drawing(request: HttpRequest, drawing_id: uuid.UUID):
    if retry_after := await ratelimit.read_retry_after(ratelimit.request_client(request)):
        return ratelimit.refusal(retry_after, "requests").response()
    return (await find(drawing_id)).result()


@api.post(
    "/drawings/{anycaseuuid:drawing_id}/feedback/",
    response={200: FeedbackOut, **ERRORS, 503: ErrorOut},
    openapi_extra=retry_after_header(429, 503),
    summary="Say which digit (or number) the drawing really is",
)
@decorate_view(json_only)
async def give_feedback(request: HttpRequest, drawing_id: uuid.UUID, feedback: FeedbackIn):
    if retry_after := await ratelimit.read_retry_after(ratelimit.request_client(request)):
        return ratelimit.refusal(retry_after, "requests").response()
    mode = await Drawing.objects.filter(pk=drawing_id).values_list("mode", flat=True).afirst()
    if mode is None:
        raise HttpError(404, "no drawing has this id")
    label, number = feedback_for(mode, feedback)
    if not await Drawing.objects.filter(pk=drawing_id).give_feedback(label, number):
        raise HttpError(404, "no drawing has this id")  # deleted meanwhile
    return {"id": drawing_id, "feedback_label": label, "feedback_number": number}


def feedback_for(mode: str, feedback: FeedbackIn) -> tuple[int | None, str | None]:
    """The (label, number) to store for a drawing of this mode: one digit said of a digit drawing is its
    label, however it was sent, so that the admin's filter compares it with the digit read. (More digits
    said of one are kept as a number: a number drawn in digit mode, which no digit read can agree with.)"""
    if mode == Drawing.Mode.DIGIT and feedback.number is not None and len(feedback.number) == 1:
        return int(feedback.number), None
    return feedback.label, feedback.number
