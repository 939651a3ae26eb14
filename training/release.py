"""The files a finished run leaves for the app and the Hub: metrics, predictions, release
weights and config, curves, examples and the model card (docs/run-directory.md)."""
from __future__ import annotations

from itertools import islice
from pathlib import Path

from matplotlib.figure import Figure
from torchvision.transforms.v2.functional import to_pil_image

from models.artifact import save_release
from models.atomic import atomic_write, atomic_write_json
from training.gallery import write_gallery
from training.data import Split


def save_examples(run_dir: Path, val: Split, labels: tuple[str, ...], per_class: int) -> list[dict]:
    """A few validation images per class as PNG, for the app's examples; index.json lists them."""
    folder = run_dir / "examples"   # created by the first atomic_write into it
    entries = []
    for class_id, label in enumerate(labels):
        found = ((pos, val.image(pos)) for pos in (val.labels == class_id).nonzero().flatten().tolist())
        chosen = list(islice(((pos, img) for pos, img in found if img is not None), per_class))
        for k, (pos, img) in enumerate(chosen):
            # Named by class number: a class name from a user's folder may not be a safe file name.
            name = f"{class_id:02d}_{k}.png"
            atomic_write(folder / name, lambda p, im=to_pil_image(img): im.save(p, format="PNG"))
            entries.append({"file": name, "label": label, "index": int(val.indices[pos])})
    atomic_write_json(folder / "index.json", entries)
    return entries


def write_curves(run_dir: Path, history: list[dict], title: str) -> None:
    """curves.png: accuracy and loss per epoch, train vs validation."""
    epochs = [row["epoch"] for row in history]
    fig = Figure(figsize=(10, 4), dpi=100)
    for ax, key in zip(fig.subplots(1, 2), ("accuracy", "loss")):
        ax.plot(epochs, [r[f"train_{key}"] for r in history], marker="o", ms=3, label="train")
        ax.plot(epochs, [r[f"val_{key}"] for r in history], marker="o", ms=3, label="validation")
        ax.set(xlabel="epoch", ylabel=key, title=key.capitalize())
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    atomic_write(run_dir / "curves.png", lambda p: fig.savefig(p, format="png"))


def metrics_record(ev: dict, config: dict) -> dict:
    """metrics.json: the final evaluation on the run's validation split (training.evaluate writes it too)."""
    return {"accuracy": ev["accuracy"], "loss": ev["loss"], "split": config["dataset"]["val_split"],
            "num_images": ev["num_images"], "labels": config["labels"],
            "per_class_accuracy": ev["per_class_accuracy"], "confusion_matrix": ev["confusion_matrix"]}


def predictions_record(ev: dict, val_split: Split, config: dict) -> dict:
    """predictions.json: one row per validation image, in split order."""
    probs = ev["probabilities"]
    return {"split": config["dataset"]["val_split"],
            "indices": val_split.indices[ev["positions"]].tolist(),
            "labels": val_split.labels[ev["positions"]].tolist(),
            "predicted": probs.argmax(dim=1).tolist(),
            "probabilities": [[round(float(p), 6) for p in row] for row in probs]}


def write_release(run_dir: Path, model, config: dict, history: list[dict], ev: dict, val_split: Split) -> None:
    """Write the release files: metrics, predictions, weights + config, curves, card."""
    metrics = {**metrics_record(ev, config), "epoch": history[-1]["epoch"] if history else 0}
    atomic_write_json(run_dir / "metrics.json", metrics)
    record = predictions_record(ev, val_split, config)
    atomic_write_json(run_dir / "predictions.json", record)
    # The misclassified validation images, for the app's See why galleries without the dataset.
    position = {int(index): pos for pos, index in enumerate(val_split.indices.tolist())}
    write_gallery(run_dir, record, lambda index: val_split.image(position[index]))
    title = f"{config['task']} ({config['variant']}), {config['architecture']}"
    write_curves(run_dir, history, title)
    save_release(run_dir, model, config)   # last but the card: its SHA256SUMS lists the files above
    from cards import write_card
    write_card(run_dir)
    print(f"done: {run_dir}  val accuracy {metrics['accuracy']:.4f} on {metrics['num_images']} images")
