"""Sample drawings for tests and benchmarks: canvases the way browsers hold them, and MNIST-like digits.

Both the test suite and the benchmarks draw from here (neither imports the other). Nothing
here reads a data set: the digits are made by the project itself (synthetic pen strokes
through the MNIST recipe, `training.strokes`), so a clone with nothing beside it can run
the tests. Full-MNIST evaluations read `training.mnist` instead.
"""

from __future__ import annotations

import base64
import functools
import io

import numpy as np
from PIL import Image, ImageDraw

from training import strokes

STYLES = {  # name: (background RGBA, ink RGBA)
    "dark_on_light": ((255, 255, 255, 255), (0, 0, 0, 255)),
    "light_on_dark": ((0, 0, 0, 255), (255, 255, 255, 255)),
    "coloured": ((250, 248, 240, 255), (20, 60, 220, 255)),
    "transparent": ((0, 0, 0, 0), (30, 30, 30, 255)),
}
SEED = 20261129  # of the sample digits
# A "7" and a "1" as pen strokes in a unit square.
STROKES = {
    7: [(0.15, 0.1), (0.85, 0.1), (0.4, 0.95)],
    1: [(0.5, 0.05), (0.5, 0.95)],
}


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def canvas(size: int = 280, style: str = "dark_on_light") -> Image.Image:
    return Image.new("RGBA", (size, size), STYLES[style][0])


def stroke_points(digit: int, box: tuple[int, int, int, int]) -> list[tuple[float, float]]:
    """The pen's path of a STROKES digit drawn into `box` (left, top, right, bottom), in canvas pixels."""
    left, top, right, bottom = box
    return [(left + x * (right - left), top + y * (bottom - top)) for x, y in STROKES[digit]]


def stroke_digit(digit: int, style: str, box: tuple[int, int, int, int], width: int = 18, size: int = 280) -> bytes:
    """A pen-stroke digit drawn into `box` (left, top, right, bottom) of a canvas."""
    image = canvas(size, style)
    ImageDraw.Draw(image).line(stroke_points(digit, box), fill=STYLES[style][1], width=width, joint="curve")
    return png(image)


def ink_digit(digit: int, box: tuple[int, int, int, int], width: int = 18, size: int = 280) -> dict:
    """The same digit as `stroke_digit`, as the strokes body of the API (and a websocket frame)."""
    points = [[round(x, 1), round(y, 1)] for x, y in stroke_points(digit, box)]
    return {"strokes": [points], "width": size, "height": size, "pen": width}


@functools.cache
def _digits(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    images, labels = strokes.digits(count, seed)
    return (images * 255).round().astype(np.uint8), labels


def digits(count: int, offset: int = 0, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-like digits (count, 28, 28) uint8, white on black, and their labels (0-9 in turn).

    The same for the same offset and seed on every machine: pen-stroke digits, each through
    the MNIST recipe (20x20 box, centre of mass at the centre of 28x28).
    """
    images, labels = _digits(offset + count, seed)
    return images[offset:], labels[offset:]


def digit_canvas(digit: np.ndarray, style: str, size: int = 280, side: int = 200, at=(40, 40)) -> bytes:
    """A 28x28 digit (MNIST's format) scaled up onto a canvas, in an ink style."""
    image = canvas(size, style)
    mask = Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC)
    image.paste(Image.new("RGBA", (side, side), STYLES[style][1]), at, mask)
    return png(image)


def page_bodies(count: int, kind: str = "strokes") -> tuple[list[dict], np.ndarray]:
    """`count` digits as the canvas page sends them, as API bodies: `kind` "strokes" (pointer events),
    or "image" (the MNIST-like digits on 280 px canvases in the four ink styles, as data URLs); and labels."""
    if kind == "strokes":
        return strokes.page_drawings(count, SEED)
    images, labels = digits(count)
    styles = list(STYLES)
    return [{"image": data_url(digit_canvas(image, styles[i % 4]))} for i, image in enumerate(images)], labels


def blank(size: int = 280, style: str = "transparent") -> bytes:
    return png(canvas(size, style))


# The drawings most tests send: a 7 and a thin 1, dark on light.
SEVEN = stroke_digit(7, "dark_on_light", (30, 40, 150, 200))
ONE = stroke_digit(1, "dark_on_light", (100, 20, 180, 260), width=16)
