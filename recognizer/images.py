"""Reading a submitted image: data URLs and files checked before anything is stored."""

from __future__ import annotations

import base64
import binascii
import io
import re
from dataclasses import dataclass

from django.conf import settings
from PIL import Image, UnidentifiedImageError

from recognizer.errors import Refused

FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
DATA_URL = re.compile(r"data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w.+-]+=[\w.+-]+)*);base64,(?P<data>.*)", re.S)


class InvalidImage(Refused):
    """A submitted image we refuse: unreadable, of a format we do not take, or too big."""


@dataclass(frozen=True)
class CheckedImage:
    data: bytes
    content_type: str
    width: int
    height: int


def from_data_url(value: object) -> CheckedImage:
    """Check a `data:image/png;base64,...` string and the image inside it."""
    if not isinstance(value, str):
        raise InvalidImage("invalid_image_field", "image must be a string holding a data URL")
    if len(value) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
        raise InvalidImage("image_too_large", f"the image is over {settings.MAX_IMAGE_BYTES} bytes", 413)
    match = DATA_URL.fullmatch(value.strip())
    if not match:
        raise InvalidImage("invalid_data_url", "image must be a data URL: data:image/png;base64,...")
    declared = (match["type"] or "").lower()
    if declared not in FORMATS.values():
        raise InvalidImage(
            "unsupported_media_type", f"{declared or 'untyped data'} is not a PNG, JPEG or WebP image", 415
        )
    try:
        data = base64.b64decode(match["data"], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidImage("invalid_base64", "the data URL's base64 is malformed") from None
    return from_bytes(data)


def from_bytes(data: bytes) -> CheckedImage:
    """Check an image file: size, format, pixel count (before decoding), then its integrity."""
    if len(data) > settings.MAX_IMAGE_BYTES:
        raise InvalidImage("image_too_large", f"the image is over {settings.MAX_IMAGE_BYTES} bytes", 413)
    try:
        with Image.open(io.BytesIO(data), formats=tuple(FORMATS)) as image:
            width, height = image.size
            # Refuse decompression bombs from the header, before a pixel is decoded.
            if width * height > settings.MAX_IMAGE_PIXELS:
                raise InvalidImage(
                    "too_many_pixels", f"{width}x{height} is over {settings.MAX_IMAGE_PIXELS} pixels", 413
                )
            content_type = FORMATS[image.format]
            if image.format == "PNG":
                # Every chunk's CRC and the chunk sequence, without inflating the pixels: a
                # truncated or damaged file fails here, and the worker does the one decode.
                image.verify()
            else:
                image.load()
    except Image.DecompressionBombError:  # Pillow's own guard, for sizes far past ours
        raise InvalidImage("too_many_pixels", f"the image is over {settings.MAX_IMAGE_PIXELS} pixels", 413) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise InvalidImage("invalid_image", "the file is not a readable PNG, JPEG or WebP image") from None
    return CheckedImage(data, content_type, width, height)
