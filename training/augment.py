"""Training-time distortions of 28x28 digits, covering how people draw on a canvas.

Everything runs on whole batches in TensorFlow with stateless random ops keyed by
(seed, step), so a training run is reproducible and the input pipeline stays cheap
next to the model. One bilinear resampling applies the affine part (rotation, shear,
scale, aspect, shift) and two displacement fields at once: a smooth elastic one (how
hands differ, after Simard et al. 2003) and a fine jitter (how a mouse's strokes wobble).
Stroke thickness changes by grey-scale dilation or erosion before the warp.
"""

from __future__ import annotations

import math

import tensorflow as tf

SIZE = 28
CENTRE = (SIZE - 1) / 2

# Ranges, per drawing. Wide enough for real canvases, narrow enough that a 7 stays a 7.
ROTATE_DEGREES = 15
SHEAR = 0.3
SCALE = (0.85, 1.15)
ASPECT = 0.2  # log-ratio of width to height scale
SHIFT = 2.5  # pixels
ELASTIC = {"share": 0.5, "alpha": 34.0, "sigma": 4.0}
JITTER = {"share": 0.3, "alpha": 3.0, "sigma": 1.0}
THICKER, THINNER = 0.25, 0.15  # shares of drawings made bolder or finer


def augment(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """A distorted copy of a batch (B, 28, 28, 1) in [0, 1]; seed is a stateless seed of shape (2,)."""
    seeds = tf.random.experimental.stateless_split(seed, 4)
    images = thickness(images, seeds[0])
    batch = tf.shape(images)[0]
    dx, dy = _displacement(batch, seeds[1], **ELASTIC)
    jx, jy = _displacement(batch, seeds[2], **JITTER)
    images = _warp(images, _affine(batch, seeds[3]), dx + jx, dy + jy)
    # The worker scales every drawing so its strongest ink is 1; do the same here.
    peak = tf.reduce_max(images, axis=[1, 2, 3], keepdims=True)
    return images / tf.maximum(peak, 1e-3)


def thickness(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Bolder strokes by a 3x3 max filter, finer by a 3x3 min filter, blended in part."""
    batch = tf.shape(images)[0]
    choice, amount = tf.unstack(tf.random.stateless_uniform([2, batch, 1, 1, 1], seed), axis=0)
    bolder = tf.nn.max_pool2d(images, 3, 1, "SAME")
    finer = -tf.nn.max_pool2d(-images, 3, 1, "SAME")
    # Full erosion wipes out MNIST's thinnest strokes, so finer drawings blend in at most 70 %.
    target = tf.where(choice < THICKER, bolder, tf.where(choice < THICKER + THINNER, finer, images))
    weight = tf.where(choice < THICKER, 0.3 + 0.7 * amount, 0.3 + 0.4 * amount)
    return images + weight * (target - images)


def _affine(batch: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Per drawing, the 2x2 matrix and shift (B, 6) from output to source coordinates."""
    u = tf.random.stateless_uniform([6, batch], seed, -1.0, 1.0)
    angle = u[0] * ROTATE_DEGREES * math.pi / 180
    shear = u[1] * SHEAR
    scale = SCALE[0] + (u[2] + 1) / 2 * (SCALE[1] - SCALE[0])
    aspect = tf.exp(u[3] * ASPECT / 2)
    sx, sy = 1 / (scale * aspect), aspect / scale  # source steps per output pixel
    cos, sin = tf.cos(angle), tf.sin(angle)
    # rotation @ shear @ scaling, written out.
    a, b = cos * sx, (cos * shear - sin) * sy
    c, d = sin * sx, (sin * shear + cos) * sy
    return tf.stack([a, b, c, d, u[4] * SHIFT, u[5] * SHIFT], axis=1)


def _displacement(batch: tf.Tensor, seed: tf.Tensor, share: float, alpha: float, sigma: float):
    """A smooth random displacement field in pixels, applied to `share` of the drawings."""
    seeds = tf.random.experimental.stateless_split(seed, 2)
    noise = tf.random.stateless_uniform([batch, SIZE, SIZE, 2], seeds[0], -1.0, 1.0)
    field = _blur(noise, sigma)
    on, strength = tf.unstack(tf.random.stateless_uniform([2, batch, 1, 1], seeds[1]), axis=0)
    scale = tf.where(on < share, alpha * strength, 0.0)
    return field[..., 0] * scale, field[..., 1] * scale


def _blur(field: tf.Tensor, sigma: float) -> tf.Tensor:
    radius = int(2 * sigma + 0.5)
    x = tf.range(-radius, radius + 1, dtype=tf.float32)
    kernel = tf.exp(-(x**2) / (2 * sigma**2))
    kernel = kernel / tf.reduce_sum(kernel)
    channels = field.shape[-1]
    rows = tf.tile(tf.reshape(kernel, [-1, 1, 1, 1]), [1, 1, channels, 1])
    cols = tf.tile(tf.reshape(kernel, [1, -1, 1, 1]), [1, 1, channels, 1])
    field = tf.nn.depthwise_conv2d(field, rows, [1, 1, 1, 1], "SAME")
    return tf.nn.depthwise_conv2d(field, cols, [1, 1, 1, 1], "SAME")


def _warp(images: tf.Tensor, affine: tf.Tensor, dx: tf.Tensor, dy: tf.Tensor) -> tf.Tensor:
    """Bilinear resampling: output pixel p reads the source at A (p - c) + c + shift + d(p)."""
    batch = tf.shape(images)[0]
    ys, xs = tf.meshgrid(
        tf.range(SIZE, dtype=tf.float32) - CENTRE, tf.range(SIZE, dtype=tf.float32) - CENTRE, indexing="ij"
    )
    a, b, c, d, tx, ty = (tf.reshape(v, [-1, 1, 1]) for v in tf.unstack(affine, axis=1))
    src_x = a * xs + b * ys + CENTRE + tx + dx
    src_y = c * xs + d * ys + CENTRE + ty + dy
    # A one-pixel zero border: every source point outside the image reads zeros.
    padded = tf.reshape(tf.pad(images[..., 0], [[0, 0], [1, 1], [1, 1]]), [-1])
    src_x = tf.clip_by_value(src_x, -1.0, SIZE) + 1
    src_y = tf.clip_by_value(src_y, -1.0, SIZE) + 1
    x0, y0 = tf.floor(src_x), tf.floor(src_y)
    fx, fy = src_x - x0, src_y - y0
    width = SIZE + 2
    base = tf.reshape(tf.range(batch) * width * width, [-1, 1, 1])

    def at(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        x = tf.cast(tf.clip_by_value(x, 0, width - 1), tf.int32)
        y = tf.cast(tf.clip_by_value(y, 0, width - 1), tf.int32)
        return tf.gather(padded, base + y * width + x)

    top = at(x0, y0) * (1 - fx) + at(x0 + 1, y0) * fx
    bottom = at(x0, y0 + 1) * (1 - fx) + at(x0 + 1, y0 + 1) * fx
    return (top * (1 - fy) + bottom * fy)[..., None]
