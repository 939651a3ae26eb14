"""The performance table of benchmarks/README.md is the one benchmarks/report.py renders from the
stored benchmark results: no figure in it is typed by hand or left stale."""
from __future__ import annotations

import re

from benchmarks import report
from tests.conftest import REPO


def test_readme_performance_table_is_rendered_from_the_reported_json():
    readme = (REPO / "benchmarks" / "README.md").read_text()
    section = re.search(re.escape(report.START) + r"\n(.*?)" + re.escape(report.END), readme, flags=re.S)
    assert section, "benchmarks/README.md lacks the performance markers"
    expected = report.render(report.load(REPO / "benchmarks" / "reported"))
    assert section.group(1) == expected, "run: python benchmarks/report.py --write benchmarks/README.md"


def test_every_reported_result_names_its_command_and_machine():
    found = report.load(REPO / "benchmarks" / "reported")
    assert found["cpu"], "no CPU results in benchmarks/reported"
    for kind, results in found.items():
        for name, r in results.items():
            env = r["environment"]
            assert r["command"] and env["versions"]["torch"] and env["device"], name
            assert (env["gpu"] is not None) == (kind == "cuda"), name


def test_serve_reports_each_endpoint_against_floor_plus_bare_models():
    """Issue 25.2: p50 against floor p50 + bare model p50, throughput against 1 / (1/floor + 1/model),
    paired by repeat, with the answers that differ from the bare models; in the JSON and the table."""
    from argparse import Namespace

    from benchmarks import serve
    phase = lambda p50, throughput: {"p50_ms": p50, "p95_ms": p50, "throughput": throughput, "calls": 4,  # noqa: E731
                                     "failures": [], "mismatches": []}
    phases = {("classify_catdog", 16, "app"): [phase(300.0, 4.0), phase(330.0, 4.5)],
              ("classify_catdog", 16, "floor"): [phase(100.0, 10.0), phase(110.0, 10.0)],
              ("classify_catdog", "model"): [{"p50_ms": 100.0, "throughput": 10.0, "best_batch": 8},
                                             {"p50_ms": 110.0, "throughput": 10.0, "best_batch": 8}],
              ("classify_catdog", "differing"): []}
    results = serve.summarise(Namespace(endpoints=["classify_catdog"], clients=[16]), phases)
    entry = results["classify_catdog"]["16"]
    assert entry["ratios"]["p50_vs_yardstick"]["values"] == [1.5, 1.5]
    assert entry["ratios"]["throughput_vs_limit"]["values"] == [0.8, 0.9]
    assert entry["model"]["differing_answers"] == 0
    payload = {"results": results, "requests": 2, "repeats": 2, "targets": {"p50_ratio_max": 1.2,
                                                                             "throughput_ratio_min_at_16": 0.9}}
    rows = {metric: value for _, metric, value in report.serve_rows("serve", payload)}
    [row] = [value for metric, value in rows.items() if "app / (floor + bare models)" in metric]
    assert row == "315 / 210 · **1.50x** ± 0.00 · 4.25 / 5.00 · **0.85x** ± 0.07 · 0"
    [met] = [value for metric, value in rows.items() if metric.startswith("yardstick targets (p50 <= 1.15x")]
    assert met == "p50 1.50x at 16 NOT met; throughput 0.85x at 16 NOT met"


def test_serve_compares_the_apps_probabilities_with_the_bare_models():
    from benchmarks import serve
    answer = serve.leaves([None, {"label": "cat", "confidences": [{"label": "cat", "confidence": 0.75},
                                                                   {"label": "dog", "confidence": 0.25}]},
                           {"label": "dog", "confidences": [{"label": "dog", "confidence": 0.5},
                                                            {"label": "cat", "confidence": 0.5}]}])
    assert serve.confidences(answer) == [{"cat": 0.75, "dog": 0.25}, {"dog": 0.5, "cat": 0.5}]
    assert serve.differences({"cat": 0.75}, {"cat": 0.75 + 1e-6}, 1e-5) == []
    assert serve.differences({"cat": 0.75}, {"cat": 0.76}, 1e-5) == ["cat: 0.75 != 0.76"]
