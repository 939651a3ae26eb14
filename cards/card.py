"""A run directory's facts -> a Hugging Face model card (README.md).

    read_facts(run_dir)  the only I/O: config.json, history.json, metrics.json,
                         examples/index.json, and whether curves.png exists; a
                         comparison (comparison.json of training.compare) is passed in
    render_card(facts)   pure: facts in, markdown out (YAML metadata + body)
    write_card(run_dir)  both, then README.md written atomically

Every number on the card comes from those files. The words and the formatting of numbers and
rows are cards/template.md (Jinja, rendered by huggingface_hub's ModelCard.from_template); the
task's and dataset's own words come from their records (models/tasks.py, models/registry.py).
Here are only the decisions: which facts go into the metadata, and what a card may claim.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from analysis.stats import comparison_markdown
from models.atomic import atomic_write_text
from models.jsonfile import JSONFileError, read_json
from models.registry import ALIASES, ARCHITECTURES
from models.tasks import RANDOM_ERASING, RANDOM_ERASING_CITATION, TASKS, Variant

TEMPLATE = Path(__file__).with_name("template.md").read_text(encoding="utf-8")  # read once: render_card does no I/O
CARD_FILE = "README.md"
# The project's license (LICENSE at the repo root), declared by every card and the Space, and
# uploaded with every Hub repo and Space (publish/).
LICENSE, LICENSE_FILE = "mit", "LICENSE"
HUB_CODE_FILE = "cnn_studio.py"   # the model's code, generated into each Hub repo (publish/hub_code.py)
BASE_TAGS = ["image-classification", "pytorch", "safetensors", "cnn-studio"]
# torchvision's ImageNet weights for --pretrained, as published on the Hub (timm hosts the same
# torchvision checkpoints, "tv_in1k" = IMAGENET1K_V1, "tv2_in1k" = IMAGENET1K_V2).
BASE_MODELS = {("resnet50", "IMAGENET1K_V1"): "timm/resnet50.tv_in1k",
               ("resnet50", "IMAGENET1K_V2"): "timm/resnet50.tv2_in1k"}


class CardError(ValueError):
    """The run directory lacks what a card needs; the message names the file."""


# --------------------------------------------------------------------------- I/O


def read_facts(run_dir: str | os.PathLike, *, source: str | None = None, hub: bool = False,
               code_url: str | None = None, comparison: dict | None = None,
               code_sha256: str | None = None) -> dict:
    """Everything the card shows, read from `run_dir` (and measured on its model). The only
    function here that does I/O.

    `source` is where the usage snippet loads the model from: with `hub`, a Hub repo id
    `user/name[@revision]` (the card of a pushed repo: its snippet runs the repo's cnn_studio.py,
    checked against `code_sha256` first, and timm where timm builds the architecture);
    otherwise the run directory (relative to the working directory when it lies below it, so
    that the card holds no absolute local paths), loaded with CNN Studio's `models/`.
    `code_url` links the card to the CNN Studio code. `comparison` is the baseline-vs-Random-
    Erasing comparison this run is part of (comparison.json, `analysis.stats.comparison_for_run`).
    """
    run_dir = Path(run_dir)
    if hub and not (source and code_sha256):
        raise CardError("a Hub card needs the repo id and the SHA-256 of the code it pins")
    config = _read_json(run_dir / "config.json", required=True)
    if not isinstance(config, dict):
        raise CardError(f"{run_dir / 'config.json'}: expected a JSON object")
    index = _read_json(run_dir / "examples" / "index.json")
    return {
        "config": config,
        "history": _read_json(run_dir / "history.json"),
        "metrics": _read_json(run_dir / "metrics.json"),
        "has_curves": (run_dir / "curves.png").is_file(),
        "examples": [e for e in (index or []) if (run_dir / "examples" / str(e.get("file", ""))).is_file()],
        "source": source or _display_path(run_dir),
        "name": source.partition("@")[0].split("/")[-1] if hub else config.get("run_name") or run_dir.name,
        "hub": hub,
        "code_sha256": code_sha256,
        "code_url": code_url,
        "comparison": comparison,
        "model_stats": model_stats(config),
    }


def model_stats(config: dict) -> dict | None:
    """Parameters, multiply-adds and input size of the architecture in config.json, measured by
    torchinfo on the model itself (random weights: the counts do not depend on them)."""
    import torch
    import torchinfo

    from models.registry import ModelConfig, create_model
    with torch.random.fork_rng(devices=[]):   # building the model draws random weights: leave no trace
        try:
            cfg = ModelConfig.from_dict(config)
            model = create_model(cfg).eval()
        except (TypeError, ValueError):
            return None
        size = [1, cfg.in_channels, cfg.input_size, cfg.input_size]
        stats = torchinfo.summary(model, input_size=size, verbose=0, device="cpu")
    return {"parameters": int(stats.total_params), "mult_adds": int(stats.total_mult_adds), "input_size": size}


def write_card(run_dir: str | os.PathLike, *, comparison: dict | None = None) -> Path:
    """Render the card of `run_dir` and write it to `run_dir/README.md` atomically."""
    return atomic_write_text(Path(run_dir) / CARD_FILE, render_card(read_facts(run_dir, comparison=comparison)))


def _read_json(path: Path, *, required: bool = False):
    if required and not path.is_file():
        raise CardError(f"{path}: missing (a model card needs the run's config.json)")
    try:
        return read_json(path)
    except JSONFileError as e:
        raise CardError(str(e)) from e


def _display_path(path: Path) -> str:
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.as_posix()


# --------------------------------------------------------------------------- what a card may claim


def subset_flags(config: dict) -> list[str]:
    """The --limit-* options a run used: non-empty means it saw only part of its data."""
    return [f"--{key.replace('_', '-')} {config[key]}" for key in ("limit_train", "limit_val")
            if config.get(key) is not None]


def evaluated_on_full_split(config: dict, metrics: dict | None) -> bool:
    """True only when metrics.json covers the whole evaluation split (no --limit-val)."""
    return bool(metrics) and config.get("limit_val") is None


def public_dataset(config: dict):
    """The task record's Dataset of the public dataset the run read (None for a local image folder)."""
    hub_id = (config.get("dataset") or {}).get("hub_id")
    return next((t.dataset for t in TASKS.values() if hub_id and t.dataset.hub_id == hub_id), None)


def architecture(config: dict):
    """The registry's record of the architecture config.json names (None for an unknown one)."""
    return ARCHITECTURES.get(ALIASES.get(config.get("architecture"), config.get("architecture")))


def timm_name(config: dict) -> str | None:
    """timm's name for the architecture, when timm builds the same state dict from this config.json
    (its timm keys, `pretrained_cfg`, are written since models/registry.py's timm layout)."""
    arch = architecture(config)
    return arch.timm_name if arch and isinstance(config.get("pretrained_cfg"), dict) else None


def card_data(facts: dict) -> ModelCardData:
    """The YAML metadata: license, library, tags, datasets, base model, metrics and the model-index.

    The model-index holds only an evaluation of a whole public split: a --limit-val subset and a
    run on a local image folder (no public split to compare with) are never listed there (the
    card's text reports them). `datasets` lists public Hub datasets only. `library_name: timm` is
    declared for a Hub repo whose weights and config.json `timm.create_model("hf-hub:...")` loads.
    """
    config, metrics = facts["config"], facts.get("metrics")
    public = public_dataset(config)
    eval_results = None
    if public and metrics and metrics.get("accuracy") is not None and evaluated_on_full_split(config, metrics):
        eval_results = [EvalResult(
            task_type="image-classification", task_name="Image Classification", dataset_type=public.hub_id,
            dataset_name=f"{public.name} ({metrics.get('split')} split, {metrics.get('num_images') or 0:,} images)",
            dataset_config=public.hub_config, dataset_split=metrics.get("split"),
            metric_type="accuracy", metric_name="Accuracy", metric_value=metrics["accuracy"])]
    base = base_model(config)
    library = "timm" if facts.get("hub") and timm_name(config) else None
    return ModelCardData(
        license=LICENSE, library_name=library, tags=tags(config, library), pipeline_tag="image-classification",
        datasets=[public.hub_id] if public else None, base_model=base,
        base_model_relation="finetune" if base else None, metrics=["accuracy"],
        model_name=facts.get("name") or config.get("run_name") or "model", eval_results=eval_results,
    )


def base_model(config: dict) -> str | None:
    """The Hub repo of the pretrained weights training started from (--pretrained), if any."""
    pretrained = (config.get("recipe") or {}).get("pretrained")
    return BASE_MODELS.get((config.get("architecture"), pretrained)) if pretrained else None


def tags(config: dict, library: str | None = None) -> list[str]:
    public = public_dataset(config)
    extra = [library, config.get("architecture"), config.get("task"),
             public.hub_id.split("/")[-1].lower() if public else None,
             "random-erasing" if random_erasing_params(config) is not None else None]
    return list(dict.fromkeys(BASE_TAGS + [str(e) for e in extra if e]))


def random_erasing_params(config: dict) -> dict | None:
    """The Random Erasing settings of a Random Erasing run's recipe ({} if it lists none);
    None for a baseline. Which variant a run is, config.json's "variant" says."""
    if Variant.of(config) is not RANDOM_ERASING:
        return None
    return ((config.get("recipe") or {}).get("augment") or {}).get("random_erasing") or {}


def flatten(d: dict, prefix: str = "") -> list[tuple[str, object]]:
    """{"a": {"b": 1}, "c": None} -> [("a.b", 1), ("c", None)]: every leaf, in order."""
    out: list[tuple[str, object]] = []
    for key, value in d.items():
        if isinstance(value, dict) and value:
            out += flatten(value, f"{prefix}{key}.")
        else:
            out.append((f"{prefix}{key}", value))
    return out


# --------------------------------------------------------------------------- pure


def render_card(facts: dict) -> str:
    """The whole README.md for `facts` (as read_facts returns them). Pure: no I/O."""
    config = facts["config"]
    labels = [str(v) for v in config.get("labels", [])]
    arch = architecture(config)
    re_params = random_erasing_params(config)
    public = public_dataset(config)
    history = facts.get("history") or []
    repo_id, _, revision = str(facts.get("source", "")).partition("@")
    card = ModelCard.from_template(
        card_data(facts), template_str=TEMPLATE, facts=facts, c=config, labels=labels,
        dataset=config.get("dataset") or {}, public=public, arch=arch, task=TASKS.get(config.get("task")),
        metrics=facts.get("metrics") or None, history=history, re_params=re_params,
        history_columns=list(dict.fromkeys(k for row in history for k in row)),
        recipe=flatten(config.get("recipe") or {}), full_split=evaluated_on_full_split(config, facts.get("metrics")),
        subset=subset_flags(config), timm=timm_name(config) if facts.get("hub") else None,
        repo_id=repo_id, revision=revision or None, code_file=HUB_CODE_FILE, license_file=LICENSE_FILE,
        comparison=comparison_markdown(facts["comparison"]) if facts.get("comparison") else "",
        bibtex=[b for b in (arch and arch.bibtex, re_params is not None and RANDOM_ERASING_CITATION,
                            public and public.citation) if b])
    text = re.sub(r"\n{3,}", "\n\n", str(card))  # the template's optional sections leave blank runs
    return text.rstrip("\n") + "\n"
