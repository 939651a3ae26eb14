"""Uploaded images go through models.predict.decode_image, the one decode path.

A corpus generated here (empty, garbage, truncated, bombs, disallowed formats renamed .png,
every mode, EXIF rotation, animation, degenerate sizes): each input gives ImageInputError
with a one-line message, or a correctly decoded image that the models then accept.
"""
from __future__ import annotations

import io
import random
import re
import struct
import zlib

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

from models.predict import (MAX_PIXELS, ImageInputError, decode_image, predict_probs)
from models.registry import create_model
from models.tasks import get_task

ALLOWED_MSG = "use BMP, GIF, JPEG, PNG, WEBP"


# --- generators -----------------------------------------------------------------------------

def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def photo(w: int = 48, h: int = 40, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def blank_bilevel_png(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of any size, all black: a few KB on disk for 400M pixels."""
    row = b"\x00" * (1 + (width + 7) // 8)
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def png_header_only(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b""))
            + _chunk(b"IEND", b""))


def exif_rotated_jpeg(orientation: int = 6) -> bytes:
    """40 wide x 20 high, left half red, right half blue, with an EXIF orientation tag."""
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)
    arr[:, 20:] = (0, 0, 255)
    img = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(img, "JPEG", exif=exif.tobytes(), quality=95)


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (16, 16), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def transparent(mode: str) -> Image.Image:
    """A 4x4 image whose left half is fully transparent and right half opaque black."""
    rgba = Image.new("RGBA", (4, 4), (0, 0, 0, 255))
    for y in range(4):
        for x in range(2):
            rgba.putpixel((x, y), (0, 0, 0, 0))
    if mode == "RGBA":
        return rgba
    if mode == "LA":
        return rgba.convert("LA")
    p = Image.new("P", (4, 4), 1)
    p.putpalette([0, 0, 0] * 2 + [0] * 762)
    for y in range(4):
        for x in range(2):
            p.putpixel((x, y), 0)
    p.info["transparency"] = 0
    return p


PNG = encode(photo(), "PNG")
JPEG = encode(photo(), "JPEG", quality=90)

BAD = {
    "empty": (b"", "the file is empty"),
    "random bytes": (random.Random(0).randbytes(5000), "not a readable image"),
    "truncated PNG": (PNG[: len(PNG) // 2], "damaged or truncated"),
    "truncated JPEG": (JPEG[: len(JPEG) // 2], "damaged or truncated"),
    "PNG signature only": (PNG[:8], "not a readable image"),
    "JPEG header only": (JPEG[:20], "not a readable image"),
    "zero-size PNG": (png_header_only(0, 0), "not a readable image"),
    "20000x20000 PNG": (blank_bilevel_png(20000, 20000), "too large"),
    "10000x10000 PNG (Pillow's warning range)": (blank_bilevel_png(10000, 10000), "too large"),
    "7000x7000 PNG (our cap only)": (blank_bilevel_png(7000, 7000), "too large (7000x7000 pixels"),
    "TIFF": (encode(photo(), "TIFF"), f"unsupported image format TIFF; {ALLOWED_MSG}"),
    "EPS": (encode(photo(), "EPS"), f"unsupported image format EPS; {ALLOWED_MSG}"),
    "PDF": (encode(photo(), "PDF"), "unsupported image format PDF"),
    "ICO": (encode(photo(32, 32), "ICO"), "unsupported image format ICO"),
    "PPM": (encode(photo(), "PPM"), "unsupported image format PNM"),
    "TGA": (encode(photo(), "TGA"), "not a readable image"),
    "text": (b"hello, I am not an image\n" * 10, "not a readable image"),
}


def assert_one_line(message: str) -> None:
    assert message and "\n" not in message and len(message) < 250, message


@pytest.fixture(scope="module")
def models_for_prediction():
    """Untrained real models, one RGB and one grayscale: enough to run the full prediction path."""
    torch.manual_seed(0)
    out = []
    for task in ("cifar10", "mnist"):
        cfg = get_task(task).model_config()
        out.append((create_model(cfg).eval(), cfg))
    return out


def assert_predicts(img: Image.Image, models_for_prediction) -> None:
    for model, cfg in models_for_prediction:
        probs = predict_probs(model, cfg, img, task_step=False)   # decoding, not the digit step, is tested here
        assert list(probs) == list(cfg.labels)
        assert all(np.isfinite(p) and 0 <= p <= 1 for p in probs.values())
        assert abs(sum(probs.values()) - 1) < 1e-5


# --- refusals ---------------------------------------------------------------------------------

@pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_gives_a_one_line_image_input_error(name, tmp_path, monkeypatch, models_for_prediction):
    data, expected = BAD[name]
    pattern = re.escape(expected)
    decoded = []
    monkeypatch.setattr(ImageFile.ImageFile, "load",
                        lambda self, _load=ImageFile.ImageFile.load: decoded.append(self) or _load(self))
    with pytest.raises(ImageInputError, match=pattern) as bytes_err:
        decode_image(data)
    assert_one_line(str(bytes_err.value))
    # The same file under a .png name, as an upload would arrive: same refusal.
    path = tmp_path / "upload.png"
    path.write_bytes(data)
    with pytest.raises(ImageInputError, match=pattern):
        decode_image(path)
    with pytest.raises(ImageInputError, match=pattern):
        predict_probs(*models_for_prediction[0], data)
    if "too large" in expected or "unsupported" in expected:
        assert not decoded, "pixels were decoded before the refusal"


def test_disallowed_decoders_never_run(monkeypatch):
    """An EPS or TIFF renamed .png is refused by the allowlist, not by its own parser."""
    from PIL import EpsImagePlugin, TiffImagePlugin
    ran = []
    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", lambda self: ran.append("EPS"))
    monkeypatch.setattr(TiffImagePlugin.TiffImageFile, "_open", lambda self: ran.append("TIFF"))
    for name in ("EPS", "TIFF"):
        with pytest.raises(ImageInputError, match=f"unsupported image format {name}"):
            decode_image(BAD[name][0])
    assert ran == []


def test_a_pil_image_of_a_disallowed_format_or_size_is_refused_too():
    tiff = Image.open(io.BytesIO(BAD["TIFF"][0]))
    with pytest.raises(ImageInputError, match="unsupported image format TIFF"):
        decode_image(tiff)
    with pytest.raises(ImageInputError, match="no pixels"):
        decode_image(Image.new("RGB", (0, 0)))


def test_file_errors_and_wrong_types(tmp_path, monkeypatch):
    with pytest.raises(ImageInputError, match="cannot read the image file"):
        decode_image(tmp_path / "missing.png")
    with pytest.raises(ImageInputError, match="cannot read the image file"):
        decode_image(tmp_path)                          # a folder
    import models.predict as predict
    monkeypatch.setattr(predict, "MAX_BYTES", 1000)
    big = tmp_path / "big.png"
    big.write_bytes(PNG + b"\0" * 2000)
    with pytest.raises(ImageInputError, match="the file is too large"):
        decode_image(big)
    with pytest.raises(ImageInputError, match="the file is too large"):
        decode_image(big.read_bytes())
    for value in (12, None, ["a"], {"path": "x"}):
        with pytest.raises(ImageInputError):
            decode_image(value)


@pytest.mark.parametrize("arr, message", [
    (np.zeros((0, 5), np.uint8), "expected an image array"),
    (np.zeros((4, 4, 5), np.uint8), "expected an image array"),
    (np.zeros((2, 2, 2, 2), np.uint8), "expected an image array"),
    (np.array([["a", "b"]]), "expected an array of numbers"),
])
def test_bad_arrays(arr, message):
    with pytest.raises(ImageInputError, match=message):
        decode_image(arr)


# --- what decodes, decodes correctly ------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF", "BMP"])
def test_allowed_formats_decode(fmt, models_for_prediction):
    img = decode_image(encode(photo(), fmt))
    assert img.mode == "RGB" and img.size == (48, 40)
    assert_predicts(img, models_for_prediction)


def test_camera_jpeg_with_extra_frames_is_a_jpeg():
    """Pillow calls multi-picture JPEGs (phones, stereo cameras) MPO; they are JPEGs."""
    data = encode(photo(seed=1), "MPO", save_all=True, append_images=[photo(seed=2)])
    assert Image.open(io.BytesIO(data)).format == "MPO"
    img = decode_image(data)
    assert img.size == (48, 40) and img.mode == "RGB"


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparency_is_composited_onto_white(mode, models_for_prediction):
    img = decode_image(encode(transparent(mode), "PNG"))
    assert img.mode == "RGB"
    arr = np.asarray(img)
    assert (arr[:, :2] == 255).all(), "transparent pixels must become white"
    assert (arr[:, 2:] == 0).all(), "opaque black stays black"
    assert_predicts(img, models_for_prediction)


def test_transparent_gif_is_composited_onto_white():
    img = decode_image(encode(transparent("P"), "GIF", transparency=0))
    assert (np.asarray(img)[:, :2] == 255).all()


def test_cmyk_jpeg_becomes_rgb():
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))        # pure red in CMYK
    img = decode_image(encode(cmyk, "JPEG", quality=95))
    assert img.mode == "RGB"
    r, g, b = np.asarray(img).reshape(-1, 3).mean(0)
    assert r > 200 and g < 60 and b < 60


def test_16_bit_grayscale_is_scaled_not_clipped(models_for_prediction):
    arr = np.array([[0, 257, 32896, 65535]], dtype=np.uint16).repeat(4, axis=0)
    data = encode(Image.fromarray(arr), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    img = decode_image(data)
    assert img.mode == "L"
    assert np.asarray(img)[0].tolist() == [0, 1, 128, 255]       # clipping would give [0, 255, 255, 255]
    assert_predicts(img, models_for_prediction)
    # The same 16-bit data as an array.
    assert np.asarray(decode_image(arr))[0].tolist() == [0, 1, 128, 255]


def test_bilevel_and_float_and_int32_images():
    one = decode_image(encode(Image.fromarray(np.array([[0, 255]] * 2, np.uint8)).convert("1"), "PNG"))
    assert one.mode == "L" and np.asarray(one)[0].tolist() == [0, 255]
    f = decode_image(Image.fromarray(np.array([[0.0, 0.5, 1.0]] * 3, np.float32), mode="F"))
    assert f.mode == "L" and np.asarray(f)[0].tolist() == [0, 128, 255]
    wide = decode_image(Image.fromarray(np.array([[-10.0, 0.0, 10.0]] * 3, np.float32), mode="F"))
    assert np.asarray(wide)[0].tolist() == [0, 128, 255]
    i32 = decode_image(Image.fromarray(np.array([[0, 100, 255]] * 3, np.int32), mode="I"))
    assert np.asarray(i32)[0].tolist() == [0, 100, 255]
    nan = decode_image(np.array([[np.nan, 0.0, 1.0]] * 3))
    assert np.asarray(nan)[0].tolist() == [0, 0, 255]
    assert np.asarray(decode_image(np.array([[True, False]] * 2)))[0].tolist() == [255, 0]


def test_exif_orientation_is_applied():
    img = decode_image(exif_rotated_jpeg(6))             # 6: rotate 90 degrees clockwise to view
    assert img.size == (20, 40)
    arr = np.asarray(img).astype(int)
    top, bottom = arr[:18].reshape(-1, 3).mean(0), arr[22:].reshape(-1, 3).mean(0)
    assert top[0] > 200 and top[2] < 60, "the left (red) half is on top after rotating clockwise"
    assert bottom[2] > 200 and bottom[0] < 60
    # A PIL image that still carries the tag is rotated the same way.
    assert decode_image(Image.open(io.BytesIO(exif_rotated_jpeg(6)))).size == (20, 40)


def test_animated_gif_gives_its_first_frame():
    img = decode_image(animated_gif())
    assert img.mode == "RGB" and img.size == (16, 16)
    assert np.asarray(img).reshape(-1, 3).mean(0).round().tolist() == [255, 0, 0]


def test_one_pixel_image_predicts(models_for_prediction):
    img = decode_image(encode(Image.new("RGB", (1, 1), (200, 10, 10)), "PNG"))
    assert img.size == (1, 1)
    assert_predicts(img, models_for_prediction)
    assert_predicts(decode_image(np.full((1, 1, 4), 128, np.uint8)), models_for_prediction)


@pytest.mark.parametrize("width, height", [(4000, 8), (8, 4000), (1, 500), (20000, 1)])
def test_long_thin_images_are_classified(width, height, models_for_prediction):
    """Strips and banners are images: no aspect limit (issue 14 §5). The preprocessing keeps
    the resize small: the longer side is first centre-cropped to 16 times the shorter."""
    import models.predict as predict
    rng = np.random.default_rng(width + height)
    arr = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    img = decode_image(encode(Image.fromarray(arr), "PNG"))
    assert img.size == (width, height)
    assert_predicts(img, models_for_prediction)
    for model, cfg in models_for_prediction:
        x = predict.prepare(img, cfg, task_step=False)[0]
        assert x.shape == (1, cfg.in_channels, cfg.input_size, cfg.input_size) and torch.isfinite(x).all()
    # The crop before the resize: 16 times the shorter side, centred.
    batch = torch.zeros(1, 3, height, width, dtype=torch.uint8)
    short = min(width, height)
    expect = (height, width) if max(width, height) <= 16 * short else \
        ((min(height, 16 * short)), min(width, 16 * short))
    assert tuple(predict._crop_long_side(batch).shape[-2:]) == expect


def test_just_under_the_pixel_cap_is_accepted_without_decoding_first(monkeypatch):
    # MAX_PIXELS itself is checked from the header; this only checks the boundary arithmetic.
    side = int(MAX_PIXELS ** 0.5)
    import models.predict as predict
    predict._check_size((side, side))
    with pytest.raises(ImageInputError):
        predict._check_size((side + 1, side + 1))


# --- property tests -----------------------------------------------------------------------------

SEEDS = [encode(photo(12, 10), fmt) for fmt in ("PNG", "JPEG", "WEBP", "GIF", "BMP")] + [
    exif_rotated_jpeg(3), animated_gif(), encode(transparent("P"), "PNG")]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_raise_only_image_input_error(data):
    try:
        img = decode_image(data)
    except ImageInputError as e:
        assert_one_line(str(e))
    else:
        assert img.mode in ("RGB", "L") and img.width >= 1 and img.height >= 1


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from(SEEDS), cut=st.integers(0, 10_000),
       flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8))
def test_damaged_real_images_raise_only_image_input_error(seed, cut, flips):
    """Valid files with bytes overwritten and the tail cut: reaches deep into the decoders."""
    data = bytearray(seed)
    for pos, value in flips:
        data[pos % len(data)] = value
    data = bytes(data[: max(1, len(data) - cut % len(data))])
    try:
        img = decode_image(data)
    except ImageInputError as e:
        assert_one_line(str(e))
    else:
        assert img.mode in ("RGB", "L") and img.width >= 1 and img.height >= 1
