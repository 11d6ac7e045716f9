"""Canvas images for tests: MNIST digits and pen strokes drawn the way browsers hold them."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image, ImageDraw

from worker import mnist

STYLES = {  # name: (background RGBA, ink RGBA)
    "dark_on_light": ((255, 255, 255, 255), (0, 0, 0, 255)),
    "light_on_dark": ((0, 0, 0, 255), (255, 255, 255, 255)),
    "coloured": ((250, 248, 240, 255), (20, 60, 220, 255)),
    "transparent": ((0, 0, 0, 0), (30, 30, 30, 255)),
}
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


def stroke_digit(digit: int, style: str, box: tuple[int, int, int, int], width: int = 18, size: int = 280) -> bytes:
    """A pen-stroke digit drawn into `box` (left, top, right, bottom) of a canvas."""
    image = canvas(size, style)
    left, top, right, bottom = box
    points = [(left + x * (right - left), top + y * (bottom - top)) for x, y in STROKES[digit]]
    ImageDraw.Draw(image).line(points, fill=STYLES[style][1], width=width, joint="curve")
    return png(image)


def mnist_digits(count: int, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    images, labels = mnist.load("test")
    return images[offset : offset + count], labels[offset : offset + count]


def mnist_canvas(digit: np.ndarray, style: str, size: int = 280, side: int = 200, at=(40, 40)) -> bytes:
    """An MNIST test digit scaled up onto a canvas, in an ink style."""
    image = canvas(size, style)
    mask = Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC)
    image.paste(Image.new("RGBA", (side, side), STYLES[style][1]), at, mask)
    return png(image)


def blank(size: int = 280, style: str = "transparent") -> bytes:
    return png(canvas(size, style))
