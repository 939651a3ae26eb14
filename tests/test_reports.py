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
