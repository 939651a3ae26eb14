"""A zip of class folders uploaded from the Train tab, unpacked for `python -m training.train --task folder`.

Read as an image upload is (ui/common.open_upload). Checked from its directory before a byte is unpacked:
the unpacked size and each entry's ratio (a zip bomb), names (no absolute path, no `..`), no symbolic link,
stored or deflate entries only (zipfile bounds a deflate read and stops at the declared size). Files that
are not images (by their header) or not in a class folder are skipped and counted. Kept: `<uploads>/<digest
of the zip>/[train|val/]<class>/<n>.<format>`; only class folders keep the zip's names (NFC, one per casefold).
"""
from __future__ import annotations

import hashlib
import io
import re
import shutil
import stat
import tempfile
import unicodedata
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from PIL import Image

from models.predict import ALLOWED_FORMATS, FORMAT_ALIASES, ImageInputError
from ui.catalog import plain
from ui.common import MAX_IMAGE_BYTES, open_upload
from ui.inputs import shown

MAX_ZIP_BYTES = MAX_IMAGE_BYTES     # Gradio's upload limit (app.MAX_FILE_SIZE) is one number for every upload
MAX_UNPACKED_BYTES = 512 * 2**20
MAX_RATIO = 100                     # unpacked / packed size of one entry (images barely compress)
MAX_ENTRIES = 20_000
MIN_IMAGES = 5                      # per class
ID = re.compile(r"[0-9a-f]{16}")


class UploadError(ValueError):
    """A zip that cannot be used; the message is one line for the user."""


def read_zip(value) -> bytes:
    """The bytes of an uploaded file (a FileData payload or its path), at most MAX_ZIP_BYTES."""
    try:
        with open_upload(value.get("path") if isinstance(value, dict) else value) as f:
            data = f.read(MAX_ZIP_BYTES + 1)
    except ImageInputError:
        raise UploadError("not a file uploaded to this app: upload the zip first (POST /gradio_api/upload)") from None
    if len(data) > MAX_ZIP_BYTES:
        raise UploadError(f"the zip is larger than {MAX_ZIP_BYTES / 2**20:g} MiB, the upload limit")
    return data


def unpack(value, uploads: Path) -> tuple[str, str]:
    """Check and unpack an uploaded zip into `uploads`: (its id, what was found as Markdown)."""
    data = read_zip(value)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, EOFError):
        raise UploadError("not a zip file (expected a .zip of class folders)") from None
    files, skipped = _members(archive)
    uploads.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=".unpacking-", dir=uploads))
    try:
        counts, not_images = _extract(archive, files, partial)
        summary = _check(counts, skipped + not_images)
        upload_id = hashlib.sha256(data).hexdigest()[:16]
        if not (uploads / upload_id).is_dir():     # the same zip again: its folder is already there
            partial.rename(uploads / upload_id)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return upload_id, summary


def _members(archive: zipfile.ZipFile) -> tuple[list, int]:
    """([(class path, entry)], entries skipped), checked from the zip's directory alone."""
    infos = archive.infolist()
    if len(infos) > MAX_ENTRIES:
        raise UploadError(f"the zip has {len(infos):,} entries; at most {MAX_ENTRIES:,}")
    unpacked = sum(i.file_size for i in infos)
    if unpacked > MAX_UNPACKED_BYTES:
        raise UploadError(f"the zip unpacks to {unpacked / 2**20:,.1f} MiB; at most {MAX_UNPACKED_BYTES / 2**20:g} MiB")
    files = []
    for info in infos:
        name = info.filename.replace("\\", "/")
        parts = PurePosixPath(name).parts
        if name.startswith("/") or re.match(r"[A-Za-z]:", name) or ".." in parts:
            raise UploadError(f"entry {shown(name)} points outside the zip's folder (an absolute path or ..)")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise UploadError(f"entry {shown(name)} is a symbolic link; a zip of images holds none")
        if info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise UploadError(f"entry {shown(name)} unpacks to over {MAX_RATIO} times its packed size (a zip bomb?)")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise UploadError(f"entry {shown(name)} uses a compression other than deflate; zip it with the usual one")
        if not info.is_dir() and not any(p.startswith(".") or p == "__MACOSX" for p in parts):  # hidden, macOS
            files.append((parts, info))
    skipped = 0
    # One folder holding everything (how a zipped folder looks): its content is the data.
    while len({p[0] for p, _ in files if len(p) > 1}) == 1 and any(len(p) > 2 for p, _ in files):
        skipped += sum(len(p) == 1 for p, _ in files)
        files = [(p[1:], i) for p, i in files if len(p) > 1]
    split = {"train", "val"} <= {p[0] for p, _ in files if len(p) == 3}
    layout = (lambda p: len(p) == 3 and p[0] in ("train", "val")) if split else (lambda p: len(p) == 2)
    kept = [(p, i) for p, i in files if layout(p)]
    return kept, skipped + len(files) - len(kept)


def _extract(archive: zipfile.ZipFile, files: list, folder: Path) -> tuple[dict, int]:
    """Write the images among `files` into `folder`: ({(split, class): count}, files that are not images)."""
    counts, spellings, not_images = {}, {}, 0
    for parts, info in files:
        label = unicodedata.normalize("NFC", parts[-2])
        if not label.isprintable() or len(label.encode()) > 200:
            raise UploadError(f"class folder {shown(label)}: a name of at most 200 bytes, without control characters")
        label = spellings.setdefault(label.casefold(), label)
        try:
            with archive.open(info) as f:
                data = f.read()
        except (zipfile.BadZipFile, zlib.error, RuntimeError, EOFError, OSError, ValueError) as e:
            raise UploadError(f"entry {shown(info.filename)} cannot be read: {type(e).__name__} (damaged or encrypted)")
        suffix = _image_suffix(data)
        if suffix is None:
            not_images += 1
            continue
        key = (parts[0] if len(parts) == 3 else "", label)
        counts[key] = counts.get(key, 0) + 1
        (folder / key[0] / label).mkdir(parents=True, exist_ok=True)
        with open(folder / key[0] / label / f"{counts[key]:05d}{suffix}", "xb") as out:
            out.write(data)
    return counts, not_images


def _image_suffix(data: bytes) -> str | None:
    """The file suffix of an image in an allowed format, from its header (None: not one)."""
    try:
        with Image.open(io.BytesIO(data), formats=sorted(ALLOWED_FORMATS)) as img:
            return "." + FORMAT_ALIASES.get(img.format, img.format).lower()
    except Exception:  # noqa: BLE001 - whatever a decoder raises on a file that is not an image
        return None


def _check(counts: dict, skipped: int) -> str:
    """What was found, as Markdown; UploadError when it cannot train a classifier."""
    labels = sorted({label for _, label in counts})
    per_class = {label: sum(n for (_, c), n in counts.items() if c == label) for label in labels}
    if len(labels) < 2:
        raise UploadError(f"found {len(labels)} class folder(s) with images; a classifier needs at least two "
                          "(a folder per class: <class>/<images>)")
    few = next((label for label in labels if per_class[label] < MIN_IMAGES), None)
    if few is not None:
        raise UploadError(f"class {shown(few)} has {per_class[few]} image(s); each class needs at least {MIN_IMAGES}")
    split = any(where for where, _ in counts)
    if split and {c for w, c in counts if w == "train"} != {c for w, c in counts if w == "val"}:
        raise UploadError("train/ and val/ must hold the same class folders")
    classes = " · ".join(f"{plain(label)} {per_class[label]}" for label in labels)
    how = "validated on its val/ folder" if split else "a seeded part of each class validates"
    return (f"**{len(labels)} classes, {sum(per_class.values())} images** ({how}): {classes}"
            + (f"; {skipped} file(s) skipped (not an image, or not in a class folder)" if skipped else ""))
