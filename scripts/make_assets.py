"""Write the app's sample images into assets/ (committed; rerun to regenerate them).

    python scripts/make_assets.py [--mnist ../shared/data]

- mnist_<d>.png: the first test image of each digit 0-9 from the real MNIST files
  (`<root>/MNIST/raw/t10k-*-ubyte`), 28x28 white on black, exactly as stored.
- sample_boat.png, cat_drawing.png: simple drawings made here, so the CIFAR-10, Cats vs Dogs
  and Augmentation tabs have something to show with no dataset downloaded.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

ASSETS = Path(__file__).resolve().parents[1] / "assets"
DEFAULT_DATA = ASSETS.parent.parent / "shared" / "data"


def write_mnist_digits(root: Path, out: Path = ASSETS) -> list[Path]:
    from torchvision.datasets.mnist import read_image_file, read_label_file   # the IDX reader torchvision's MNIST uses
    raw = root / "MNIST" / "raw"
    images = read_image_file(str(raw / "t10k-images-idx3-ubyte")).numpy()
    labels = read_label_file(str(raw / "t10k-labels-idx1-ubyte")).numpy()
    written = []
    for digit in range(10):
        index = int(np.flatnonzero(labels == digit)[0])
        path = out / f"mnist_{digit}.png"
        Image.fromarray(images[index], mode="L").save(path, optimize=True)
        written.append(path)
    return written


def draw_boat(size: int = 256) -> Image.Image:
    img = Image.new("RGB", (size, size))
    d = ImageDraw.Draw(img)
    horizon = int(size * 0.6)
    for y in range(horizon):  # sky gradient
        t = y / horizon
        d.line([(0, y), (size, y)], fill=(int(90 + 100 * t), int(150 + 70 * t), int(230 + 20 * t)))
    for y in range(horizon, size):  # sea
        t = (y - horizon) / (size - horizon)
        d.line([(0, y), (size, y)], fill=(int(20 + 20 * t), int(70 + 30 * t), int(140 - 30 * t)))
    d.ellipse([size * 0.72, size * 0.08, size * 0.9, size * 0.26], fill=(255, 226, 120))
    s = size / 256
    d.polygon([(60 * s, 150 * s), (200 * s, 150 * s), (180 * s, 175 * s), (78 * s, 175 * s)], fill=(150, 60, 40))
    d.line([(128 * s, 60 * s), (128 * s, 150 * s)], fill=(70, 50, 40), width=max(1, int(4 * s)))
    d.polygon([(132 * s, 62 * s), (132 * s, 145 * s), (190 * s, 145 * s)], fill=(245, 245, 240))
    d.polygon([(124 * s, 75 * s), (124 * s, 145 * s), (80 * s, 145 * s)], fill=(230, 230, 225))
    for k in range(6):  # a few waves
        y = horizon + 12 * s + k * 14 * s
        d.arc([(20 + 37 * k) * s, y, (60 + 37 * k) * s, y + 10 * s], 200, 340, fill=(200, 220, 240), width=2)
    return img.filter(ImageFilter.SMOOTH)


def draw_cat(size: int = 256) -> Image.Image:
    s = size / 256
    img = Image.new("RGB", (size, size), (236, 228, 214))
    d = ImageDraw.Draw(img)
    fur, dark, pink = (226, 140, 60), (120, 70, 30), (240, 160, 170)
    d.polygon([(52 * s, 40 * s), (70 * s, 120 * s), (115 * s, 80 * s)], fill=fur)           # ears
    d.polygon([(204 * s, 40 * s), (186 * s, 120 * s), (141 * s, 80 * s)], fill=fur)
    d.polygon([(62 * s, 62 * s), (76 * s, 108 * s), (102 * s, 86 * s)], fill=pink)
    d.polygon([(194 * s, 62 * s), (180 * s, 108 * s), (154 * s, 86 * s)], fill=pink)
    d.ellipse([48 * s, 70 * s, 208 * s, 220 * s], fill=fur)                                    # head
    for k in range(3):                                                                          # stripes
        x = (112 + 16 * k) * s
        d.line([(x, 76 * s), (x, 104 * s)], fill=dark, width=max(1, int(5 * s)))
    for cx in (100, 156):                                                                       # eyes
        d.ellipse([(cx - 15) * s, 118 * s, (cx + 15) * s, 148 * s], fill=(120, 190, 80))
        d.ellipse([(cx - 4) * s, 120 * s, (cx + 4) * s, 146 * s], fill=(20, 20, 20))
    d.polygon([(120 * s, 162 * s), (136 * s, 162 * s), (128 * s, 172 * s)], fill=pink)       # nose
    d.arc([108 * s, 160 * s, 128 * s, 186 * s], 20, 160, fill=dark, width=max(1, int(2 * s)))
    d.arc([128 * s, 160 * s, 148 * s, 186 * s], 20, 160, fill=dark, width=max(1, int(2 * s)))
    for side in (-1, 1):                                                                        # whiskers
        for k in range(3):
            a = math.radians(-12 + 12 * k)
            x0, y0 = 128 + side * 22, 172
            d.line([(x0 * s, y0 * s), ((x0 + side * 70 * math.cos(a)) * s, (y0 + 70 * math.sin(a)) * s)],
                   fill=(60, 40, 30), width=max(1, int(2 * s)))
    return img.filter(ImageFilter.SMOOTH)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mnist", type=Path, default=DEFAULT_DATA, help="folder holding MNIST/raw (default ../shared/data)")
    args = p.parse_args(argv)
    if (args.mnist / "MNIST" / "raw" / "t10k-images-idx3-ubyte").is_file():
        for path in write_mnist_digits(args.mnist):
            print("wrote", path.relative_to(ASSETS.parent))
    else:
        print(f"no MNIST files under {args.mnist}/MNIST/raw: digits not written")
    for name, img in (("sample_boat.png", draw_boat()), ("cat_drawing.png", draw_cat())):
        img.save(ASSETS / name, optimize=True)
        print("wrote", (ASSETS / name).relative_to(ASSETS.parent))


if __name__ == "__main__":
    main()
