"""Refusing oversized HTTP bodies before Django buffers them."""

from __future__ import annotations

import json

from recognizer.errors import Refused


class BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    """ASGI middleware: a body over `max_bytes` is answered 413 without being read whole.

    Django's ASGI handler reads the entire body (into memory or a temporary file) before a
    view can look at its size, so the limit has to sit in front of it.
    """

    def __init__(self, app, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        # Spaces and tabs round the value are allowed (RFC 9110, 5.5); the server keeps them.
        length = dict(scope["headers"]).get(b"content-length", b"0").strip(b" \t")
        if not length.isdigit():
            return await self.refuse(send, Refused("invalid_content_length", "Content-Length must be a number"))
        if int(length) > self.max_bytes:
            return await self.refuse_too_large(send)
        received = 0

        async def counted_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:  # a chunked body that never said its length
                raise BodyTooLarge
            return message

        try:
            await self.app(scope, counted_receive, send)
        except BodyTooLarge:
            # Django reads the whole body before it starts a response, so none was sent yet.
            await self.refuse_too_large(send)

    async def refuse_too_large(self, send) -> None:
        await self.refuse(send, Refused("request_too_large", f"the request is over {self.max_bytes} bytes", 413))

    async def refuse(self, send, refused: Refused) -> None:
        # Raw ASGI messages: this runs in front of Django, so a Django response cannot be sent.
        body = json.dumps(refused.body()).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": refused.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
