"""Reading a submitted image: data URLs and files checked before anything is stored."""

from __future__ import annotations

import base64
import binascii
import io
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from django.conf import settings
from PIL import Image, PngImagePlugin

from recognizer.errors import Refused
from recognizer.preprocessing import orientation, upright_size

FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
# Pillow calls a JPEG that carries more frames (the Multi-Picture files many phone cameras
# write) MPO. It is a JPEG: browsers show its first frame, and so does the worker.
CONTENT_TYPES = {**FORMATS, "MPO": "image/jpeg"}
DATA_URL = re.compile(
    r"data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w.+-]+=[\w.+-]+)*);base64,(?P<data>.*)", re.S | re.A
)
# What the API's schema promises for a JSON image (a JSON Schema pattern, ECMA-262 syntax), and
# what from_data_url keeps, both ways: every string it matches passes the data-URL and base64
# checks, so a schema-valid image is refused only for what is inside it; and every string it
# does not match is refused by them (tests/test_fuzz.py holds the two together). So no space
# around it, a type in lower case, names and values of ASCII.
DATA_URL_PATTERN = (
    r"^data:image/(png|jpeg|webp)(;[A-Za-z0-9_.+-]+=[A-Za-z0-9_.+-]+)*;base64,"
    r"([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2}==)$"
)
DATA_URL_MIN_LENGTH = len("data:image/png;base64,AAAA")
# JPEGs and WebPs up to this many pixels (every canvas, even at 3 device pixels per CSS pixel)
# are decoded whole at upload; PNGs never are (see _read) ...
FULLY_DECODED_PIXELS = 1024 * 1024
# ... but a PNG's pixel data is inflated this far (a few microseconds): bytes that are no zlib
# stream, or whose first row names no filter, are refused at upload. Inflating a canvas whole
# would cost the web 0.26-0.5 ms, a quarter to a third more than it spends on a drawing.
PIXELS_CHECKED = 1024
# The chunks a PNG decoder must understand: any other whose type starts upper case is refused.
CRITICAL_CHUNKS = frozenset({b"IHDR", b"PLTE", b"IDAT", b"IEND"})


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
    match = DATA_URL.fullmatch(value)
    if not match:
        raise InvalidImage("invalid_data_url", "image must be a data URL: data:image/png;base64,...")
    declared = match["type"] or ""
    if declared not in FORMATS.values():
        raise InvalidImage(
            "unsupported_media_type", f"{declared or 'untyped data'} is not image/png, image/jpeg or image/webp", 415
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
        content_type, width, height = _read(data)
    except InvalidImage:
        raise
    except Image.DecompressionBombError:  # Pillow's own guard, for sizes far past ours
        raise InvalidImage("too_many_pixels", f"the image is over {settings.MAX_IMAGE_PIXELS} pixels", 413) from None
    except Exception:
        # A hostile file can make Pillow raise nearly anything (SyntaxError, struct.error,
        # ValueError, RecursionError...): all of it means the file cannot be read.
        raise InvalidImage("invalid_image", "the file is not a readable PNG, JPEG or WebP image") from None
    return CheckedImage(data, content_type, width, height)


def _read(data: bytes) -> tuple[str, int, int]:
    """The content type and size of a readable image; raises whatever Pillow raises on a bad one."""
    with Image.open(io.BytesIO(data), formats=tuple(FORMATS)) as image:
        width, height = image.size
        # Refuse decompression bombs from the header, before a pixel is decoded.
        if width * height > settings.MAX_IMAGE_PIXELS:
            raise InvalidImage("too_many_pixels", f"{width}x{height} is over {settings.MAX_IMAGE_PIXELS} pixels", 413)
        content_type = CONTENT_TYPES.get(image.format)
        if content_type is None:
            raise InvalidImage("invalid_image", f"{image.format} is not a PNG, JPEG or WebP image")
        if image.format != "PNG":
            if width * height <= FULLY_DECODED_PIXELS:
                image.load()
            # A larger JPEG or WebP is checked from its header only: decoding it here would cost
            # the web a worker's time (up to a second). The worker reads it, and a file that
            # fails there fails alone. Its size is as shown: a photo turned upright by its EXIF.
            return content_type, *upright_size(image.size, orientation(image))
        # Opening ran Pillow's handlers for the chunks before the pixels; verify() checks every
        # chunk's CRC and their order, without inflating the pixels (the worker does the one decode).
        animated = image.is_animated
        image.verify()
    check_critical_chunks(data)
    check_png_trailer(data, animated)
    check_pixel_start(data)
    return content_type, width, height


def check_critical_chunks(data: bytes) -> None:
    """Refuse a PNG holding a critical chunk (its type's first letter upper case) that PNG does not define.

    Pillow reads past one; the PNG specification tells a decoder to refuse the image, as browsers do,
    since the pixels may mean something else without it."""
    for _offset, _length, kind in chunks(data):
        if kind[:1].isupper() and kind not in CRITICAL_CHUNKS:
            name = kind.decode("ascii", "backslashreplace")
            raise InvalidImage("invalid_image", f"the PNG holds a critical chunk PNG does not define: {name}")


def check_pixel_start(data: bytes) -> None:
    """Inflate the start of a PNG's pixel data (its IDAT chunks, in order): raises zlib.error or
    ValueError where that is no zlib stream, or its first row's filter is none of PNG's five.

    Random bytes behind valid CRCs fail here. Data that goes wrong further in is accepted, and its
    drawing fails in the worker with the reason, alone."""
    stream, start = zlib.decompressobj(), b""
    for offset, length, kind in chunks(data):
        if len(start) >= PIXELS_CHECKED:
            break
        if kind == b"IDAT":
            chunk = memoryview(data)[offset + 8 : offset + 8 + length]
            start += stream.decompress(chunk, PIXELS_CHECKED - len(start))
    if not start or start[0] > 4:  # filter types 0-4: none, sub, up, average, Paeth
        raise ValueError("the PNG's pixel data does not start with a row")


def check_png_trailer(data: bytes, animated: bool = False) -> None:
    """Run Pillow's own handlers over the chunks after a PNG's pixel data, as load() will in the worker.

    verify() only checks CRCs, so a zTXt or iCCP chunk after IDAT with an unknown compression
    method passed it and then broke the worker's load(). This reads those few chunks (a canvas
    has none) without inflating a pixel; it raises what load() would raise.
    """
    start = _after_pixel_data(data)
    if start is None:
        return
    # The header first, so that the handlers know the image's size and mode, as in load().
    header = data[8 : 20 + struct.unpack_from(">I", data, 8)[0]]
    stream = PngImagePlugin.PngStream(io.BytesIO(header + data[start:]))
    try:
        while True:
            cid, pos, length = stream.read()
            if cid == b"IEND" or (cid == b"fcTL" and animated):  # load() stops there (the next frame)
                return
            try:
                stream.call(cid, pos, length)
            except (AttributeError, EOFError):  # a chunk Pillow skips (unknown, or more pixel data)
                pass
            except UnicodeDecodeError:  # load() stops reading there too
                return
            stream.fp.seek(pos + length + 4)  # the next chunk, past this one's CRC (verify() checked it)
    finally:
        stream.close()


def _after_pixel_data(data: bytes) -> int | None:
    """The offset of the first chunk after a PNG's run of IDAT chunks (None: no such chunk)."""
    seen_pixels = False
    for offset, _length, kind in chunks(data):
        if kind == b"IDAT":
            seen_pixels = True
        elif seen_pixels:
            return offset
    return None


def chunks(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """Each chunk of a PNG after its signature: its offset, its data's length and its type.

    Only the lengths are followed (Pillow's verify() checked the CRCs and the order already)."""
    offset = 8
    while offset + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, offset)
        yield offset, length, kind
        offset += 12 + length  # length, type, data, CRC
