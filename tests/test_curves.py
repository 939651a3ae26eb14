"""Training curves as figures (issue 15.11): a marker at every epoch and whole-epoch ticks, so a
two-epoch run reads as two measurements."""
from __future__ import annotations

import pandas as pd

from ui.curves_tab import curve_figure


def _frame(epochs) -> pd.DataFrame:
    rows = [(e, 0.5 + 0.1 * e, f"mnist/run {split}") for e in epochs for split in ("train", "val")]
    return pd.DataFrame(rows, columns=["epoch", "value", "series"])


def test_two_epochs_are_two_marked_points_on_whole_epoch_ticks():
    fig = curve_figure(_frame([1, 2]), "accuracy")
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
    assert ticks == [1.0, 2.0]
    assert len(ax.lines) == 2
    for line in ax.lines:
        assert line.get_marker() == "o" and list(line.get_xdata()) == [1, 2]
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {"mnist/run train", "mnist/run val"}


def test_many_epochs_still_get_whole_ticks_and_an_empty_choice_says_so():
    ax = curve_figure(_frame(range(1, 41)), "loss").axes[0]
    lo, hi = ax.get_xlim()
    assert all(float(t).is_integer() for t in ax.get_xticks() if lo <= t <= hi)
    empty = curve_figure(pd.DataFrame(columns=["epoch", "value", "series"]), "loss").axes[0]
    assert [t.get_text() for t in empty.texts] == ["no run chosen"]
