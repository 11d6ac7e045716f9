"""Serving preprocessing: any canvas becomes an MNIST-like 28x28 input, or is called blank."""

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from recognizer.preprocessing import (
    BOLDEST,
    BlankDrawing,
    ink,
    preprocess,
    thinned,
    to_mnist,
)
from training import samples


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    total = image.sum()
    rows, cols = np.indices(image.shape)
    return (rows * image).sum() / total, (cols * image).sum() / total


def extent(image: np.ndarray) -> tuple[int, int]:
    rows = np.flatnonzero(image.max(axis=1) > 0.2)
    cols = np.flatnonzero(image.max(axis=0) > 0.2)
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


@pytest.mark.parametrize("style", samples.STYLES)
def test_it_gives_the_same_input_for_every_ink_style(style):
    reference = preprocess(samples.stroke_digit(7, "dark_on_light", (30, 40, 150, 200)))
    image = preprocess(samples.stroke_digit(7, style, (30, 40, 150, 200)))
    assert image.shape == (28, 28) and image.dtype == np.float32
    assert np.abs(image - reference).mean() < 0.02


@pytest.mark.parametrize("box", [(10, 10, 90, 110), (170, 150, 270, 270), (100, 20, 200, 140)])
def test_it_centres_an_off_centre_digit_by_its_centre_of_mass(box):
    image = preprocess(samples.stroke_digit(7, "dark_on_light", box))
    cy, cx = centre_of_mass(image)
    assert abs(cy - 14) < 1 and abs(cx - 14) < 1


def test_it_fits_the_longer_side_into_20_pixels_keeping_the_aspect_ratio():
    image = preprocess(samples.stroke_digit(1, "dark_on_light", (100, 20, 180, 260), width=12))
    height, width = extent(image)
    assert height == 20
    assert width <= 5  # a 1 stays thin: it is not stretched into a square


def test_it_scales_ink_to_the_full_range():
    image = preprocess(samples.stroke_digit(7, "coloured", (30, 40, 150, 200)))
    assert image.min() == 0 and image.max() == pytest.approx(1)


def test_it_reproduces_mnist_from_an_mnist_digit(test_digits):
    images, _ = test_digits
    for digit in images[:50]:
        assert np.abs(to_mnist(digit.astype(np.float32)) * 255 - digit).mean() < 4


def test_it_reproduces_mnist_from_a_scaled_up_canvas(test_digits):
    images, _ = test_digits
    image = preprocess(samples.digit_canvas(images[0], "transparent", size=400, side=300, at=(90, 10)))
    assert np.abs(image - images[0] / 255).mean() < 0.06


@pytest.mark.parametrize("style", samples.STYLES)
def test_it_calls_an_empty_canvas_blank(style):
    with pytest.raises(BlankDrawing):
        preprocess(samples.blank(style=style))


def test_it_calls_a_speck_blank():
    image = samples.canvas()
    ImageDraw.Draw(image).ellipse((100, 100, 104, 104), fill=(0, 0, 0, 255))
    with pytest.raises(BlankDrawing):
        preprocess(samples.png(image))


def test_it_calls_faint_noise_blank():
    rng = np.random.default_rng(1)
    noise = (250 + rng.integers(0, 5, (280, 280, 3))).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, "PNG")
    with pytest.raises(BlankDrawing):
        preprocess(buffer.getvalue())


def test_it_reads_jpeg_and_greyscale_images():
    image = Image.open(io.BytesIO(samples.stroke_digit(7, "dark_on_light", (30, 40, 150, 200)))).convert("L")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80)
    reference = preprocess(samples.stroke_digit(7, "dark_on_light", (30, 40, 150, 200)))
    assert np.abs(preprocess(buffer.getvalue()) - reference).mean() < 0.03


@pytest.mark.parametrize("size", [(1500, 1), (1, 1500)])
@pytest.mark.parametrize("colour", [255, 0])
def test_a_jpeg_strip_one_pixel_across_is_read_as_a_png_of_it_is(size, colour):
    # Decoded at a fraction of its size, a strip 1 px high was asked for at 0 px: ZeroDivisionError.
    def outcome(kind: str) -> object:
        buffer = io.BytesIO()
        Image.new("L", size, colour).save(buffer, kind)
        try:
            return preprocess(buffer.getvalue()).shape
        except BlankDrawing:
            return "blank"

    assert outcome("JPEG") == outcome("PNG")


def inked_box(data: bytes) -> np.ndarray:
    """The ink's box (0..1) of a PNG, as to_mnist crops it."""
    strength = ink(Image.open(io.BytesIO(data)))
    rows, cols = np.flatnonzero((strength >= 51).any(axis=1)), np.flatnonzero((strength >= 51).any(axis=0))
    return strength[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(np.float32) / strength.max()


@pytest.mark.parametrize("width", [4, 12, 24])
def test_a_pen_the_model_knows_is_left_as_it_is(width):
    image = samples.stroke_digit(7, "dark_on_light", (40, 40, 200, 240), width=width)
    box = inked_box(image)
    assert thinned(box) is box
    assert np.array_equal(preprocess(image), to_mnist(ink(Image.open(io.BytesIO(image)))))


@pytest.mark.parametrize("width", [50, 70])
def test_a_bold_pen_is_thinned_towards_the_boldest_the_model_learnt(width):
    # A 7 in a pen 0.26 and 0.33 of its ink's longer side, against the same 7 drawn at BOLDEST: in
    # ink (the 28x28 input's sum) the thinned 7 is far nearer the boldest than the 7 as drawn.
    box = (60, 60, 200, 200)  # the pen's path spans 140 px
    boldest = preprocess(samples.stroke_digit(7, "dark_on_light", box, width=round(BOLDEST * 140 / (1 - BOLDEST))))
    bold = samples.stroke_digit(7, "dark_on_light", box, width=width)
    as_drawn = to_mnist(ink(Image.open(io.BytesIO(bold))))
    assert abs(preprocess(bold).sum() - boldest.sum()) < abs(as_drawn.sum() - boldest.sum()) / 3
