"""What every benchmark records with its numbers: hardware, versions, load, mean ± std.

Results go to benchmarks/results/<name>-<device>.json (git-ignored), or under $BENCH_OUT
when set (benchmarks/gpu_suite.sh points it at the device machine's $OUT).
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from training.record import hardware, now_utc, versions  # one definition: training runs record them too

REPO = Path(__file__).resolve().parents[1]

RESULTS = REPO / "benchmarks" / "results"


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def environment(device: torch.device) -> dict:
    """The machine and software a benchmark ran on (training.record's record of a run's hardware, and more)."""
    import numpy
    import PIL
    return {**hardware(device), "cpu_capability": torch.backends.cpu.get_cpu_capability(), "device": str(device),
            "versions": {**versions(), "numpy": numpy.__version__, "pillow": PIL.__version__,
                         "cuda": torch.version.cuda if device.type == "cuda" else None,
                         "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None},
            "platform": platform.platform(), "commit": git_commit(),
            "load_average_start": load_average(), "started": now_utc()}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleave(runs: dict, repeats: int, device: torch.device) -> tuple[dict, dict]:
    """Time each of `runs` ({name: fn() -> images done}) once per repeat, the order rotating every
    repeat so that all see the same load from the machine's other users. Returns images/s per
    repeat and images per CPU-second of this process (which other processes do not distort)."""
    rates: dict[str, list[float]] = {name: [] for name in runs}
    cpu_rates: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            cpu_start = time.process_time()
            sync(device)
            start = time.perf_counter()
            images = runs[name]()
            sync(device)
            rates[name].append(images / (time.perf_counter() - start))
            cpu_rates[name].append(images / max(time.process_time() - cpu_start, 1e-9))
            print(f"  repeat {r + 1}: {name:>28} {rates[name][-1]:12,.1f} images/s", flush=True)
    return rates, cpu_rates


def summary(values: list[float]) -> dict:
    """mean, std (sample; 0 for one value), min, max and the raw values."""
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "n": len(values), "values": values}


def ratio_summary(num: list[float], den: list[float]) -> dict:
    """Ratio of paired measurements (same repeat), summarised."""
    return summary([a / b for a, b in zip(num, den)])


def compare(rates: dict[str, list[float]], pairs) -> tuple[dict, dict]:
    """Each contender's summary, and "ours / other": the paired ratio for each (ours, other) of `pairs`
    that were both timed."""
    return ({name: summary(v) for name, v in rates.items()},
            {f"{a} / {b}": ratio_summary(rates[a], rates[b]) for a, b in pairs if a in rates and b in rates})


def write_result(name: str, device: torch.device, result: dict, env: dict) -> Path:
    """Write the result's JSON file, then print it as benchmarks/README.md's table shows it."""
    from benchmarks.report import print_rows, rows_for
    env = {**env, "load_average_end": load_average(), "finished": now_utc()}
    out_dir = Path(os.environ["BENCH_OUT"]) if os.environ.get("BENCH_OUT") else RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}-{device.type}.json"
    payload = {"benchmark": name, "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
               "environment": env, **result}
    path.write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n")
    print()
    print_rows(rows_for({name: payload}))
    print(f"\nwrote {path}")
    return path


def add_common_args(p, *, repeats: int = 3) -> None:
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int,
                   help="torch intra-op threads (default: torch's choice, one per core). On a shared "
                        "machine, 1 avoids the stalls of threads waiting for each other")
    p.add_argument("--repeats", type=int, default=repeats, help="interleaved repeats (mean ± std over them)")


def setup(args) -> tuple[torch.device, dict]:
    if args.threads:
        torch.set_num_threads(args.threads)
    from training.precision import resolve_device, set_torch_flags
    device = resolve_device(args.device)   # the one rule of `python -m training.train --device`
    set_torch_flags(device)   # cuDNN autotuning and TF32 on CUDA, as `python -m training.train`
    return device, environment(device)
