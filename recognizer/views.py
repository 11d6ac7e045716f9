"""Pages: the canvas, and JSON answers for API paths that match no route."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from recognizer.errors import Refused


def canvas(request: HttpRequest) -> HttpResponse:
    return render(request, "recognizer/canvas.html")


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith("/api/"):
        return Refused("not_found", "no such API path", 404).response()
    return render(request, "404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        return Refused("server_error", "something broke on our side", 500).response()
    return render(request, "500.html", status=500)
