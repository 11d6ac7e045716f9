"""Hostile files for the tests: PNG chunks anywhere, images at the size limits, MPO JPEGs, deep JSON.

Each is built from a real canvas (training.samples), so what is wrong with it is only what
the name says.
"""

from __future__ import annotations

import base64
import io
import struct
import zlib

import numpy as np
from django.conf import settings
from PIL import Image

from training import samples

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk with a correct CRC: only its content can be wrong."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    """A PNG's chunks as (type, data)."""
    found, offset = [], len(SIGNATURE)
    while offset < len(png):
        length, kind = struct.unpack_from(">I4s", png, offset)
        found.append((kind, png[offset + 8 : offset + 8 + length]))
        offset += 12 + length
    return found


def rebuilt(parts: list[tuple[bytes, bytes]]) -> bytes:
    return SIGNATURE + b"".join(chunk(kind, data) for kind, data in parts)


def with_chunk(png: bytes, kind: bytes, data: bytes, after_pixels: bool) -> bytes:
    """The PNG with one more chunk, just before its first IDAT or just after its last one."""
    parts = chunks(png)
    kinds = [k for k, _ in parts]
    at = len(kinds) - kinds[::-1].index(b"IDAT") if after_pixels else kinds.index(b"IDAT")
    return rebuilt([*parts[:at], (kind, data), *parts[at:]])


def bad_compression_after_pixels(kind: bytes = b"zTXt", png: bytes = samples.SEVEN) -> bytes:
    """A zTXt or iCCP chunk after IDAT whose compression method is 1 (only 0 exists): CRCs all right."""
    return with_chunk(png, kind, b"name\0\x01" + zlib.compress(b"x"), after_pixels=True)


def corrupt_pixels(png: bytes = samples.SEVEN) -> bytes:
    """The PNG with its pixel data replaced by bytes that do not inflate; every CRC is right."""
    return rebuilt([(k, b"\x78\x9c" + b"\xff" * 64 if k == b"IDAT" else d) for k, d in chunks(png)])


def random_pixels(png: bytes = samples.SEVEN) -> bytes:
    """The PNG with its pixel data replaced by random bytes (the same every run), as a fuzzer makes it."""
    return rebuilt([(k, np.random.default_rng(0).bytes(2000) if k == b"IDAT" else d) for k, d in chunks(png)])


def unfiltered_pixels(png: bytes = samples.SEVEN) -> bytes:
    """The PNG with a valid zlib stream of pixel data whose first row names filter 5 (PNG has 0-4)."""
    return rebuilt([(k, zlib.compress(b"\x05" + b"\0" * 4096) if k == b"IDAT" else d) for k, d in chunks(png)])


def unknown_critical_chunk(png: bytes = samples.SEVEN) -> bytes:
    """The PNG with a chunk whose upper-case type says a decoder must understand it, and none does."""
    return with_chunk(png, b"QUUX", b"what the pixels mean", after_pixels=False)


def short_pixels(png: bytes = samples.SEVEN) -> bytes:
    """The PNG with pixel data for its first rows only: a valid zlib stream, too short."""
    return rebuilt([(k, zlib.compress(b"\0" * 64) if k == b"IDAT" else d) for k, d in chunks(png)])


# Every chunk type Pillow reads (and a few it skips), each well formed and broken. The CRCs are
# always right: the content is what a hostile file gets wrong.
ANCILLARY = {
    "tEXt": (b"Comment\0a seven", b"no separator \xff"),
    "zTXt": (b"Comment\0\0" + zlib.compress(b"a seven"), b"Comment\0\x01" + zlib.compress(b"a seven")),
    "zTXt-not-zlib": (b"Comment\0\0" + zlib.compress(b"ok"), b"Comment\0\0not zlib at all"),
    "iTXt": (b"Comment\0\0\0en\0Comment\0a seven", b"Comment\0\x01\x01en\0Comment\0" + zlib.compress(b"x")),
    "iTXt-compressed": (b"Comment\0\x01\0en\0C\0" + zlib.compress(b"a seven"), b"Comment\0\x01\0en\0C\0garbage"),
    "iCCP": (b"profile\0\0" + zlib.compress(b"not really a profile"), b"profile\0\x01" + zlib.compress(b"x")),
    "gAMA": (struct.pack(">I", 45455), b"\0\1"),
    "cHRM": (struct.pack(">8I", *[31270, 32900, 64000, 33000, 30000, 60000, 15000, 6000]), b"\0" * 8),
    "sRGB": (b"\0", b""),
    "pHYs": (struct.pack(">IIB", 2835, 2835, 1), b"\0\0\1"),
    "tRNS": (b"\0\0\0\0\0\0", b"\0"),
    "eXIf": (b"MM\0*\0\0\0\x08\0\0", b"\xff" * 7),
    "bKGD": (b"\0\0\0\0\0\0", b"\0"),
    "sBIT": (b"\x08\x08\x08\x08", b""),
    "tIME": (struct.pack(">HBBBBB", 2026, 11, 29, 12, 0, 0), b"\0"),
    "acTL": (struct.pack(">II", 1, 0), b"\0\0\0"),
    "fcTL": (struct.pack(">IIIIIHHBB", 0, 280, 280, 0, 0, 1, 1, 0, 0), struct.pack(">I", 7)),
    "fdAT": (struct.pack(">I", 1) + zlib.compress(b"\0"), b"\0"),
    "prVt": (b"a private chunk", b""),
}


def every_ancillary_variant() -> list[tuple[str, bytes]]:
    """(name, PNG) for every chunk above, well formed and broken, before and after the pixel data."""
    variants = []
    for name, (good, bad) in ANCILLARY.items():
        kind = name[:4].encode()
        for content, label in ((good, "good"), (bad, "broken")):
            for after in (False, True):
                where = "after" if after else "before"
                variants.append((f"{name}-{label}-{where}-IDAT", with_chunk(samples.SEVEN, kind, content, after)))
    return variants


def encoded(image: Image.Image, kind: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, kind, **options)
    return buffer.getvalue()


def data_url(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def seven(width: int, height: int | None = None, mode: str = "RGB") -> Image.Image:
    """The sample seven, scaled to width x height."""
    return Image.open(io.BytesIO(samples.SEVEN)).convert(mode).resize((width, height or width))


def mpo(png: bytes = samples.SEVEN) -> bytes:
    """A Multi-Picture JPEG (what many phone cameras write): the canvas, then a second frame."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    return encoded(image, "MPO", save_all=True, append_images=[image.rotate(90)])


def largest_side() -> int:
    """The side of the largest square image the pixel limit allows."""
    return int(settings.MAX_IMAGE_PIXELS**0.5)


def largest_png() -> bytes:
    """A seven on the largest square canvas the pixel limit allows."""
    return encoded(seven(largest_side()), "PNG")


def largest_jpeg(progressive: bool = False) -> bytes:
    """A seven on the largest square canvas, with noise, as close under the byte limit as a quality allows."""
    side = largest_side()
    noise = np.random.default_rng(7).integers(-40, 40, (side, side, 1))
    noisy = Image.fromarray(np.clip(np.asarray(seven(side)) + noise, 0, 255).astype(np.uint8))
    for quality in range(95, 4, -10):
        data = encoded(noisy, "JPEG", quality=quality, progressive=progressive)
        if len(data) <= settings.MAX_IMAGE_BYTES:
            return data
    raise AssertionError("no quality fits the byte limit")


def widest_png() -> bytes:
    """The pixel limit as one very wide strip (a few hundred bytes compressed)."""
    height = 16
    return encoded(Image.new("L", (settings.MAX_IMAGE_PIXELS // height, height), 255), "PNG")


def nested_json(depth: int) -> str:
    return "[" * depth + "]" * depth


def animated_png() -> bytes:
    """An APNG of two frames: its second frame's chunks follow the first frame's pixel data."""
    image = Image.open(io.BytesIO(samples.SEVEN))
    return encoded(image, "PNG", save_all=True, append_images=[image.rotate(90)])


# What a client cut off halfway through a pipelined executemany leaves on the server.
HOLDS_A_WRITE_LOCK = "SELECT count(*) FROM pg_locks WHERE pid = %s AND locktype = 'transactionid'"


def write_left_halfway(conn, sql: bytes, params: list[bytes] | None = None) -> None:
    """On a psycopg connection in autocommit: BEGIN and `sql` pipelined with no Sync after them. The
    backend holds the write's row locks and waits for the rest of the pipeline, not idle in a
    transaction (so no idle timeout ends it); poll HOLDS_A_WRITE_LOCK for its pid until it holds them."""
    conn.pgconn.enter_pipeline_mode()
    conn.pgconn.send_query_params(b"BEGIN", None)
    conn.pgconn.send_query_params(sql, params)
    conn.pgconn.flush()
