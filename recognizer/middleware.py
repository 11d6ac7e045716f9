"""HTTP under /api/ as clients expect it, where Django Ninja and Django leave gaps.

- HEAD answers as GET does, without the body (the server drops it): Ninja answers 405.
- A path without its trailing slash is a 308 to the path with it, which keeps the method and
  the body. Django's 301 makes clients resend a POST as a GET, and the drawing is lost.
- A 405 has the error envelope, and its Allow includes HEAD wherever GET is allowed. Ninja's 405
  is text. So do /healthz's and /metrics' (`for_machines`), which Django's was empty HTML.
- A body sent in a Content-Encoding (gzip, ...) is a 415 (RFC 9110, 8.4.1): Django does not decode
  one, and read as it came it was taken for a plain body.
"""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve

from recognizer.errors import Refused

API = "/api/"
OPERATORS = ("/healthz", "/metrics")


def for_machines(path: str) -> bool:
    """A path that programs read, whose errors are the JSON envelope: the API, health and metrics."""
    return path.startswith(API) or path in OPERATORS


def api_http(get_response):
    """The middleware. It is async under ASGI: a sync middleware would cost every request a hop to
    a thread. It is sync under the test client's WSGI handler."""
    if iscoroutinefunction(get_response):

        async def middleware(request: HttpRequest) -> HttpResponse:
            head = _head_as_get(request)
            refused = _slash_missing(request) or _encoded(request)
            return _answered(request, refused or await get_response(request), head)

        return markcoroutinefunction(middleware)

    def middleware(request: HttpRequest) -> HttpResponse:
        head = _head_as_get(request)
        return _answered(request, _slash_missing(request) or _encoded(request) or get_response(request), head)

    return middleware


api_http.sync_capable = api_http.async_capable = True


def _slash_missing(request: HttpRequest) -> HttpResponse | None:
    """A 308 to the same path with its slash, for an API path that exists only with it."""
    path = request.path_info
    if not path.startswith(API) or path.endswith("/") or _exists(path):
        return None
    if not _exists(path + "/"):
        return None
    query = request.META.get("QUERY_STRING", "")
    location = request.path + "/" + (f"?{query}" if query else "")
    return HttpResponse(status=308, headers={"Location": location})


def _encoded(request: HttpRequest) -> HttpResponse | None:
    """The 415 for an API request whose body is in a Content-Encoding other than identity."""
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if not request.path_info.startswith(API) or encoding in ("", "identity") or request.method in ("GET", "HEAD"):
        return None
    refused = Refused("unsupported_media_type", f"send the body as it is, not in Content-Encoding {encoding}", 415)
    return refused.response()


def _exists(path: str) -> bool:
    try:
        resolve(path)
    except Resolver404:
        return False
    return True


def _head_as_get(request: HttpRequest) -> bool:
    if request.method != "HEAD" or not request.path_info.startswith(API):
        return False
    request.method = "GET"
    return True


def _answered(request: HttpRequest, response: HttpResponse, head: bool) -> HttpResponse:
    if head:
        request.method = "HEAD"  # as it came, for whatever reads it after us (the log, the test client)
    if response.status_code != 405 or not for_machines(request.path_info):
        return response
    allowed = [method.strip() for method in response.get("Allow", "").split(",") if method.strip()]
    if "GET" in allowed and "HEAD" not in allowed:
        allowed.insert(allowed.index("GET") + 1, "HEAD")
    message = f"{request.method} is not allowed here; this path answers {', '.join(allowed) or 'nothing'}"
    refused = Refused("method_not_allowed", message, 405).response()
    refused["Allow"] = ", ".join(allowed)
    return refused
