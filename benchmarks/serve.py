"""Serving speed: the app's classify endpoints against a floor app and their bare models, under 1, 8 and 16 clients.

    python benchmarks/serve.py --data-dir ../shared/data                 # tiny runs trained if missing
    python benchmarks/serve.py --runs runs --clients 1 8 16 --requests 8 --repeats 2

Two servers run side by side, each in its own process: CNN Studio (`app.py` on a runs folder)
and the *floor*, a trivial Gradio 6 app that answers a constant label for an uploaded image:
what Gradio itself costs with no model at all. `gradio_client` clients (one Client each, own
download folder) send real images to each endpoint; the floor gets the same images in the
same phase. Phases alternate floor / app (order flipped every repeat), so both see the same
load from the machine's other users.

The *model* side is the endpoint's own work without Gradio, timed in this process in every
repeat: the same models the app's columns serve (ui.catalog, as app.py loads them; cats vs dogs
runs two, baseline and Random Erasing, and both count), the same preparation (decode once, then
models.predict.prepare per model, as ui/classify_tab.run_model), the app's torch threads. Per
image: the time of its forward passes; and the best images/s over batch sizes 1, 2, 4, ... up
to the most clients. The yardsticks: p50 latency against floor p50 + model p50, and throughput
against the combined limit 1 / (1 / floor throughput + 1 / model throughput), paired by repeat.

Every answer, including downloaded images (compared by bytes), must equal the sequential
answer for the same image, taken before the timed phases (floats within --atol, default 1e-5),
and the app's probabilities must equal the in-process model's to --atol; failed calls and
mismatches are counted. Reported per endpoint and client count: p50 / p95 latency, throughput,
their ratios to the floor and to the yardsticks. The targets of issue 16: p50 <= 1.2x the
floor at 1 and 16 clients, throughput >= 0.9x at 16 clients, zero failures, every answer equal.

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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import REPO, environment, ratio_summary, summary, write_result  # noqa: E402
from models.tasks import RANDOM_ERASING, TASKS  # noqa: E402

ASSETS = REPO / "assets"
DEFAULT_RUNS = REPO / "benchmarks" / "results" / "serve-runs"
# the classify endpoints timed (those of the tasks with a public dataset), each with its task
ENDPOINTS = {t.api_name: t for t in TASKS.values() if not t.dataset.local}


# --- the floor app ---------------------------------------------------------------------------------

def floor_demo():
    """The transport floor: an uploaded image in, a constant label out, Gradio's defaults."""
    import gradio as gr
    with gr.Blocks(analytics_enabled=False) as demo:
        image = gr.Image(type="filepath")
        label = gr.Label()
        image.upload(lambda path: {"floor": 1.0}, image, label, api_name="classify")
    return demo.queue()


# --- runs and images ---------------------------------------------------------------------------------

def ensure_runs(runs: Path, tasks: list, data_dir: Path | None) -> None:
    """Train the missing tiny runs (one epoch on a few dozen images) into `runs`."""
    import pytest

    from tests.conftest import _skip_cifar_md5, train_tiny
    from tests.datagen import write_catsdogs, write_cifar10
    scratch = runs.parent / "serve-data"
    generated = {"cifar10": (write_cifar10, 40, 40, 20), "catsdogs": (write_catsdogs, 16, 8, 8)}   # limits, batch
    for task, variant in ((t, v) for t in tasks for v in t.variants):
        folder = runs / variant.task_folder(task.name)
        if any(folder.glob("*/model.safetensors")):
            continue
        print(f"training a tiny {folder.name} run into {folder} ...", flush=True)
        extra = ["--random-erasing"] if variant is RANDOM_ERASING else []
        if task.dataset.source.endswith(".MNIST"):   # the real files
            if data_dir is None or not (data_dir / "MNIST" / "raw").is_dir():
                raise SystemExit(f"no MNIST run in {runs} and no MNIST files: pass --data-dir ../shared/data")
            train_tiny(folder / "tiny", task.name, data_dir, *extra, limit_train=256, limit_val=64)
            continue
        write, limit_train, limit_val, batch = generated[task.name]
        with pytest.MonkeyPatch.context() as mp:   # generated CIFAR batches have other md5s (as in tests)
            _skip_cifar_md5(mp)
            train_tiny(folder / "tiny", task.name, write(scratch / task.name), *extra, limit_train=limit_train,
                       limit_val=limit_val, batch_size=batch)


def images_for(task, folder: Path, count: int) -> list[Path]:
    """`count` distinct PNG files for a task: its example images in assets/ (for MNIST, real test digits)
    and deterministic variants of them (flips, crops)."""
    from PIL import Image, ImageOps
    folder.mkdir(parents=True, exist_ok=True)
    base = [Image.open(p).convert("L" if task.in_channels == 1 else "RGB") for p in sorted(ASSETS.glob(task.examples))]
    out = []
    for i in range(count):
        img, variant = base[i % len(base)], i // len(base)
        img = ImageOps.mirror(img) if variant % 2 else img
        k = 2 * (variant // 2)
        out.append(folder / f"{task.name}-{i:02d}.png")
        img.crop((k, k, img.width - k, img.height - k)).save(out[-1])
    return out


# --- servers ------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], cwd: Path, port: int, log: Path) -> subprocess.Popen:
    import httpx
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=log.open("w"), stderr=subprocess.STDOUT)
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

def leaves(value, path: str = "") -> dict:
    """An answer as {path: leaf}: files by their bytes' size and sha256, everything else as is."""
    if isinstance(value, (list, tuple)):
        return {k: v for i, item in enumerate(value) for k, v in leaves(item, f"{path}[{i}]").items()}
    if isinstance(value, dict):
        return {k: v for key, item in sorted(value.items()) for k, v in leaves(item, f"{path}.{key}").items()}
    if isinstance(value, str) and os.path.isfile(value):
        data = Path(value).read_bytes()
        return {path: f"file of {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}"}
    return {path: value}


def differences(a: dict, b: dict, atol: float) -> list[str]:
    """Where two answers' leaves differ (floats within `atol` count as equal)."""
    if a.keys() != b.keys():
        return [f"fields {sorted(a.keys() ^ b.keys())} in only one of them"]
    return [f"{k}: {a[k]!r} != {b[k]!r}" for k in a if a[k] != b[k] and not (
        isinstance(a[k], float) and isinstance(b[k], float) and (math.isclose(a[k], b[k], rel_tol=0, abs_tol=atol)
                                                                 or math.isnan(a[k]) and math.isnan(b[k])))]


class Target:
    """One server endpoint and its clients (one gradio_client.Client per simulated user)."""

    def __init__(self, name: str, url: str, api_name: str, clients: int, downloads: Path | None,
                 timeout: float | None = None):
        from gradio_client import Client
        self.api_name = api_name
        http = {"timeout": timeout} if timeout else None   # None: gradio_client's default (httpx: 5 s)
        # downloads=None: returned files are not fetched; the answer keeps their URLs (content-named
        # by ui.serving.image_file, so equal pictures still compare equal).
        self.clients = [Client(url, verbose=False, httpx_kwargs=http,
                               download_files=str(downloads / f"{name}-{i}") if downloads else False)
                        for i in range(clients)]
        self.reference: dict[Path, dict] = {}

    def call(self, client, image: Path) -> dict:
        from gradio_client import handle_file
        return leaves(client.predict(handle_file(image), api_name=f"/{self.api_name}"))


def run_phase(target: Target, images: list[Path], clients: int, requests: int, atol: float) -> dict:
    """`clients` threads, each its own Client, `requests` calls each; latencies, failures, mismatches."""
    start_line = threading.Barrier(clients)

    def user(i: int) -> list[tuple[float | None, str | None]]:
        """(seconds, None or what differed) of each answered call, (None, the error) of each failed one."""
        start_line.wait()
        calls = []
        for r in range(requests):
            image = images[(i * requests + r) % len(images)]
            t0 = time.perf_counter()
            try:
                answer = target.call(target.clients[i], image)
            except Exception as e:  # noqa: BLE001 - counted and reported
                calls.append((None, f"{type(e).__name__}: {str(e)[:200]}"))
                continue
            seconds, diff = time.perf_counter() - t0, differences(answer, target.reference[image], atol)
            calls.append((seconds, f"{image.name}: {'; '.join(diff[:3])}" if diff else None))
        return calls

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        calls = [call for user_calls in pool.map(user, range(clients)) for call in user_calls]
    wall = time.perf_counter() - t0
    lat = sorted(seconds for seconds, _ in calls if seconds is not None)
    return {"p50_ms": 1000 * statistics.median(lat) if lat else None,
            "p95_ms": 1000 * lat[min(len(lat) - 1, math.ceil(0.95 * len(lat)) - 1)] if lat else None,
            "throughput": len(lat) / wall, "calls": clients * requests, "answered": len(lat),
            "failures": [why for seconds, why in calls if seconds is None],
            "mismatches": [why for seconds, why in calls if seconds is not None and why]}


# --- the bare models ----------------------------------------------------------------------------------

def served_models(runs: Path, endpoints: list[str]) -> dict:
    """{endpoint: the LoadedModel of each of its classify columns}, chosen as the app chooses them."""
    from ui.catalog import Catalog
    from ui.classify_tab import columns, variant_of
    catalog = Catalog.from_sources(runs)
    return {e: [catalog.get(None, t.name, variant_of(catalog, t, c)).loaded for c in columns(t)]
            for e, t in ((e, ENDPOINTS[e]) for e in endpoints)}


@torch.inference_mode()
def model_answers(models: list, image) -> list[dict[str, float]]:
    """The endpoint's own work on one image or a list of them: decoded once, prepared per model
    (models.predict.prepare, as ui/classify_tab.run_model) and one forward pass per model; the
    probabilities of each model for the (first) image."""
    from models.predict import decode_image, logits_to_probs, prepare
    decoded = [decode_image(i) for i in (image if isinstance(image, list) else [image])]
    answers = []
    for m in models:
        probs = logits_to_probs(m.model(torch.cat([prepare(img, m.config)[0] for img in decoded])), m.config)[0]
        probs = probs.double() / probs.double().sum()   # as run_model
        answers.append({label: float(p) for label, p in zip(m.config.labels, probs)})
    return answers


def time_models(models: list, images: list[Path], most: int) -> dict:
    """p50 over the images of their forward passes, and the best images/s over batch sizes 1, 2, 4, ... <= most."""
    per_image, rates = [], {}
    for image in images:
        t0 = time.perf_counter()
        model_answers(models, image)
        per_image.append(time.perf_counter() - t0)
    for batch in (2 ** k for k in range(most.bit_length()) if 2 ** k <= most):
        t0 = time.perf_counter()
        model_answers(models, list(itertools.islice(itertools.cycle(images), batch)))
        rates[batch] = batch / (time.perf_counter() - t0)
    best = max(rates, key=rates.get)
    return {"p50_ms": 1000 * statistics.median(per_image), "throughput": rates[best], "best_batch": best}


def confidences(answer: dict) -> list[dict[str, float]]:
    """The gr.Label outputs of an answer's leaves, in order: [{label: confidence}]."""
    found: dict[str, dict] = {}
    for path, value in answer.items():
        head, _, field = path.rpartition(".")
        if ".confidences[" in head and field in ("label", "confidence"):
            found.setdefault(head, {})[field] = value
    labels: dict[str, dict[str, float]] = {}
    for head, pair in found.items():
        labels.setdefault(head.rsplit(".confidences[", 1)[0], {})[pair["label"]] = pair["confidence"]
    return list(labels.values())


def differs_from_models(target: Target, models: list, atol: float) -> list[str]:
    """The images whose sequential answer from the app shows other probabilities than the bare models give."""
    found = []
    for image, answer in target.reference.items():
        shown, expected = confidences(answer), model_answers(models, image)
        diff = [d for a, b in zip(shown, expected) for d in differences(a, {k: b.get(k) for k in a}, atol)]
        if diff or len(shown) != len(expected):
            found.append(f"{image.name}: {'; '.join(diff[:3]) or f'{len(shown)} answers for {len(expected)} models'}")
    return found


# --- the benchmark ----------------------------------------------------------------------------------

def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=Path, help=f"runs folder for the app (default: tiny runs in {DEFAULT_RUNS})")
    p.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data",
                   help="MNIST files (for training a tiny MNIST run if needed)")
    p.add_argument("--endpoints", nargs="+", default=list(ENDPOINTS), choices=list(ENDPOINTS))
    p.add_argument("--clients", nargs="+", type=int, default=[1, 8, 16])
    p.add_argument("--requests", type=int, default=8, help="calls per client per phase")
    p.add_argument("--repeats", type=int, default=2, help="interleaved floor/app repeats")
    p.add_argument("--images", type=int, default=8, help="distinct images per endpoint")
    p.add_argument("--threads", type=int, default=None, help="app.py --threads (torch intra-op threads)")
    p.add_argument("--app-dir", type=Path, default=REPO, help="checkout whose app.py is served (before/after runs)")
    p.add_argument("--app-args", default="", help="more app.py arguments, one string")
    p.add_argument("--atol", type=float, default=1e-5,
                   help="floats in answers within this count as equal (default 1e-5: concurrent requests share "
                        "forward passes, which sum in another order; 0: exactly equal)")
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
        floor_demo().launch(server_name="127.0.0.1", server_port=args.serve_floor, quiet=True)
        return {}
    from ui.serving import default_torch_threads
    torch.set_num_threads(args.threads or default_torch_threads())   # the model side as app.py --threads
    device = torch.device("cpu")
    env = environment(device)
    import gradio
    import gradio_client
    env["versions"].update(gradio=gradio.__version__, gradio_client=gradio_client.__version__)
    runs = args.runs or DEFAULT_RUNS
    if args.runs is None:
        ensure_runs(runs, list({ENDPOINTS[e].name: ENDPOINTS[e] for e in args.endpoints}.values()), args.data_dir)
    work = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    images = {e: images_for(ENDPOINTS[e], work / "images", args.images) for e in args.endpoints}
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
    write_result(name, device, payload, env)
    return payload


def measure(args, runs: Path, images: dict[str, list[Path]], work: Path) -> tuple[dict, list[str], list[str]]:
    """Start the app and the floor, take the sequential answers, then run the interleaved phases:
    {(endpoint, clients, side): [phase result per repeat]} (side "model": once per repeat, for every
    client count), the app's command and its log's tail."""
    app_port, floor_port = free_port(), free_port()
    app_cmd = [sys.executable, "app.py", "--runs", str(runs.resolve()), "--port", str(app_port),
               *(["--threads", str(args.threads)] if args.threads else []), *shlex.split(args.app_args)]
    models = served_models(runs, args.endpoints)
    servers = [start(app_cmd, args.app_dir, app_port, work / "app.log"),
               start([sys.executable, str(Path(__file__).resolve()), "--serve-floor", str(floor_port)], REPO,
                     floor_port, work / "floor.log")]
    try:
        most, downloads = max(args.clients), None if args.no_downloads else work / "downloads"
        targets = {}
        for e in args.endpoints:
            targets[(e, "app")] = Target(f"app-{e}", f"http://127.0.0.1:{app_port}/", e, most, downloads,
                                         args.client_timeout)
            targets[(e, "floor")] = Target(f"floor-{e}", f"http://127.0.0.1:{floor_port}/", "classify", most,
                                           downloads, args.client_timeout)
        phases: dict = {}
        for (e, side), target in targets.items():   # the sequential answers every later one must equal
            for image in images[e]:
                target.reference[image] = target.call(target.clients[0], image)
            if side == "app":
                phases[(e, "differing")] = differs_from_models(target, models[e], args.atol)
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
            for e in args.endpoints:   # the servers idle: the bare models in this process
                r = time_models(models[e], images[e], most)
                phases.setdefault((e, "model"), []).append(r)
                print(f"repeat {repeat} {e:22s} bare model(s): p50 {r['p50_ms']:7.1f} ms, best "
                      f"{r['throughput']:6.2f}/s at batch {r['best_batch']}", flush=True)
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
    """Per endpoint and client count: both sides' latency, throughput and failures, the bare models', the
    yardsticks, and the ratios paired by repeat."""
    results = {}
    for e in args.endpoints:
        per_load, model = {}, phases[(e, "model")]
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
            differs = phases[(e, "differing")]
            entry["model"] = {"p50_ms": summary([m["p50_ms"] for m in model]),
                              "throughput": summary([m["throughput"] for m in model]),
                              "best_batch": [m["best_batch"] for m in model],
                              "differing_answers": len(differs), "examples": differs[:5]}
            paired = [(a, f, m) for a, f, m in zip(app, floor, model) if a["p50_ms"] and f["p50_ms"]]
            yardstick = [f["p50_ms"] + m["p50_ms"] for _, f, m in paired]
            limit = [1 / (1 / f["throughput"] + 1 / m["throughput"]) for _, f, m in paired]
            entry["yardstick"] = {"p50_ms": summary(yardstick), "throughput_limit": summary(limit)}
            entry["ratios"] = {
                "p50": ratio_summary([a["p50_ms"] for a, _, _ in paired], [f["p50_ms"] for _, f, _ in paired]),
                "p95": ratio_summary([a["p95_ms"] for a, _, _ in paired], [f["p95_ms"] for _, f, _ in paired]),
                "throughput": ratio_summary([a["throughput"] for a, _, _ in paired],
                                            [f["throughput"] for _, f, _ in paired]),
                "p50_vs_yardstick": ratio_summary([a["p50_ms"] for a, _, _ in paired], yardstick),
                "throughput_vs_limit": ratio_summary([a["throughput"] for a, _, _ in paired], limit)}
            per_load[str(clients)] = entry
        results[e] = per_load
    return results


if __name__ == "__main__":
    main()
