"""Turning a canvas image into the 28x28 input the model expects, by MNIST's own recipe.

MNIST digits were size-normalised to fit a 20x20 box (aspect ratio kept), anti-aliased,
and centred by centre of mass in a 28x28 field, white ink on black. A browser canvas is
none of that: any size, any colour, ink anywhere, often on a transparent background.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import ExifTags, Image, ImageChops

BOX = 20  # MNIST fits the longer side of the digit into 20 px ...
SIZE = 28  # ... and centres it in 28x28.
# Below this contrast (0-255) between ink and background nothing was drawn.
MIN_CONTRAST = 40
# Ink fainter than this share of the strongest ink is anti-aliasing or noise, not the digit's extent.
EXTENT_SHARE = 0.2
# A mark whose longer side is under this share of the canvas's size (`canvas_side`) is a tap or a
# slip of the pen (the page's pen is 6 % of the canvas wide), not a digit.
MIN_EXTENT_SHARE = 0.08
# The boldest pen the model learnt from, as a share of the ink's longer side (the pen included): a
# bolder one is drawn at it (recognizer/ink.py) or thinned towards it (`thinned`). A small digit is
# bold for its pen: blotted, UNIPEN's calibration writers' digits read 78 % at 0.3, drawn at 0.2, 95 %.
BOLDEST = 0.2
# The finest pen strokes are drawn with, the same way: the finest of the synthetic strokes the model
# learnt from (training/strokes.py: 0.03 of the digit's height). A client's hairline (a pen of 0.05
# px on 280, within the limits) left so faint a line in the 20 px box that a 7 read as a sure 1.
FINEST = 0.03
# An image's pen is measured, and thinned, on its ink shrunk to about this many pixels on the longer
# side: the 20 px box needs no finer ...
THINNING_SIDE = 80
# ... and thinned only when measured this much bolder than BOLDEST: the measure is good to about a
# tenth either way, and a pen the model knows is left as it is.
THINNING_MARGIN = 1.15
# Measured in the 20 px box a pen is found to within a few hundredths of the box: above this share
# (every pen of 0.25, one in ten of 0.16) it is measured again on THINNING_SIDE.
BOLD_IN_THE_BOX = 0.18
# A square erodes a slanted stroke by more than its width: against UNIPEN digits drawn with known pens
# (0.12-0.4 of the digit), the width measured is 0.78-0.85 of the pen's.
MEASURED_SHARE = 0.84
# A canvas longer than this on a side is first shrunk by a whole factor, averaging boxes of
# pixels as the 20 px box does anyway: the ink of a 4096 px image cost the worker as much as
# decoding it (most of a second), at 1024 px a sixteenth. Canvases are smaller: unchanged.
MAX_SIDE = 1024


class BlankDrawing(Exception):
    """The canvas holds no digit: nothing drawn, or only a speck."""


def ink(image: Image.Image) -> np.ndarray:
    """Ink strength per pixel in 0..255 (uint8), whatever the colours and transparency.

    The background is what the canvas border mostly shows. On a transparent background
    the ink is the opacity; on an opaque one it is the colour distance from the background,
    so dark-on-light, light-on-dark and coloured strokes all give the same ink. The pixel
    work runs in Pillow's C code on bytes: a few times faster than float arrays in numpy.
    """
    rgba = image if image.mode == "RGBA" else image.convert("RGBA")  # a canvas's PNG is RGBA already
    width, height = rgba.size
    edges = ((0, 0, width, 1), (0, height - 1, width, height), (0, 0, 1, height), (width - 1, 0, width, height))
    border = np.concatenate([np.asarray(rgba.crop(edge)).reshape(-1, 4) for edge in edges])
    background = tuple(int(v) for v in np.median(border, axis=0))
    if background[3] < 128:
        return np.asarray(rgba.getchannel("A"))
    if rgba.getchannel("A").getextrema()[0] < 255:  # the alpha band alone: a third of the time of all four
        # Composite over the background colour first, so half-transparent ink counts half.
        rgba = Image.alpha_composite(Image.new("RGBA", rgba.size, background), rgba)
    # Opaque now: against an opaque background the alpha band's difference is 0, and the colour
    # bands' differences are as in RGB, without converting the image first (a quarter of the time).
    plain = Image.new("RGBA", rgba.size, (*background[:3], 255))
    red, green, blue, _ = ImageChops.difference(rgba, plain).split()
    return np.asarray(ImageChops.lighter(ImageChops.lighter(red, green), blue))


def to_mnist(strength: np.ndarray, thin: bool = False) -> np.ndarray:
    """A 28x28 float32 image in [0, 1] from an ink map, or BlankDrawing; `thin`: a bold pen `thinned`."""
    peak = float(strength.max()) if strength.size else 0.0
    if peak < MIN_CONTRAST:
        raise BlankDrawing("the canvas is blank")
    rows = np.flatnonzero((strength >= EXTENT_SHARE * peak).any(axis=1))
    cols = np.flatnonzero((strength >= EXTENT_SHARE * peak).any(axis=0))
    if max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1) < MIN_EXTENT_SHARE * canvas_side(*strength.shape):
        raise BlankDrawing("the canvas holds only a speck")
    digit = strength[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(np.float32) / peak
    small = _fitted(digit)
    # The pen measured in the box first, which costs little: only a bold one is measured finely, and thinned.
    if thin and _pen_width(small >= 0.5) > BOLD_IN_THE_BOX * max(small.shape):
        small = _fitted(thinned(digit))
    return in_field(small)


def canvas_side(width: float, height: float) -> float:
    """The side of a square canvas as large as this one, which a speck is measured against: on a square
    canvas its side; on a long strip for a number, or a phone's tall canvas, less than the longer
    side, which a digit as high as the strip, or a small part of the phone, fills little of."""
    return math.sqrt(width * height)


def _fitted(digit: np.ndarray) -> np.ndarray:
    """The ink's box fitted to the 20 px box: area averaging, as MNIST's anti-aliasing did (float
    mode keeps faint strokes)."""
    height, width = digit.shape
    return np.asarray(Image.fromarray(digit).resize(fitted_size(width, height), Image.Resampling.BOX), np.float32)


def thinned(digit: np.ndarray) -> np.ndarray:
    """The ink's box (0..1, peak 1) with a pen much bolder than BOLDEST eroded to BOLDEST, shrunk to
    about THINNING_SIDE and boxed again; any other ink, and a blot, as it is."""
    factor = max(1, max(digit.shape) // THINNING_SIDE)
    small = np.asarray(Image.fromarray(digit).reduce(factor), np.float32) if factor > 1 else digit
    side = max(small.shape)
    pen = _pen_width(small >= 0.5)
    # Over half its box is a blot, not a pen (eroding it would take long and leave nothing).
    if not THINNING_MARGIN * BOLDEST * side < pen <= side / 2:
        return digit
    # Eroding the pen from w to w' shrinks the box by w - w' too: w' = BOLDEST * (side - w) / (1 - BOLDEST).
    eroded = _eroded(small, round((pen - BOLDEST * (side - pen) / (1 - BOLDEST)) / 2))
    inked = eroded >= EXTENT_SHARE
    if not inked.any():
        return digit
    rows, cols = np.flatnonzero(inked.any(axis=1)), np.flatnonzero(inked.any(axis=0))
    return eroded[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _pen_width(ink: np.ndarray) -> float:
    """The pen's width in pixels of a binary ink map, from the ink an erosion by r pixels a side leaves:
    a stroke w wide and l long, of ink wl, keeps (w - 2r)l."""
    r = max(1, round(0.04 * max(ink.shape)))
    before = int(ink.sum())
    after = int(_eroded(ink, r).sum())
    return 2 * r * before / max(before - after, 1) / MEASURED_SHARE


def _eroded(image: np.ndarray, r: int) -> np.ndarray:
    """Each pixel's least over the (2r + 1)-pixel square round it, blank beyond the edges: over rows,
    then over columns, each the minimum of 2r + 1 shifted views (r is a few pixels at THINNING_SIDE)."""
    height, width = image.shape
    padded = np.zeros((height + 2 * r, width + 2 * r), image.dtype)
    padded[r : r + height, r : r + width] = image
    rows = padded[:height].copy()
    for shift in range(1, 2 * r + 1):
        np.minimum(rows, padded[shift : shift + height], out=rows)
    eroded = rows[:, :width].copy()
    for shift in range(1, 2 * r + 1):
        np.minimum(eroded, rows[:, shift : shift + width], out=eroded)
    return eroded


def fitted_size(width: float, height: float) -> tuple[int, int]:
    """(width, height) in whole pixels of a digit whose longer side is fitted to the 20 px box, aspect kept.

    Both paths to the model (an image's ink, pen strokes in recognizer/ink.py) use it, so a digit
    comes out the same size, rounding included, whichever way it arrived.
    """
    scale = BOX / max(height, width)
    return max(1, round(width * scale)), max(1, round(height * scale))


def in_field(small: np.ndarray) -> np.ndarray:
    """A digit fitted to the box (any non-negative ink) scaled to peak 1 and centred in 28x28 by its mass."""
    peak = float(small.max())
    if peak <= 0:  # ink too faint to survive the fitting (a hair-thin line far from the box's pixels)
        raise BlankDrawing("the canvas is blank")
    digit = small / peak
    # np.clip's own checks cost more here than the two comparisons; the result is the same.
    return centre_of_mass_in_field(np.minimum(np.maximum(digit, 0, out=digit), 1, out=digit))


def centre_of_mass_in_field(digit: np.ndarray) -> np.ndarray:
    """Place the digit in a 28x28 field with its centre of mass at pixel (14, 14), as in MNIST."""
    h, w = digit.shape
    total = float(digit.sum())
    cy = float(digit.sum(axis=1) @ np.arange(h)) / total
    cx = float(digit.sum(axis=0) @ np.arange(w)) / total
    # Python's min/max on plain floats: np.clip on scalars cost more than the rest of this function.
    top = min(max(round(SIZE / 2 - cy), 0), SIZE - h)
    left = min(max(round(SIZE / 2 - cx), 0), SIZE - w)
    field = np.zeros((SIZE, SIZE), np.float32)
    field[top : top + h, left : left + w] = digit
    return field


def shrunk(image: Image.Image) -> Image.Image:
    """The image at most MAX_SIDE pixels on a side, shrunk by a whole factor (or as it is)."""
    factor = -(-max(image.size) // MAX_SIDE)
    if factor < 2:
        return image
    # A JPEG decodes straight to 1/2, 1/4 or 1/8 of its size, for a fraction of the cost (a side of
    # 0 asked for, of a strip 1 px high, made Pillow divide by zero).
    image.draft(image.mode, (max(image.width // factor, 1), max(image.height // factor, 1)))
    factor = -(-max(image.size) // MAX_SIDE)
    # reduce() averages RGBA with the alpha premultiplied, so transparent pixels add no colour.
    return image.convert("RGBA").reduce(factor) if factor > 1 else image


# How to turn a photo upright by its EXIF orientation (2-8), as browsers show it: Pillow's
# ImageOps.exif_transpose, but applied after `shrunk`, so that a JPEG still decodes small.
TURNS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
SIDEWAYS = frozenset({5, 6, 7, 8})  # orientations whose upright image swaps width and height


def orientation(image: Image.Image) -> int:
    """A JPEG's or WebP's EXIF orientation (1: upright), read from its header. A PNG's is not read:
    a canvas carries none, and its eXIf chunk may follow the pixels, which reading it would decode."""
    if image.format == "PNG":
        return 1
    return int(image.getexif().get(ExifTags.Base.Orientation, 1))


def upright_size(size: tuple[int, int], turn: int) -> tuple[int, int]:
    """(width, height) of an image of `size` and EXIF orientation `turn`, as it is shown, upright."""
    return (size[1], size[0]) if turn in SIDEWAYS else size


def ink_map(data: bytes) -> tuple[np.ndarray, tuple[int, int]]:
    """An image file's ink (`ink`), shrunk (`shrunk`) and upright as browsers show it; and the size of
    the upright image, in its own pixels (width, height)."""
    with Image.open(io.BytesIO(data)) as image:
        turn, size = orientation(image), image.size
        small = shrunk(image)
        return ink(small.transpose(TURNS[turn]) if turn in TURNS else small), upright_size(size, turn)


def preprocess(data: bytes) -> np.ndarray:
    """Image file bytes (PNG, JPEG, WebP) to the model's 28x28 input, or BlankDrawing."""
    return to_mnist(ink_map(data)[0], thin=True)
