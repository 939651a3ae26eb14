"""curves.png: accuracy and loss per epoch, train vs validation, from history rows."""
from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from models.atomic import atomic_write_bytes  # noqa: E402


def plot_curves(history: list[dict], title: str) -> bytes:
    epochs = [row["epoch"] for row in history]
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    for ax, key, name in ((ax_acc, "accuracy", "Accuracy"), (ax_loss, "loss", "Loss")):
        ax.plot(epochs, [r[f"train_{key}"] for r in history], marker="o", ms=3, label="train")
        ax.plot(epochs, [r[f"val_{key}"] for r in history], marker="o", ms=3, label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(name.lower())
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def write_curves(run_dir: Path, history: list[dict], title: str) -> Path:
    return atomic_write_bytes(Path(run_dir) / "curves.png", plot_curves(history, title))
