"""Pages: the canvas, and JSON answers for API paths that match no route."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render


def canvas(request: HttpRequest) -> HttpResponse:
    return render(request, "recognizer/canvas.html")


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"error": {"code": "not_found", "message": "no such API path"}}, status=404)
    return render(request, "404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"error": {"code": "server_error", "message": "something broke on our side"}}, status=500)
    return render(request, "500.html", status=500)
