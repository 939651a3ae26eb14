"""Shared fixtures: generated data in the real on-disk formats, tiny runs, the app.

Every test runs on data the suite writes itself (MNIST idx files, CIFAR-10 pickle batches,
a cats-vs-dogs image folder), so a fresh clone runs the whole suite. Only tests whose point
is accuracy on the real MNIST digits read ../shared/data, and skip (saying so) without it.
Tiny runs use the real architectures and the real training CLI on a few dozen images; they
are session-scoped so the whole suite trains each one once.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    # pytest.ini runs one xdist worker per core: each worker's torch (and the training processes it
    # starts) gets its share of the cores, or the workers' thread pools fight over them.
    _share = max(1, len(os.sched_getaffinity(0)) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ.setdefault("OMP_NUM_THREADS", str(_share))

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
HAVE_MNIST = (SHARED_DATA / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file()
requires_real_mnist = pytest.mark.skipif(
    not HAVE_MNIST, reason=f"measures accuracy on the real MNIST digits, not found at {SHARED_DATA}/MNIST/raw "
                           "(every mechanics test runs on generated MNIST idx files instead)")


def train_tiny(out: Path, task: str, data_dir: Path, *extra: str, epochs: int = 1,
               limit_train: int = 64, limit_val: int = 32, batch_size: int = 32) -> Path:
    from training.train import get_args_parser, main
    args = get_args_parser().parse_args([
        "--task", task, "--data-dir", str(data_dir), "--out", str(out), "--epochs", str(epochs),
        "--limit-train", str(limit_train), "--limit-val", str(limit_val), "--batch-size", str(batch_size),
        "--device", "cpu", "--no-progress", "--workers", "0", *extra])
    return main(args)


def _skip_cifar_md5(mp: pytest.MonkeyPatch) -> None:
    # torchvision checks each CIFAR-10 file against the md5 of the real release (in
    # CIFAR10._check_integrity and _load_meta, both through cifar.check_integrity).
    # Generated batches cannot match it, so tests skip that check; the product never does.
    import torchvision.datasets.cifar as cifar
    mp.setattr(cifar, "check_integrity", lambda *args, **kwargs: True)


@pytest.fixture
def cifar_unchecked(monkeypatch):
    """Generated CIFAR-10 batches have other md5s than the real ones: skip that check, in tests only."""
    _skip_cifar_md5(monkeypatch)


@pytest.fixture(scope="session")
def cifar10_dir(tmp_path_factory) -> Path:
    from tests.datagen import write_cifar10
    return write_cifar10(tmp_path_factory.mktemp("cifar10-data"))


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory) -> Path:
    """Generated MNIST in the real idx format (tests/datagen.py): 200 train and 100 test digits."""
    from tests.datagen import write_mnist
    return write_mnist(tmp_path_factory.mktemp("mnist-data"))


@pytest.fixture(scope="session")
def catsdogs_dir(tmp_path_factory) -> Path:
    from tests.datagen import write_catsdogs
    return write_catsdogs(tmp_path_factory.mktemp("catsdogs-data"))


@pytest.fixture(scope="session")
def runs_root(tmp_path_factory) -> Path:
    """A runs/ folder laid out as the app expects: runs/<task>[-re]/<run>/."""
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="session")
def mnist_run(runs_root, mnist_dir) -> Path:
    return train_tiny(runs_root / "mnist" / "tiny", "mnist", mnist_dir, epochs=2)


@pytest.fixture(scope="session")
def cifar10_run(runs_root, cifar10_dir) -> Path:
    with pytest.MonkeyPatch.context() as mp:
        _skip_cifar_md5(mp)
        return train_tiny(runs_root / "cifar10" / "tiny", "cifar10", cifar10_dir, limit_train=40, limit_val=40,
                          batch_size=20)


def _catsdogs_run(runs_root, catsdogs_dir, *extra) -> Path:
    name = "catsdogs-re" if extra else "catsdogs"
    return train_tiny(runs_root / name / "tiny", "catsdogs", catsdogs_dir, *extra,
                      limit_train=16, limit_val=8, batch_size=8)


@pytest.fixture(scope="session")
def catsdogs_run(runs_root, catsdogs_dir) -> Path:
    return _catsdogs_run(runs_root, catsdogs_dir)


@pytest.fixture(scope="session")
def catsdogs_re_run(runs_root, catsdogs_dir) -> Path:
    return _catsdogs_run(runs_root, catsdogs_dir, "--random-erasing")


# --- the app (tests/test_app_*.py) ------------------------------------------------------------

UNREACHABLE_HUB_REPO = "cnn-studio-tests/not-on-this-machine"   # HF_HUB_OFFLINE=1: fails fast


@pytest.fixture(scope="session")
def folder_run(runs_root, catsdogs_dir) -> Path:
    """A model trained on your own images (--task folder): the cats-vs-dogs training folder, VGG19-BN at 32 px."""
    return train_tiny(runs_root / "folder" / "tiny", "folder", catsdogs_dir / "train", "--arch", "vgg19_bn_32",
                      limit_train=16, limit_val=8, batch_size=8)


@pytest.fixture(scope="session")
def app_runs(runs_root, cifar10_run, catsdogs_run, catsdogs_re_run, mnist_run, folder_run) -> Path:
    """runs_root holding a tiny run of every task."""
    return runs_root


@pytest.fixture(scope="session")
def app_catalog(app_runs):
    """The models the app serves, loaded once: the tiny runs plus a Hub repo that cannot load."""
    from ui.catalog import Catalog
    return Catalog.from_sources(app_runs, [UNREACHABLE_HUB_REPO])


def launch_app(catalog, **build):
    """build_demo(catalog, **build) + a plain launch on a free local port: (demo, url)."""
    import socket

    import app
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = app.build_demo(catalog, **build)
    # No launch_options(): the app's Blocks brings its own limits to every launch (app.StudioBlocks).
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    return demo, url


@pytest.fixture(scope="session")
def app_server(app_catalog):
    """One launched app (demo, url) for all server and browser tests, on a free local port."""
    demo, url = launch_app(app_catalog)
    yield demo, url
    demo.close()


@pytest.fixture(scope="session")
def browser():
    """One Chromium for every browser test (a page is a context of its own); the browser modules skip
    without it (tests/browser_helpers.needs_browser)."""
    from tests.browser_helpers import chromium
    playwright, browser = chromium()
    yield browser
    browser.close()
    playwright.stop()


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_auto_num_workers(config):
    """`-n auto`: one worker per core this process may use, at most 4. Each worker trains its own tiny
    runs and may hold an app, Chromium and ResNet50s (a few GiB); more workers would mostly repeat that."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None                                   # xdist's own variable decides
    return max(1, min(len(os.sched_getaffinity(0)), 4))

