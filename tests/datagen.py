"""Small datasets written in the real on-disk formats that torchvision reads."""
from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

CIFAR_FOLDER = "cifar-10-batches-py"
MNIST_FILES = {True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def write_mnist(root: Path, *, train_images: int = 200, test_images: int = 100, seed: int = 0) -> Path:
    """MNIST in its real on-disk idx format, where torchvision reads it: root/MNIST/raw/*-ubyte.

    idx files are big-endian: a magic number (0x0803 for 3-d ubyte images, 0x0801 for 1-d ubyte
    labels), one uint32 per dimension, then the raw bytes. The digits are rendered with a font,
    white on black, at varied sizes, positions, slants and stroke widths: they look like digits
    to a person and are learnable, but they are not MNIST (tests on real accuracy use the real files).
    `torchvision.datasets.MNIST(root)` reads these files directly and downloads nothing.
    """
    rng = np.random.default_rng(seed)
    raw = Path(root) / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for train, n in ((True, train_images), (False, test_images)):
        labels = np.array([i % 10 for i in range(n)], dtype=np.uint8)
        rng.shuffle(labels)
        images = np.stack([_digit_image(rng, int(label)) for label in labels])
        image_file, label_file = MNIST_FILES[train]
        (raw / image_file).write_bytes(struct.pack(">IIII", 0x0803, n, 28, 28) + images.tobytes())
        (raw / label_file).write_bytes(struct.pack(">II", 0x0801, n) + labels.tobytes())
    return Path(root)


def _digit_image(rng, digit: int) -> np.ndarray:
    font = ImageFont.load_default(size=int(rng.integers(17, 24)))
    img = Image.new("L", (28, 28))
    centre = (14 + int(rng.integers(-2, 3)), 14 + int(rng.integers(-2, 3)))
    ImageDraw.Draw(img).text(centre, str(digit), fill=int(rng.integers(200, 256)), font=font, anchor="mm",
                             stroke_width=int(rng.integers(0, 2)), stroke_fill=255)
    img = img.rotate(float(rng.uniform(-12, 12)), resample=Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def write_cifar10(root: Path, *, per_batch: int = 20, test_images: int = 40, seed: int = 0) -> Path:
    """CIFAR-10 in torchvision's pickle layout: five data batches, a test batch, batches.meta.

    Images are coloured blobs whose hue depends on the class, so a model can learn something.
    torchvision verifies the md5 of each real batch file; tests that read these files patch
    `CIFAR10._check_integrity` (see conftest.py), the product never skips the check.
    """
    rng = np.random.default_rng(seed)
    folder = Path(root) / CIFAR_FOLDER
    folder.mkdir(parents=True, exist_ok=True)

    def batch(n, name):
        labels = [int(i % 10) for i in range(n)]
        rng.shuffle(labels)
        data = np.stack([_cifar_image(rng, label) for label in labels]).reshape(n, -1)  # (N, 3072) CHW
        with open(folder / name, "wb") as f:
            # The real files are Python 2 pickles with str keys, read by torchvision with
            # encoding="latin1"; protocol 2 with str keys reads back the same way.
            pickle.dump({"batch_label": name, "labels": labels, "data": data,
                         "filenames": [f"{name}_{i}.png" for i in range(n)]}, f, protocol=2)

    for i in range(1, 6):
        batch(per_batch, f"data_batch_{i}")
    batch(test_images, "test_batch")
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": ["airplane", "automobile", "bird", "cat", "deer",
                                     "dog", "frog", "horse", "ship", "truck"],
                     "num_cases_per_batch": per_batch, "num_vis": 3072}, f, protocol=2)
    return Path(root)


def _cifar_image(rng, label: int) -> np.ndarray:
    img = rng.integers(0, 60, size=(3, 32, 32), dtype=np.uint8)
    colour = np.array([(label * 25) % 256, (label * 70) % 256, 255 - label * 20], dtype=np.uint8)
    y, x = rng.integers(4, 20, size=2)
    img[:, y:y + 12, x:x + 12] = colour[:, None, None]
    return img


def write_catsdogs(root: Path, *, train_per_class: int = 8, val_per_class: int = 4, seed: int = 0,
                   corrupt: bool = True) -> Path:
    """An image folder: train/{cat,dog}/*.jpg and val/{Cat,Dog}/*.jpg (capitalised, as in Kaggle's set).

    Varied sizes and modes; with `corrupt`, one truncated JPEG per split to be skipped.
    """
    rng = np.random.default_rng(seed)
    root = Path(root)
    for split, n, names in (("train", train_per_class, ("cat", "dog")), ("val", val_per_class, ("Cat", "Dog"))):
        for label_id, name in enumerate(names):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                w, h = int(rng.integers(180, 320)), int(rng.integers(180, 320))
                arr = rng.integers(0, 80, size=(h, w, 3), dtype=np.uint8)
                arr[h // 4: 3 * h // 4, w // 4: 3 * w // 4, label_id * 2] = 230  # red cats, blue dogs
                Image.fromarray(arr).save(folder / f"{name.lower()}.{i}.jpg", quality=90)
            if corrupt:
                good = (folder / f"{name.lower()}.0.jpg").read_bytes()
                (folder / f"{name.lower()}.broken.jpg").write_bytes(good[: len(good) // 3])
        if corrupt:
            (root / split / names[0] / "notes.txt").write_text("not an image, ignored by suffix")
    return root


# --- photographed digits (issue 24.1) -----------------------------------------------------------

def digit_ink(digit: int, size: int | tuple[int, int], *, angle: float = 0.0, offset=(0.0, 0.0),
              height: float = 0.3) -> np.ndarray:
    """Where the ink is (0-1, rows x columns) on a page of `size` (side, or (width, height)) when
    `digit` is written `height` of the page tall with a thick pen (the font's strokes widened,
    as MNIST's are), rotated by `angle` degrees and moved by `offset` (fractions of the page)."""
    width, tall = (size, size) if isinstance(size, int) else size
    scale = min(width, tall) * height
    font = ImageFont.load_default(size=max(8, round(scale * 1.35)))
    page = Image.new("L", (width, tall), 0)
    centre = (width * (0.5 + offset[0]), tall * (0.5 + offset[1]))
    ImageDraw.Draw(page).text(centre, str(digit), fill=255, font=font, anchor="mm",
                              stroke_width=round(0.06 * scale), stroke_fill=255)
    page = page.rotate(angle, resample=Image.Resampling.BILINEAR, center=centre)
    return np.asarray(page, dtype=np.float64) / 255


def photographed(ink: np.ndarray, seed: int, *, light=(0.3, 1.0), paper: float = 0.78, pen: float = 0.12,
                 noise: float = 4.0) -> Image.Image:
    """`ink` (digit_ink) on grey paper as a phone photographs it, RGB: the paper's blotchy texture
    (+-4%), the light falling from `light[1]` to `light[0]` across the page in a random direction,
    sensor noise (`noise`, 0-255) and a slight blur. `paper` and `pen` are reflectances (0-1)."""
    rng = np.random.default_rng(seed)
    tall, width = ink.shape
    texture = Image.fromarray(rng.normal(0, 1, (12, 12)).astype(np.float32), "F")
    texture = np.asarray(texture.resize((width, tall), Image.Resampling.BICUBIC), dtype=np.float64)
    reflect = paper * (1 + 0.04 * texture) * (1 - ink) + pen * ink
    theta = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:tall, 0:width]
    ramp = (np.cos(theta) * (xs / width - 0.5) + np.sin(theta) * (ys / tall - 0.5)) / 1.42 + 0.5  # 0-1 corner to corner
    pixels = 255 * reflect * (light[0] + (light[1] - light[0]) * ramp) + rng.normal(0, noise, ink.shape)
    img = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "L")
    return img.filter(ImageFilter.GaussianBlur(max(width, tall) / 400)).convert("RGB")
