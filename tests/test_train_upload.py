"""Training on your own images from the browser (issue 21 §2): a zip of class folders is uploaded to a real
server (raw HTTP, then /train_upload, as gradio_client and the page send it), checked and unpacked into a fresh
folder under the app's data folder; what was found is shown, and /train_start trains `--task folder` on it.

Every hostile zip gets one line naming `zip_file`, and the disk is checked afterwards: nothing was written
outside the app's data and runs folders, nothing (not even a half-unpacked folder) inside them either.
"""
from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.conftest import launch_app
from tests.test_hostile import META, _call, _refused, _upload


def image(kind: str = "PNG", color=(200, 30, 30), size: int = 16) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), color).save(out, kind)
    return out.getvalue()


def make_zip(entries, compression=zipfile.ZIP_DEFLATED) -> bytes:
    """A zip of (name or ZipInfo, bytes) entries."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as z:
        for name, data in entries:
            z.writestr(name, data)
    return out.getvalue()


def class_folders(classes=("cat", "dog"), per_class: int = 6, top: str = "") -> list:
    return [(f"{top}{label}/{i}.png", image(color=(40 * k, 200 - 40 * k, 90))) for k, label in enumerate(classes)
            for i in range(per_class)]


def symlink(name: str, target: str) -> tuple:
    info = zipfile.ZipInfo(name)
    info.external_attr = 0o120777 << 16          # S_IFLNK: how zip -y stores a link
    return info, target.encode()


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    """The app with training on (as `python app.py` on 127.0.0.1): (demo, url, data folder, runs folder)."""
    from ui.catalog import Catalog
    root = tmp_path_factory.mktemp("upload-app")
    data, runs = root / "data", root / "runs"
    demo, url = launch_app(Catalog.from_sources(runs), data_dir=data, training_off=None, train_device="cpu")
    yield demo, url, data, runs
    demo.trainer.jobs.close()
    demo.close()


def send(url: str, data: bytes, name: str = "images.zip") -> tuple[str, str]:
    return _call(url, "train_upload", [{"path": _upload(url, data, name), "meta": META}])


def disk(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")} if root.exists() else set()


def test_a_zip_of_class_folders_is_unpacked_shown_and_trained_on(studio):
    import json
    from gradio_client import Client, handle_file
    demo, url, data, runs = studio
    entries = class_folders(("cat", "dog", "Kätzchen"), top="my pets/") + [
        ("my pets/notes.txt", b"not an image"), ("my pets/dog/list.csv", b"1,2"),
        ("my pets/cat/fake.png", b"not a png either"), ("__MACOSX/my pets/._cat", b"\0\5\26\7")]
    client = Client(url, verbose=False, download_files=False)
    path = data.parent / "pets.zip"
    path.write_bytes(make_zip(entries))
    found, dataset = client.predict(handle_file(str(path)), api_name="/train_upload")
    assert found == ("**3 classes, 18 images** (a seeded part of each class validates): Kätzchen 6 · cat 6 · dog 6; "
                     "3 file(s) skipped (not an image, or not in a class folder)")
    folder = data / "uploads" / dataset
    assert sorted(p.name for p in folder.iterdir()) == ["Kätzchen", "cat", "dog"]
    assert sorted(p.name for p in (folder / "cat").iterdir()) == [f"{i:05d}.png" for i in range(1, 7)]
    assert disk(data) == {"uploads", f"uploads/{dataset}", *(str(p.relative_to(data)) for p in folder.rglob("*"))}
    # The same zip again: the same folder, nothing added.
    assert client.predict(handle_file(str(path)), api_name="/train_upload")[1] == dataset
    assert len(os.listdir(data / "uploads")) == 1
    # Start trains `--task folder` on that folder; the command shown is the job's.
    form = dict(task="folder", variant="baseline", preset="quick", architecture="vgg19_bn_32", dataset=dataset)
    command = client.predict(**form, api_name="/train_command")
    assert f"--task folder --arch vgg19_bn_32 --preset quick --data-dir {folder} --device cpu" in command
    with pytest.raises(Exception, match="dataset is missing: upload a zip of class folders first"):
        client.predict(**{**form, "dataset": ""}, api_name="/train_start")
    with pytest.raises(Exception, match="dataset '0123456789abcdef' is no zip uploaded to this app"):
        client.predict(**{**form, "dataset": "0123456789abcdef"}, api_name="/train_start")
    with pytest.raises(Exception, match="dataset '../../etc' is no zip uploaded"):
        client.predict(**{**form, "dataset": "../../etc"}, api_name="/train_start")
    assert "job 1:" in client.predict(**form, epochs=1, batch_size=4, api_name="/train_start")
    job = demo.trainer.jobs.jobs[0]
    assert demo.trainer.jobs.wait(job, ("finished", "failed"), 600), list(job.log)
    assert job.status == "finished", list(job.log)
    config = json.loads((job.run_dir / "config.json").read_text())
    assert config["labels"] == ["Kätzchen", "cat", "dog"] and config["task"] == "folder"
    assert job.run_dir.parent == runs / "folder"


@pytest.mark.parametrize("case, entries, message", [
    ("one class only", class_folders(("cat",)), "found 1 class folder(s) with images; a classifier needs at least two"),
    ("a class under 5 images", class_folders(("cat",)) + class_folders(("dog",), 4),
     "class 'dog' has 4 image(s); each class needs at least 5"),
    ("no images at all", [(f"cat/{i}.txt", b"text") for i in range(6)] + [(f"dog/{i}.txt", b"x") for i in range(6)],
     "found 0 class folder(s) with images"),
    ("../ in a name", class_folders() + [("cat/../../../escaped.png", image())],
     "entry 'cat/../../../escaped.png' points outside the zip's folder (an absolute path or ..)"),
    ("an absolute path", class_folders() + [("/tmp/escaped.png", image())],
     "entry '/tmp/escaped.png' points outside the zip's folder"),
    ("a Windows path", class_folders() + [("C:\\escaped.png", image())], "entry 'C:/escaped.png' points outside"),
    ("a symbolic link", class_folders() + [symlink("cat/link.png", "/etc/passwd")],
     "entry 'cat/link.png' is a symbolic link; a zip of images holds none"),
    ("a zip bomb", class_folders() + [("cat/bomb.png", b"\0" * 64 * 2**20)],
     "entry 'cat/bomb.png' unpacks to over 100 times its packed size (a zip bomb?)"),
    ("train/ without val/", class_folders(top="train/") + class_folders(("bird",), top="val/"),
     "train/ and val/ must hold the same class folders"),
])
def test_a_zip_that_cannot_train_gets_one_line_and_leaves_nothing(studio, case, entries, message):
    _, url, data, runs = studio
    before, trained = disk(data) | {"uploads"}, disk(runs)        # the uploads folder itself may be made
    got = _refused(url, "train_upload", [{"path": _upload(url, make_zip(entries), "x.zip"), "meta": META}])
    assert got.startswith(f"zip_file: {message}"), (case, got)
    assert disk(data) | {"uploads"} == before and disk(runs) == trained, case
    # Where the names point: nothing there (the zip's data lands only under uploads/, named by number).
    for folder in (data, data.parent, data.parent.parent, Path("/tmp")):
        assert not (folder / "escaped.png").exists(), case


def test_not_a_zip_an_oversized_zip_and_a_bomb_by_total_size(studio, monkeypatch):
    from ui import upload
    _, url, data, _ = studio
    before = disk(data) | {"uploads"}
    assert _message_of(send(url, image(), "photo.zip")) == "zip_file: not a zip file (expected a .zip of class folders)"
    assert _message_of(send(url, b"PK\3\4" + b"\0" * 100)) == "zip_file: not a zip file (expected a .zip of class folders)"
    # Entries that each compress modestly, but add up: refused from the zip's directory, before unpacking.
    monkeypatch.setattr(upload, "MAX_UNPACKED_BYTES", 2**20)
    bitmaps = make_zip(class_folders() + [(f"cat/big{i}.bmp", image("BMP", size=300)) for i in range(4)],
                       zipfile.ZIP_STORED)
    assert _message_of(send(url, bitmaps)) == "zip_file: the zip unpacks to 1.0 MiB; at most 1 MiB"
    monkeypatch.setattr(upload, "MAX_ZIP_BYTES", 2**20 // 4)
    assert _message_of(send(url, bitmaps)) == "zip_file: the zip is larger than 0.25 MiB, the upload limit"
    assert disk(data) | {"uploads"} == before


def test_an_upload_over_the_apps_limit_is_refused_by_gradio(studio):
    import app
    _, url, data, _ = studio
    before = disk(data)
    response = httpx.post(f"{url.rstrip('/')}/gradio_api/upload", timeout=120,
                          files={"files": ("big.zip", b"\0" * (app.MAX_FILE_SIZE + 1), "application/zip")})
    assert response.status_code == 413 and "maximum allowed size of 10485760 bytes" in response.text, response.text
    assert disk(data) == before


def test_the_upload_is_refused_without_a_zip_or_with_a_server_path(studio, tmp_path):
    _, url, data, _ = studio
    secret = tmp_path / "secret.zip"
    secret.write_bytes(make_zip(class_folders()))
    assert _refused(url, "train_upload", [None]).startswith("zip_file is missing: upload a .zip of class folders")
    assert _refused(url, "train_upload", [{"path": str(secret), "meta": META}]).startswith("zip_file: not a file "
                                                                                          "uploaded to this app")
    assert not (data / "uploads").exists() or all(p.name != "secret.zip" for p in (data / "uploads").rglob("*"))


def test_uploading_is_training_so_it_follows_the_training_rules(studio, tmp_path):
    """Off where training is off (a public address, a Space); on a loopback address, only requests addressed
    to this machine from its own pages (DNS rebinding)."""
    import app
    from ui.catalog import Catalog
    _, url, data, _ = studio
    zip_path = {"path": _upload(url, make_zip(class_folders()), "x.zip"), "meta": META}
    evil = f"rebind.evil.example:{httpx.URL(url).port}"
    for headers in ({"Host": evil}, {"Origin": "http://evil.example"}):
        message = _refused(url, "train_upload", [zip_path], headers=headers)
        assert "localhost only" in message or "refused a request from a page of" in message, message
    refused_demo, refused_url = launch_app(Catalog.from_sources(tmp_path / "runs"), data_dir=tmp_path / "data",
                                           training_off=app.training_refusal("0.0.0.0", False, environ={}))
    try:
        upload = {"path": _upload(refused_url, make_zip(class_folders()), "x.zip"), "meta": META}
        assert _refused(refused_url, "train_upload", [upload]).startswith("Training from the browser is off")
        assert not (tmp_path / "data").exists()
    finally:
        refused_demo.close()


def _message_of(result: tuple[str, str]) -> str | None:
    from tests.test_hostile import _message
    return _message(*result)
