"""Pages: the canvas, and JSON answers for API paths that match no route or that Django refuses."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe

from recognizer.errors import Refused, internal_error
from recognizer.middleware import API, for_machines


def read_only(view):
    """GET and HEAD only; any other method is a 405, not the CSRF page (the view changes nothing)."""
    return csrf_exempt(require_safe(view))


@read_only
def canvas(request: HttpRequest) -> HttpResponse:
    return render(request, "recognizer/canvas.html")


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path_info.startswith(API):
        return Refused("not_found", "no such API path", 404).response()
    return render(request, "404.html", status=404)


@csrf_exempt
def api_root(request: HttpRequest) -> HttpResponse:
    """/api/ itself, which Django Ninja names but serves nothing at: the 404 of any unknown API path,
    for every method (Ninja's own view is not CSRF-exempt, so a POST got Django's CSRF page)."""
    return not_found(request)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django's own refusals: more fields or files than it parses, a Host it does not serve."""
    if for_machines(request.path_info):
        return Refused(
            "bad_request", "the request breaks a limit of the server or names a host it does not serve"
        ).response()
    return defaults.bad_request(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path_info.startswith(API):
        return internal_error().response()
    return render(request, "500.html", status=500)
