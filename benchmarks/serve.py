"""Serving speed: the app's classify endpoints against a floor app, under 1, 8 and 16 clients.

    python benchmarks/serve.py --data-dir ../shared/data                 # tiny runs trained if missing
    python benchmarks/serve.py --runs runs --clients 1 8 16 --requests 8 --repeats 2

Two servers run side by side, each in its own process: CNN Studio (`app.py` on a runs folder)
and the *floor*, a trivial Gradio 6 app that answers a constant label for an uploaded image:
what Gradio itself costs with no model at all. `gradio_client` clients (one Client each, own
download folder) send real images to each endpoint; the floor gets the same images in the
same phase. Phases alternate floor / app (order flipped every repeat), so both see the same
load from the machine's other users.

Every answer, including downloaded images (compared by bytes), must equal the sequential
answer for the same image, taken before the timed phases; failed calls and mismatches are
counted. Reported per endpoint and client count: p50 / p95 latency, throughput, and their
ratios to the floor (paired by repeat). The targets of issue 16: p50 <= 1.2x the floor at 1 and
16 clients, throughput >= 0.9x at 16 clients, zero failures, every answer equal.

Without --runs, tiny runs are trained into benchmarks/results/serve-runs (MNIST on the real
files of --data-dir; CIFAR-10 and cats/dogs on generated data in the real formats, as the
tests do): their weights do not matter for speed, their architectures do. `--app-dir` runs
the app of another checkout (e.g. `git archive` of an older commit) for before/after runs.
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import math
import os
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import REPO, environment, ratio_summary, summary, write_result  # noqa: E402
from benchmarks.report import serve_rows  # noqa: E402

ASSETS = REPO / "assets"
DEFAULT_RUNS = REPO / "benchmarks" / "results" / "serve-runs"
# endpoint -> (task the images are for, how to call it with one image)
ENDPOINTS = {"classify_digit_image": "mnist", "classify_cifar10": "cifar10", "classify_catdog": "catsdogs"}
TASK_RUNS = {"mnist": ["mnist"], "cifar10": ["cifar10"], "catsdogs": ["catsdogs", "catsdogs-re"]}


# --- the floor app ---------------------------------------------------------------------------------

def floor_demo():
    """The transport floor: an uploaded image in, a constant label out, Gradio's defaults."""
    import gradio as gr
    with gr.Blocks(analytics_enabled=False) as demo:
        image = gr.Image(type="filepath")
        label = gr.Label()
        image.upload(lambda path: {"floor": 1.0}, image, label, api_name="classify")
    return demo.queue()


def serve_floor(port: int) -> None:
    floor_demo().launch(server_name="127.0.0.1", server_port=port, quiet=True)


# --- runs and images ---------------------------------------------------------------------------------

def ensure_runs(runs: Path, tasks: set[str], data_dir: Path | None) -> None:
    """Train the missing tiny runs (one epoch on a few dozen images) into `runs`."""
    from tests.conftest import _skip_cifar_md5, train_tiny
    from tests.datagen import write_catsdogs, write_cifar10
    scratch = runs.parent / "serve-data"
    for task in sorted(tasks):
        for folder in TASK_RUNS[task]:
            if any((runs / folder).glob("*/model.safetensors")):
                continue
            print(f"training a tiny {folder} run into {runs / folder} ...", flush=True)
            if task == "mnist":
                if data_dir is None or not (data_dir / "MNIST" / "raw").is_dir():
                    raise SystemExit(f"no MNIST run in {runs} and no MNIST files: pass --data-dir ../shared/data")
                train_tiny(runs / folder / "tiny", "mnist", data_dir, limit_train=256, limit_val=64)
            elif task == "cifar10":
                import pytest
                with pytest.MonkeyPatch.context() as mp:   # generated batches have other md5s (as in tests)
                    _skip_cifar_md5(mp)
                    train_tiny(runs / folder / "tiny", "cifar10", write_cifar10(scratch / "cifar10"),
                               limit_train=40, limit_val=40, batch_size=20)
            else:
                extra = ["--random-erasing"] if folder.endswith("-re") else []
                train_tiny(runs / folder / "tiny", "catsdogs", write_catsdogs(scratch / "catsdogs"), *extra,
                           limit_train=16, limit_val=8, batch_size=8)


def images_for(task: str, folder: Path, data_dir: Path | None, count: int) -> list[Path]:
    """`count` distinct PNG files for a task: real MNIST test digits when available, else the
    repository's sample images and deterministic variants of them (flips, crops)."""
    from PIL import Image, ImageOps
    folder.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    if task == "mnist" and data_dir is not None and (data_dir / "MNIST" / "raw").is_dir():
        from torchvision.datasets import MNIST
        test = MNIST(str(data_dir), train=False, download=False)
        sources = [test[i][0] for i in range(count)]
    else:
        names = ["mnist_*.png"] if task == "mnist" else ["sample_boat.png", "cat_drawing.png"]
        base = [Image.open(p).convert("L" if task == "mnist" else "RGB")
                for pattern in names for p in sorted(ASSETS.glob(pattern))]
        sources = []
        for i in range(count):
            img = base[i % len(base)]
            variant = i // len(base)
            if variant % 2:
                img = ImageOps.mirror(img)
            if variant >= 2:
                w, h = img.size
                k = 2 * (variant // 2)
                img = img.crop((k, k, w - k, h - k))
            sources.append(img)
    for i, img in enumerate(sources):
        path = folder / f"{task}-{i:02d}.png"
        img.save(path)
        out.append(path)
    return out


# --- servers ------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], cwd: Path, port: int, log: Path, env: dict | None = None) -> subprocess.Popen:
    import httpx
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})})
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited ({proc.returncode}): {shlex.join(cmd)}; see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/config", timeout=5).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"server not ready after 600 s: {shlex.join(cmd)}")


# --- answers --------------------------------------------------------------------------------------------

def canonical(value):
    """An answer reduced to what must be equal: files by their bytes' sha256, everything else as is."""
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, dict):
        return {k: canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, str) and os.path.isfile(value):
        data = Path(value).read_bytes()
        return {"file_bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    return value


def differences(a, b, atol: float, path: str = "") -> list[str]:
    """Where two canonical answers differ (floats within `atol` count as equal)."""
    if isinstance(a, float) and isinstance(b, float):
        return [] if abs(a - b) <= atol or (math.isnan(a) and math.isnan(b)) else [f"{path}: {a} != {b}"]
    if type(a) is not type(b):
        return [f"{path}: {type(a).__name__} != {type(b).__name__}"]
    if isinstance(a, dict):
        if a.keys() != b.keys():
            return [f"{path}: keys {sorted(a)} != {sorted(b)}"]
        return [d for k in a for d in differences(a[k], b[k], atol, f"{path}.{k}")]
    if isinstance(a, list):
        if len(a) != len(b):
            return [f"{path}: length {len(a)} != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, atol, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


class Target:
    """One server endpoint and its clients (one gradio_client.Client per simulated user)."""

    def __init__(self, endpoint: str, side: str, url: str, api_name: str, clients: int, downloads: Path | None,
                 timeout: float | None = None):
        from gradio_client import Client
        self.endpoint, self.url, self.api_name = endpoint, url, api_name
        self.name = f"{side}-{endpoint}"
        http = {"timeout": timeout} if timeout else None   # None: gradio_client's default (httpx: 5 s)
        # downloads=None: returned files are not fetched; the answer keeps their URLs (content-named
        # by ui.serving.image_file, so equal pictures still compare equal).
        self.clients = [Client(url, verbose=False, httpx_kwargs=http,
                               download_files=str(downloads / f"{self.name}-{i}") if downloads else False)
                        for i in range(clients)]
        self.reference: dict[Path, object] = {}

    def call(self, client, image: Path):
        from gradio_client import handle_file
        return canonical(client.predict(handle_file(image), api_name=f"/{self.api_name}"))


def run_phase(target: Target, images: list[Path], clients: int, requests: int, atol: float) -> dict:
    """`clients` threads, each its own Client, `requests` calls each; latencies, failures, mismatches."""
    latencies: list[float] = []
    failures: list[str] = []
    mismatches: list[str] = []
    lock = threading.Lock()
    start_line = threading.Barrier(clients)

    def user(i: int) -> None:
        client = target.clients[i]
        start_line.wait()
        for r in range(requests):
            image = images[(i * requests + r) % len(images)]
            t0 = time.perf_counter()
            try:
                answer = target.call(client, image)
            except Exception as e:  # noqa: BLE001 - counted and reported
                with lock:
                    failures.append(f"{type(e).__name__}: {str(e)[:200]}")
                continue
            dt = time.perf_counter() - t0
            diff = differences(answer, target.reference[image], atol)
            with lock:
                latencies.append(dt)
                if diff:
                    mismatches.append(f"{image.name}: {'; '.join(diff[:3])}")

    threads = [threading.Thread(target=user, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat = sorted(latencies)
    return {"p50_ms": 1000 * statistics.median(lat) if lat else None,
            "p95_ms": 1000 * lat[min(len(lat) - 1, math.ceil(0.95 * len(lat)) - 1)] if lat else None,
            "throughput": len(lat) / wall, "calls": clients * requests, "answered": len(lat),
            "failures": failures, "mismatches": mismatches}


# --- the benchmark ----------------------------------------------------------------------------------

def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=Path, help=f"runs folder for the app (default: tiny runs in {DEFAULT_RUNS})")
    p.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data",
                   help="MNIST files (real digits as requests; training a tiny MNIST run if needed)")
    p.add_argument("--endpoints", nargs="+", default=list(ENDPOINTS), choices=list(ENDPOINTS))
    p.add_argument("--clients", nargs="+", type=int, default=[1, 8, 16])
    p.add_argument("--requests", type=int, default=8, help="calls per client per phase")
    p.add_argument("--repeats", type=int, default=2, help="interleaved floor/app repeats")
    p.add_argument("--images", type=int, default=8, help="distinct images per endpoint")
    p.add_argument("--threads", type=int, default=None, help="app.py --threads (torch intra-op threads)")
    p.add_argument("--app-dir", type=Path, default=REPO, help="checkout whose app.py is served (before/after runs)")
    p.add_argument("--app-args", default="", help="more app.py arguments, one string")
    p.add_argument("--atol", type=float, default=0.0,
                   help="floats in answers within this count as equal (default 0: exactly equal)")
    p.add_argument("--client-timeout", type=float, default=None,
                   help="seconds before a client's HTTP call times out (default: gradio_client's, httpx's 5 s)")
    p.add_argument("--no-downloads", action="store_true",
                   help="clients do not fetch returned images (what an answer costs without its image download)")
    p.add_argument("--label", default="", help="result file name: serve[-LABEL]-cpu.json")
    p.add_argument("--describe", default="this checkout", help="what app is served, for the report "
                   "(e.g. 'main before issue 16 (5fa73dd)')")
    p.add_argument("--serve-floor", type=int, metavar="PORT", help=argparse.SUPPRESS)
    return p


def main(argv=None) -> dict:
    args = get_args_parser().parse_args(argv)
    if args.serve_floor:
        serve_floor(args.serve_floor)
        return {}
    device = torch.device("cpu")
    env = environment(device)
    import gradio
    import gradio_client
    env["versions"].update(gradio=gradio.__version__, gradio_client=gradio_client.__version__)
    runs = args.runs or DEFAULT_RUNS
    tasks = {ENDPOINTS[e] for e in args.endpoints}
    if args.runs is None:
        ensure_runs(runs, tasks, args.data_dir)
    work = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    images = {e: images_for(ENDPOINTS[e], work / "images", args.data_dir, args.images) for e in args.endpoints}
    phases, app_cmd, app_log = measure(args, runs, images, work)
    results = summarise(args, phases)
    env["torch_threads"] = args.threads or "app default"
    name = "serve" + (f"-{args.label}" if args.label else "")
    payload = {"task": "serve", "variant": args.describe, "endpoints": args.endpoints, "clients": args.clients,
               "requests": args.requests,
               "downloads": not args.no_downloads, "repeats": args.repeats, "images": args.images,
               "client_timeout": args.client_timeout,
               "app_command": shlex.join(app_cmd[1:]),
               "app_dir": str(args.app_dir.resolve()), "atol": args.atol, "results": results,
               "app_log_tail": app_log,
               "targets": {"p50_ratio_max": 1.2, "throughput_ratio_min_at_16": 0.9, "failures": 0}}
    print()
    for section, rows in itertools.groupby(serve_rows(name, payload), key=lambda row: row[0]):   # as the report
        print(section, *(f"  {metric}: {value}" for _, metric, value in rows), sep="\n")
    write_result(name, device, payload, env)
    return payload


def measure(args, runs: Path, images: dict[str, list[Path]], work: Path) -> tuple[dict, list[str], list[str]]:
    """Start the app and the floor, take the sequential answers, then run the interleaved phases:
    {(endpoint, clients, side): [phase result per repeat]}, the app's command and its log's tail."""
    app_port, floor_port = free_port(), free_port()
    app_cmd = [sys.executable, "app.py", "--runs", str(runs.resolve()), "--port", str(app_port),
               *(["--threads", str(args.threads)] if args.threads else []), *shlex.split(args.app_args)]
    servers = [start(app_cmd, args.app_dir, app_port, work / "app.log"),
               start([sys.executable, str(Path(__file__).resolve()), "--serve-floor", str(floor_port)], REPO,
                     floor_port, work / "floor.log")]
    try:
        most = max(args.clients)
        targets = {}
        for e in args.endpoints:
            downloads = None if args.no_downloads else work / "downloads"
            targets[(e, "app")] = Target(e, "app", f"http://127.0.0.1:{app_port}/", e, most, downloads,
                                         args.client_timeout)
            targets[(e, "floor")] = Target(e, "floor", f"http://127.0.0.1:{floor_port}/", "classify", most,
                                           downloads, args.client_timeout)
        for target in targets.values():   # the sequential answers every later one must equal
            for image in images[target.endpoint]:
                target.reference[image] = target.call(target.clients[0], image)
        phases: dict = {}
        for repeat in range(args.repeats):
            for clients in args.clients:
                for e in args.endpoints:
                    order = ("floor", "app") if repeat % 2 == 0 else ("app", "floor")
                    for side in order:
                        r = run_phase(targets[(e, side)], images[e], clients, args.requests, args.atol)
                        phases.setdefault((e, clients, side), []).append(r)
                        print(f"repeat {repeat} {e:22s} {clients:2d} clients {side:5s}: p50 {r['p50_ms'] or 0:7.1f} ms "
                              f"p95 {r['p95_ms'] or 0:7.1f} ms {r['throughput']:6.2f}/s "
                              f"failed {len(r['failures'])} mismatched {len(r['mismatches'])}", flush=True)
        app_log = (work / "app.log").read_text(errors="replace").splitlines()[-5:]
    finally:
        for s in servers:
            s.terminate()
        for s in servers:
            try:
                s.wait(timeout=30)
            except subprocess.TimeoutExpired:
                s.kill()
    return phases, app_cmd, app_log


def summarise(args, phases: dict) -> dict:
    """Per endpoint and client count: both sides' latency, throughput and failures, and the ratios
    paired by repeat."""
    results = {}
    for e in args.endpoints:
        per_load = {}
        for clients in args.clients:
            app, floor = phases[(e, clients, "app")], phases[(e, clients, "floor")]
            entry = {side: {"p50_ms": summary([r["p50_ms"] for r in rs if r["p50_ms"] is not None]),
                            "p95_ms": summary([r["p95_ms"] for r in rs if r["p95_ms"] is not None]),
                            "throughput": summary([r["throughput"] for r in rs]),
                            "calls": sum(r["calls"] for r in rs),
                            "failures": sum(len(r["failures"]) for r in rs),
                            "mismatches": sum(len(r["mismatches"]) for r in rs),
                            "examples": [m for r in rs for m in r["failures"] + r["mismatches"]][:5]}
                     for side, rs in (("app", app), ("floor", floor))}
            paired = [(a, f) for a, f in zip(app, floor) if a["p50_ms"] and f["p50_ms"]]
            entry["ratios"] = {
                "p50": ratio_summary([a["p50_ms"] for a, _ in paired], [f["p50_ms"] for _, f in paired]),
                "p95": ratio_summary([a["p95_ms"] for a, _ in paired], [f["p95_ms"] for _, f in paired]),
                "throughput": ratio_summary([a["throughput"] for a, _ in paired],
                                            [f["throughput"] for _, f in paired])}
            per_load[str(clients)] = entry
        results[e] = per_load
    return results


if __name__ == "__main__":
    main()
