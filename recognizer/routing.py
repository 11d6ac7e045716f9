"""Websocket routes, and the Origin check in front of them."""

from __future__ import annotations

import json
from urllib.parse import urlparse

from channels.security.websocket import OriginValidator
from django.conf import settings
from django.urls import re_path

from recognizer.consumers import RecognizeConsumer
from recognizer.errors import envelope


async def no_such_socket(scope, receive, send) -> None:
    """Any other path: the handshake refused with a 404 and the error envelope, never the 500 of a
    path no route matched."""
    message = "no websocket here: the recognizer's is /ws/recognize/"
    await refuse_handshake(scope, receive, send, 404, "not_found", message)


async def refuse_handshake(scope, receive, send, status: int, code: str, message: str) -> None:
    """The handshake answered with `status` and the error envelope (a plain 403 from servers without
    the ASGI denial-response extension)."""
    await receive()  # websocket.connect
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close"})
        return
    body = json.dumps(envelope(code, message)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": body})


websocket_urlpatterns = [
    re_path(r"^ws/recognize/?$", RecognizeConsumer.as_asgi()),  # the slash optional, as clients forget it
    re_path(r"", no_such_socket),
]


class BrowserOriginValidator(OriginValidator):
    """Refuses websockets opened by pages of other sites; lets clients without an Origin in.

    Browsers always send Origin, so a foreign page cannot hide it; scripts, load generators
    and other services send none and are not the cross-site risk this guards against.
    """

    def valid_origin(self, parsed_origin) -> bool:
        return parsed_origin is None or super().valid_origin(parsed_origin)

    async def __call__(self, scope, receive, send) -> None:
        """As OriginValidator's, but a refusal says why, in the error envelope."""
        origin = dict(scope["headers"]).get(b"origin")
        if self.valid_origin(None if origin is None else urlparse(origin.decode("latin1"))):
            return await self.application(scope, receive, send)
        message = "only this site's pages may open its websocket (ALLOWED_HOSTS)"
        await refuse_handshake(scope, receive, send, 403, "forbidden_origin", message)


def origin_checked(application):
    """Allow the origins that ALLOWED_HOSTS allows (as channels' AllowedHostsOriginValidator)."""
    allowed = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not allowed:
        allowed = ["localhost", "127.0.0.1", "[::1]"]
    return BrowserOriginValidator(application, allowed)
