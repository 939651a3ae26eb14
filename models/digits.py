"""A picture of a digit -> MNIST-like input: 28x28, white on black, centred by mass.

MNIST digits are white on black, scaled to fit a 20x20 box (aspect kept) and centred by mass
in 28x28. A drawing is dark strokes on a light canvas; a photo is dark ink on paper under
uneven light, anywhere in the frame. `to_mnist_digit` finds the digit and repeats MNIST's
steps on it. Only numpy and Pillow: the Hub code copies this file as it is.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

FIELD = 28          # MNIST image side
BOX = 20            # the digit is scaled to fit this box
CENTRE = 14.0       # where the centre of mass goes (row and column index)
INK_THRESHOLD = 0.2 # fraction of the brightest ink that counts as digit when cropping
MIN_CONTRAST = 24   # 0-255: less than this between darkest and lightest is a blank image; around
                    # the border, an even background (a drawing, a scan, MNIST), taken as it is
INK = 64            # 0-255: a photo's ink is at least a quarter darker than the paper around it
WORK_SIDE = 256     # larger images are analysed at this long side (a 4000x3000 photo costs milliseconds)
PAPER_SIDE = 64     # ... and the paper's level at this one,
SPAN = 0.6          # ... as the median over this fraction of the image (far wider than a stroke)
NEAR = 0.25         # marks nearer than this fraction of the ink's extent are one digit (broken strokes)
OTHER = 0.25        # a far mark with this fraction of the digit's ink is another mark, not a stray dot
SPECK = 0.02        # marks with less than this fraction of the largest one's ink are specks
EDGE = 0.25         # a mark along this fraction of a side of the photo is its edge or a shadow


class NotADigit(ValueError):
    """The image has marks, but not one digit; str() is a one-line reason for the user."""


def to_mnist_digit(img: Image.Image) -> Image.Image | None:
    """A decoded image (RGB or L; alpha already flattened onto white) -> 28x28 L, white on black.

    Dark ink is inverted and the background subtracted: the border's level when it is even,
    else the paper's level around each pixel, so a brightness gradient vanishes. The ink is
    thresholded (Otsu) into marks; the digit is the largest and those near it (a photo's
    specks and shadows are dropped), cropped, scaled to fit 20x20 keeping its aspect and
    centred by mass in 28x28. Returns None for a blank (uniform) image; raises NotADigit when
    nothing stands out from the paper, the only marks run along its edge, or several are far apart.
    """
    g = np.asarray(_shrink(img, WORK_SIDE).convert("L"), dtype=np.float64)
    if g.max() - g.min() < MIN_CONTRAST:
        return None
    border = np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]])
    even = np.ptp(np.percentile(border, [5, 95])) < MIN_CONTRAST
    bg = np.full_like(g, np.median(border)) if even else _paper(g)
    dark_ink = np.mean((g - bg) ** 3) < 0     # the far tail is darker than the background
    if dark_ink:
        g, bg = 255.0 - g, 255.0 - bg
    # Dark ink relative to the paper's brightness there (255 - bg): the dim half of a gradient
    # shows the same ink as the bright half (64 keeps a black table finite). Light ink as it is.
    ink = np.clip((g - bg) / (np.maximum(255.0 - bg, 64.0) if dark_ink else 255.0), 0, 1) * 255
    smooth = np.asarray(Image.fromarray(ink.astype(np.uint8)).filter(ImageFilter.GaussianBlur(1)), float)
    if smooth.max() <= INK:
        raise NotADigit("no digit found: nothing stands out from the background")
    threshold = max(_otsu(smooth), INK)
    digit = _digit_mask(smooth > threshold / 2, smooth > threshold)
    if not even:                              # a photo: the digit and its edges only
        ink = ink * (np.asarray(Image.fromarray(digit).filter(ImageFilter.MaxFilter(5))) > 0)
    ink = ink * (255.0 / ink.max())
    rows = np.flatnonzero((ink >= INK_THRESHOLD * 255).any(axis=1))
    cols = np.flatnonzero((ink >= INK_THRESHOLD * 255).any(axis=0))
    return _centred(ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1])


def _shrink(img: Image.Image, side: int) -> Image.Image:
    scale = side / max(img.size)
    return img if scale >= 1 else img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                                             Image.BOX)


def _paper(g: np.ndarray) -> np.ndarray:
    """The paper's level at every pixel: a median far wider than a stroke, on a coarse copy,
    follows a gradient, a vignette or a shadow's edge and not the strokes."""
    small = _shrink(Image.fromarray(g.astype(np.uint8)), PAPER_SIDE)
    small = small.filter(ImageFilter.MedianFilter(2 * round(SPAN * max(small.size) / 2) + 1))
    return np.asarray(small.resize((g.shape[1], g.shape[0]), Image.BILINEAR), dtype=np.float64)


def _otsu(x: np.ndarray) -> int:
    hist = np.bincount(np.clip(x, 0, 255).astype(int).ravel(), minlength=256).astype(np.float64)
    w0, m0 = np.cumsum(hist), np.cumsum(hist * np.arange(256))
    between = (m0[-1] * w0 / w0[-1] - m0) ** 2 / np.maximum(w0 * (w0[-1] - w0), 1e-9)
    return int(np.argmax(between[:-1]))


def _digit_mask(faint: np.ndarray, ink: np.ndarray) -> np.ndarray:
    """The largest mark and those near it, as a uint8 mask; NotADigit if another mark is far."""
    marks, labels = _marks(faint, ink)
    if not marks:
        raise NotADigit("no digit found: the only marks run along the edge of the photo (the page's edge "
                        "or a shadow); crop the photo to the digit")
    # Broken strokes are near compared with the ink's extent (capped: scattered specks stay apart).
    reach = NEAR * min(_size(_join([m for m in marks if m[0] >= OTHER * marks[0][0]])), 2 * _size(marks[0]))
    digit, rest = marks[0], marks[1:]
    while near := [m for m in rest if _gap(digit, m) <= reach]:
        rest = [m for m in rest if m not in near]
        digit = _join([digit, *near])
    if any(m[0] >= OTHER * digit[0] for m in rest):
        raise NotADigit("several separate marks: the image holds more than one digit or mark; crop it to one digit")
    return np.isin(labels, digit[5]).astype(np.uint8) * 255


def _marks(faint: np.ndarray, ink: np.ndarray) -> tuple[list, np.ndarray]:
    """Connected parts of `faint` holding `ink`, largest first: (ink pixels, top, bottom, left, right,
    [label]), and the labels; without specks, or marks across the photo or along a side (EDGE)."""
    h, w = faint.shape
    labels = _label(faint)
    ys, xs = np.nonzero(faint)
    ids, which = np.unique(labels[ys, xs], return_inverse=True)
    n = len(ids)
    area = np.bincount(which, ink[ys, xs], n)
    top, bottom, left, right = np.full(n, h), np.zeros(n, int), np.full(n, w), np.zeros(n, int)
    np.minimum.at(top, which, ys)
    np.maximum.at(bottom, which, ys)
    np.minimum.at(left, which, xs)
    np.maximum.at(right, which, xs)
    rows = np.maximum(np.bincount(which, ys == 0, n), np.bincount(which, ys == h - 1, n)) / w
    cols = np.maximum(np.bincount(which, xs == 0, n), np.bincount(which, xs == w - 1, n)) / h
    across = ((top == 0) & (bottom == h - 1)) | ((left == 0) & (right == w - 1))
    keep = (area >= max(2, SPECK * area.max())) & (np.maximum(rows, cols) < EDGE) & ~across
    marks = [(area[i], top[i], bottom[i], left[i], right[i], [ids[i]]) for i in np.argsort(-area) if keep[i]]
    return marks, labels


def _join(marks: list) -> tuple:
    return (sum(m[0] for m in marks), min(m[1] for m in marks), max(m[2] for m in marks),
            min(m[3] for m in marks), max(m[4] for m in marks), [i for m in marks for i in m[5]])


def _size(m: tuple) -> int:
    return max(m[2] - m[1], m[4] - m[3]) + 1


def _gap(a: tuple, b: tuple) -> int:
    return max(b[1] - a[2], a[1] - b[2], b[3] - a[4], a[3] - b[4], 0)


def _label(mask: np.ndarray) -> np.ndarray:
    """8-connected components: each pixel of `mask` gets the smallest flat index in its part
    (min over neighbours, then pointer jumping); pixels outside get h*w."""
    h, w = mask.shape
    labels = np.where(mask, np.arange(h * w).reshape(h, w), h * w)
    while True:
        padded = np.pad(labels, 1, constant_values=h * w)
        new = np.where(mask, np.min([padded[y:y + h, x:x + w] for y in range(3) for x in range(3)], axis=0), h * w)
        flat = np.append(new.ravel(), h * w)
        new = np.minimum(new, flat[flat[new]])
        if np.array_equal(new, labels):
            return labels
        labels = new


def _centred(crop: np.ndarray) -> Image.Image:
    """The cropped digit scaled to fit BOX (aspect kept), its centre of mass at CENTRE in FIELD."""
    h, w = crop.shape
    scale = BOX / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    small = Image.fromarray(crop.astype(np.float32), mode="F").resize((new_w, new_h), Image.LANCZOS)
    digit = np.clip(np.asarray(small, dtype=np.float64), 0, 255)
    ys, xs = np.indices(digit.shape)
    cy, cx = (ys * digit).sum() / digit.sum(), (xs * digit).sum() / digit.sum()
    # MNIST's centre of mass sits at row 14, column 14 (pixel indices; on the test set
    # 13.99 +- 0.29 and 14.00 +- 0.29): put the digit's there.
    top = int(np.clip(round(CENTRE - cy), 0, FIELD - new_h))
    left = int(np.clip(round(CENTRE - cx), 0, FIELD - new_w))
    field = np.zeros((FIELD, FIELD), dtype=np.float64)
    field[top:top + new_h, left:left + new_w] = digit
    return Image.fromarray(np.round(field).astype(np.uint8), mode="L")
