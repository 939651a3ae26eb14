"""The performance table of benchmarks/README.md, from the benchmarks' JSON files (never typed by hand).

    python benchmarks/report.py                                # benchmarks/reported/*.json -> markdown on stdout
    python benchmarks/report.py --dir benchmarks/results       # your own fresh results
    python benchmarks/report.py --write benchmarks/README.md   # replace the text between the markers
                                                               # <!-- performance:start --> and <!-- performance:end -->

One column per device kind (CPU, GPU); a column without JSON files says "not measured".
Under the table: the hardware, versions and exact command of every measurement.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as `python benchmarks/report.py`

from publish.common import run_command  # noqa: E402
from publish.results import ResultsError, update_readme  # noqa: E402

HERE = Path(__file__).resolve().parent
START, END = "<!-- performance:start -->", "<!-- performance:end -->"
KINDS = {"cpu": "CPU", "cuda": "GPU"}
NOT_MEASURED = "not measured"


def load(folder: Path) -> dict[str, dict[str, dict]]:
    """{device kind: {benchmark file stem without the device: payload}}."""
    found: dict[str, dict[str, dict]] = {kind: {} for kind in KINDS}
    for path in sorted(folder.glob("*.json")):
        stem, _, kind = path.stem.rpartition("-")
        if kind in found:
            found[kind][stem] = json.loads(path.read_text())
    return found


def fmt(s: dict, digits: int = 0) -> str:
    """A summary (benchmarks.common.summary) as mean ± std."""
    return f"{s['mean']:,.{digits}f} ± {s['std']:,.{digits}f}"


def ratio(s: dict) -> str:
    return f"**{s['mean']:.2f}x** ± {s['std']:.2f}"


def rows_for(results: dict[str, dict]) -> list[tuple[str, str, str]]:
    """(section, metric, value) for one device kind's results."""
    out: list[tuple[str, str, str]] = []
    for key in sorted(k for k in results if k.startswith("train_throughput-")):
        r = results[key]
        sec = f"Training step, {r['task']} (batch {r['batch_size']}{', torch.compile' if r.get('compile') else ''})"
        ips = r["images_per_s"]
        precision = r.get("cnn_studio_settings", {}).get("autocast_dtype") == "torch.bfloat16"
        names = {"cnn_studio": "CNN Studio (device data + batched augmentation, "
                               f"--precision auto = {'bf16' if precision else 'fp32'}), images/s",
                 "cnn_studio_fp32": "CNN Studio forced to fp32 (--precision fp32), images/s",
                 "cnn_studio_bf16": "CNN Studio forced to bf16 (--precision bf16), images/s",
                 "usual": "usual loop (DataLoader + per-image PIL transforms, same model), images/s",
                 "homework": "homework setup (torchvision vgg19_bn, 139.6M params), images/s"}
        for name, label in names.items():
            if name in ips:
                out.append((sec, label, fmt(ips[name], 1)))
        for name, s in r["ratios"].items():
            label = name.replace("cnn_studio_", "CNN Studio ").replace("cnn_studio", "CNN Studio")   # _fp32: " fp32"
            out.append((sec, label + " (speed-up)", ratio(s)))
        if r["task"] == "cifar10" and "cnn_studio" in ips and r["environment"]["gpu"]:
            minutes = 40 * 50_000 / ips["cnn_studio"]["mean"] / 60
            out.append((sec, "40 CIFAR-10 epochs of training steps (extrapolated), minutes", f"{minutes:,.1f}"))
    for key in sorted(k for k in results if k.startswith("step_settings-")):
        r = results[key]
        sec = (f"Speed settings, {r['task']} training step ({r['architecture']}, batch {r['batch_size']}; "
               f"auto picks {r['auto_picks']})")
        for name, s in r["images_per_s"].items():
            vs = f" ({r['ratios'][f'{name} / fp32']['mean']:.2f}x fp32)" if name != "fp32" else ""
            out.append((sec, f"{name}, images/s", fmt(s, 1) + vs))
    for key in sorted((k for k in results if k.startswith("augment_throughput-")), reverse=True):
        r = results[key]
        sec = (f"Augmentation alone, {r['task']} (batch {r['batch_size']}, "
               f"{'with' if r['random_erasing'] else 'without'} Random Erasing)")
        ips = r["images_per_s"]
        out.append((sec, "CNN Studio batched per-sample pipeline, images/s", fmt(ips["cnn_studio"])))
        out.append((sec, "torchvision per image (PIL), images/s", fmt(ips["torchvision_pil"])))
        out.append((sec, "torchvision per image (tensor), images/s", fmt(ips["torchvision_tensor"])))
        out.append((sec, "speed-up over per-image PIL (wall clock)", ratio(r["ratios"]["cnn_studio / torchvision_pil"])))
        out.append((sec, "speed-up over per-image PIL (per CPU-second)",
                    ratio(r["cpu_time_ratios"]["cnn_studio / torchvision_pil"])))
    for key in sorted((k for k in results if k == "serve" or k.startswith("serve-")),
                      key=lambda k: (k != "serve-before", k)):   # the before run first, then this version
        out += serve_rows(key, results[key])
    return out


def print_rows(rows: list[tuple[str, str, str]]) -> None:
    """Rows of the table as a benchmark prints them when it finishes: each section, then its metrics."""
    for section, group in itertools.groupby(rows, key=lambda row: row[0]):
        print(section, *(f"  {metric}: {value}" for _, metric, value in group), sep="\n")


def serve_rows(key: str, r: dict) -> list[tuple[str, str, str]]:
    """One row group per endpoint: latency and throughput against the floor app, failures, targets."""
    out = []
    variant = r.get("variant") or key
    targets = r["targets"]
    for endpoint, per_load in r["results"].items():
        timeout = f", client timeout {r['client_timeout']:.0f} s" if r.get("client_timeout") else ""
        sec = (f"Serving `/{endpoint}` vs a constant-label Gradio app ({variant}; gradio_client, "
               f"{r['requests']} calls per client, {r['repeats']} interleaved repeat(s){timeout})")
        for clients, e in per_load.items():
            app, floor, ratios = e["app"], e["floor"], e["ratios"]
            out.append((sec, f"{clients} client{'s' if clients != '1' else ''}: p50 / p95 ms, app (floor) · "
                             "p50 ratio · throughput ratio · failed or differing answers, app (floor)",
                        f"{app['p50_ms']['mean']:,.0f} / {app['p95_ms']['mean']:,.0f} "
                        f"({floor['p50_ms']['mean']:,.0f} / {floor['p95_ms']['mean']:,.0f}) · "
                        f"{ratio(ratios['p50'])} · {ratio(ratios['throughput'])} · "
                        f"{app['failures'] + app['mismatches']} of {app['calls']} "
                        f"({floor['failures'] + floor['mismatches']} of {floor['calls']})"))
            if "yardstick" in e:   # results since issue 25: against floor + the bare models
                y, model = e["yardstick"], e["model"]
                out.append((sec, f"{clients} client{'s' if clients != '1' else ''}: p50 ms, app / (floor + bare "
                                 "models) · ratio · throughput /s, app / limit (floor and models combined) · "
                                 "ratio · answers differing from the bare models (to the atol)",
                            f"{app['p50_ms']['mean']:,.0f} / {y['p50_ms']['mean']:,.0f} · "
                            f"{ratio(ratios['p50_vs_yardstick'])} · {app['throughput']['mean']:,.2f} / "
                            f"{y['throughput_limit']['mean']:,.2f} · {ratio(ratios['throughput_vs_limit'])} · "
                            f"{model['differing_answers']}"))
        met = targets_met(per_load, "p50", "throughput", targets["p50_ratio_max"],
                          targets["throughput_ratio_min_at_16"])
        bad = sum(e["app"]["failures"] + e["app"]["mismatches"] for e in per_load.values())
        met.append(f"{bad} failed/differing {'met' if bad == 0 else 'NOT met'}")
        out.append((sec, f"targets (p50 <= {targets['p50_ratio_max']}x floor at 1 and 16 clients, throughput "
                         f">= {targets['throughput_ratio_min_at_16']}x at 16, none failed)", "; ".join(met)))
        if all("yardstick" in e for e in per_load.values()):
            out.append((sec, f"yardstick targets (p50 <= {YARDSTICK['p50']}x floor + bare models at 1 and 16 "
                             f"clients, throughput >= {YARDSTICK['throughput']}x the limit at 16)",
                        "; ".join(targets_met(per_load, "p50_vs_yardstick", "throughput_vs_limit",
                                              YARDSTICK["p50"], YARDSTICK["throughput"]))))
    return out


YARDSTICK = {"p50": 1.15, "throughput": 0.9}     # issue 25's targets against the endpoint's physical limit


def targets_met(per_load: dict, p50_ratio: str, throughput_ratio: str, p50_max: float,
                throughput_min: float) -> list[str]:
    """Whether the mean p50 ratio at 1 and 16 clients is at most `p50_max`, and the throughput ratio at
    16 at least `throughput_min` (the ratios named, of serve.py's results)."""
    met = []
    for clients in ("1", "16"):
        if clients in per_load:
            p50 = per_load[clients]["ratios"][p50_ratio]["mean"]
            met.append(f"p50 {p50:.2f}x at {clients} {'met' if p50 <= p50_max else 'NOT met'}")
    if "16" in per_load:
        tp = per_load["16"]["ratios"][throughput_ratio]["mean"]
        met.append(f"throughput {tp:.2f}x at 16 {'met' if tp >= throughput_min else 'NOT met'}")
    return met


def hardware(results: dict[str, dict]) -> str:
    if not results:
        return NOT_MEASURED
    env = next(iter(results.values()))["environment"]
    v = env["versions"]
    what = env["gpu"] or f"{env['cpu']}, {env['cpu_cores']} cores"
    soft = f"torch {v['torch']}, torchvision {v['torchvision']}" + (f", CUDA {v['cuda']}" if v.get("cuda") else "")
    return f"{what}; {soft}"


def render(found: dict[str, dict[str, dict]]) -> str:
    values = {kind: {(s, m): v for s, m, v in rows_for(found[kind])} for kind in KINDS}
    order = list(dict.fromkeys(row for kind in KINDS for row in values[kind]))   # CPU's rows first, then GPU's others
    lines = ["| benchmark | metric | " + " | ".join(KINDS.values()) + " |",
             "| --- | --- | " + " | ".join("---:" for _ in KINDS) + " |"]
    last = None
    for sec, metric in order:
        cells = [values[k].get((sec, metric), NOT_MEASURED) for k in KINDS]
        lines.append(f"| {sec if sec != last else ''} | {metric} | " + " | ".join(cells) + " |")
        last = sec
    lines.append("")
    for kind, label in KINDS.items():
        lines.append(f"- {label}: {hardware(found[kind])}")
    lines.append("")
    lines.append("Each number is mean ± std over the interleaved repeats of one run (ratios paired by repeat). "
                 "Commands and load averages of every measurement:")
    lines.append("")
    for kind in KINDS:
        for name, r in found[kind].items():
            env = r["environment"]
            lines.append(f"- `{r['command']}` ({KINDS[kind]}, {env['torch_threads']} threads, "
                         f"load average {env.get('load_average_start')} -> {env.get('load_average_end')})")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dir", default=str(HERE / "reported"), help="folder of benchmark JSON files")
    p.add_argument("--write", metavar="FILE", help=f"replace the text between {START} and {END} in FILE")
    args = p.parse_args(argv)
    table = render(load(Path(args.dir)))
    if not args.write:
        print(table, end="")
        return 0

    def write() -> None:
        update_readme(Path(args.write), table.removesuffix("\n"), START, END)
        print(f"updated {args.write}")
    return run_command(write, (ResultsError,))


if __name__ == "__main__":
    sys.exit(main())
