"""A picture of a digit -> MNIST-like input: 28x28, white on black, centred by mass.

MNIST digits are white on black, size-normalised to fit a 20x20 box (aspect kept) and
centred by centre of mass in a 28x28 field. A drawing is dark strokes on a light canvas,
a photo of a written digit is dark ink on paper, at any size and position, so
`to_mnist_digit` reproduces those steps; the model's own preprocessing (from its
config.json, `models.predict.to_model_input`) then resizes 28x28 to its 32x32 input.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

FIELD = 28          # MNIST image side
BOX = 20            # the digit is scaled to fit this box
CENTRE = 14.0       # where the centre of mass goes (row and column index)
INK_THRESHOLD = 0.2 # fraction of the brightest ink that counts as digit when cropping
MIN_CONTRAST = 24   # 0-255: less than this between ink and background means "nothing drawn"


def to_mnist_digit(img: Image.Image) -> Image.Image | None:
    """A decoded image (RGB or L; alpha already flattened onto white) -> 28x28 L, white on black.

    Dark-on-light input (a drawing, a scan) is inverted; the background level is subtracted;
    the digit is cropped to its bounding box, scaled to fit 20x20 keeping its aspect ratio,
    and placed so that its centre of mass is at the centre of the 28x28 field.
    Returns None when the image holds no visible mark.
    """
    g = np.asarray(img.convert("L"), dtype=np.float64)
    border = np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]])
    if np.median(border) > 127:             # dark on light: invert to white on black
        g = 255.0 - g
        border = 255.0 - border
    g = np.clip(g - np.median(border), 0, None)
    peak = g.max()
    if peak < MIN_CONTRAST:
        return None
    g = g * (255.0 / peak)
    rows = np.flatnonzero((g >= INK_THRESHOLD * 255).any(axis=1))
    cols = np.flatnonzero((g >= INK_THRESHOLD * 255).any(axis=0))
    crop = g[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    h, w = crop.shape
    scale = BOX / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    small = Image.fromarray(crop.astype(np.float32), mode="F").resize((new_w, new_h), Image.LANCZOS)
    digit = np.clip(np.asarray(small, dtype=np.float64), 0, 255)
    total = digit.sum()
    if total <= 0:
        return None
    ys, xs = np.indices(digit.shape)
    cy, cx = (ys * digit).sum() / total, (xs * digit).sum() / total
    # MNIST's centre of mass sits at row 14, column 14 (pixel indices; on the test set
    # 13.99 +- 0.29 and 14.00 +- 0.29): put the drawing's there.
    top = int(np.clip(round(CENTRE - cy), 0, FIELD - new_h))
    left = int(np.clip(round(CENTRE - cx), 0, FIELD - new_w))
    field = np.zeros((FIELD, FIELD), dtype=np.float64)
    field[top:top + new_h, left:left + new_w] = digit
    return Image.fromarray(np.round(field).astype(np.uint8), mode="L")
