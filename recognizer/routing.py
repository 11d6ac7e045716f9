"""Websocket routes, and the Origin check in front of them."""

from __future__ import annotations

from channels.security.websocket import OriginValidator
from django.conf import settings
from django.urls import path

from recognizer.consumers import RecognizeConsumer

websocket_urlpatterns = [path("ws/recognize/", RecognizeConsumer.as_asgi())]


class BrowserOriginValidator(OriginValidator):
    """Refuses websockets opened by pages of other sites; lets clients without an Origin in.

    Browsers always send Origin, so a foreign page cannot hide it; scripts, load generators
    and other services send none and are not the cross-site risk this guards against.
    """

    def valid_origin(self, parsed_origin) -> bool:
        return parsed_origin is None or super().valid_origin(parsed_origin)


def origin_checked(application):
    """Allow the origins that ALLOWED_HOSTS allows (as channels' AllowedHostsOriginValidator)."""
    allowed = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not allowed:
        allowed = ["localhost", "127.0.0.1", "[::1]"]
    return BrowserOriginValidator(application, allowed)
