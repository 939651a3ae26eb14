"""A run directory's facts -> a Hugging Face model card (README.md).

    read_facts(run_dir)  the only I/O: config.json, history.json, metrics.json,
                         examples/index.json, and whether curves.png exists; a
                         comparison (comparison.json of training.compare) is passed in
    render_card(facts)   pure: facts in, markdown out (YAML metadata + body)
    write_card(run_dir)  both, then README.md written atomically

Every number on the card comes from those files; the text around them is in
cards/template.md (Jinja, rendered by huggingface_hub's ModelCard.from_template).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from models.atomic import atomic_write_text
from models.jsonfile import JSONFileError, read_json
from models.registry import ARCHITECTURES
from models.tasks import RANDOM_ERASING, RANDOM_ERASING_CITATION, TASKS, Variant

TEMPLATE_PATH = Path(__file__).with_name("template.md")
TEMPLATE = TEMPLATE_PATH.read_text(encoding="utf-8")  # read once, so render_card does no I/O
CARD_FILE = "README.md"
LICENSE = "mit"
# No library_name: the Hub's list of libraries (huggingface.js model-libraries.ts) has none
# that loads these repos ("pytorch" is not in it), and a wrong one shows a snippet that fails.
# The repo carries its own loader instead (cnn_studio.py, publish/hub_code.py; docs/hub.md).
BASE_TAGS = ["image-classification", "pytorch", "safetensors", "cnn-studio"]
HUB_CODE_FILE = "cnn_studio.py"   # written into each Hub repo by publish.hub push
# torchvision's ImageNet weights for --pretrained, as published on the Hub (timm hosts the same
# torchvision checkpoints, "tv_in1k" = IMAGENET1K_V1, "tv2_in1k" = IMAGENET1K_V2).
BASE_MODELS = {("resnet50", "IMAGENET1K_V1"): "timm/resnet50.tv_in1k",
               ("resnet50", "IMAGENET1K_V2"): "timm/resnet50.tv2_in1k"}
RANDOM_ERASING_REFERENCE = ("Z. Zhong, L. Zheng, G. Kang, S. Li, Y. Yang. *Random Erasing Data "
                            "Augmentation*. AAAI 2020. [arXiv:1708.04896](https://arxiv.org/abs/1708.04896)")
HISTORY_COLUMNS = [  # key, header, format
    ("epoch", "epoch", "int"),
    ("train_loss", "train loss", "loss"),
    ("train_accuracy", "train accuracy", "pct"),
    ("val_loss", "val loss", "loss"),
    ("val_accuracy", "val accuracy", "pct"),
    ("lr", "learning rate", "lr"),
    ("seconds", "seconds", "sec"),
    ("images_per_s", "images/s", "rate"),
]
REPRO_KEYS = [("seed", "seed"), ("init_sha256", "initial weights SHA-256"), ("device", "device"),
              ("precision", "training arithmetic (evaluation: fp32)"), ("run_name", "run name"),
              ("created", "created")]


def _machine_rows(hardware: dict | None) -> list[tuple[str, str]]:
    """The machine the seconds and images/s of the history were measured on (config.json's `hardware`)."""
    if not hardware:
        return []
    if hardware.get("gpu"):
        machine = f"{hardware['gpu']} (host CPU: {hardware.get('cpu', '?')})"
    else:
        bf16 = hardware.get("bf16_instructions") or ("amx" if hardware.get("bf16_matrix_units") else None)
        machine = (f"{hardware.get('cpu', '?')}, {hardware.get('cpu_cores', '?')} cores, "
                   f"{f'bf16 instructions: {bf16}' if bf16 else 'no bf16 instructions'}, "
                   f"{hardware.get('torch_threads', '?')} torch threads")
    return [("machine (the timings above)", _cell(machine))]


class CardError(ValueError):
    """The run directory lacks what a card needs; the message names the file."""


# --------------------------------------------------------------------------- I/O


def read_facts(run_dir: str | os.PathLike, *, source: str | None = None, hub: bool = False,
               code_url: str | None = None, comparison: dict | None = None) -> dict:
    """Everything the card shows, read from `run_dir` (and measured on its model). The only
    function here that does I/O.

    `source` is where the usage snippet loads the model from: with `hub`, a Hub repo id
    `user/name[@revision]` (the card of a pushed repo, whose snippet needs only torch,
    torchvision, safetensors and huggingface_hub); otherwise the run directory (relative to the
    working directory when it lies below it, so that the card holds no absolute local paths),
    loaded with CNN Studio's `models/`. `code_url` links the card to the CNN Studio code.
    `comparison` is the baseline-vs-Random-Erasing comparison this run is part of
    (comparison.json's content, `analysis.stats.comparison_for_run`), shown as its own section.
    """
    run_dir = Path(run_dir)
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
        "hub": bool(hub and source),
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


def write_card(run_dir: str | os.PathLike, *, source: str | None = None, comparison: dict | None = None) -> Path:
    """Render the card of `run_dir` and write it to `run_dir/README.md` atomically."""
    text = render_card(read_facts(run_dir, source=source, comparison=comparison))
    return atomic_write_text(Path(run_dir) / CARD_FILE, text)


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


# --------------------------------------------------------------------------- pure


def subset_flags(config: dict) -> list[str]:
    """The --limit-* options a run used: non-empty means it saw only part of its data."""
    return [f"--{key.replace('_', '-')} {config[key]}" for key in ("limit_train", "limit_val")
            if config.get(key) is not None]


def evaluated_on_full_split(config: dict, metrics: dict | None) -> bool:
    """True only when metrics.json covers the whole evaluation split (no --limit-val)."""
    return bool(metrics) and config.get("limit_val") is None


def card_data(facts: dict) -> ModelCardData:
    """The YAML metadata: license, tags, datasets, base model, metrics and the model-index.

    The model-index holds only evaluations of the whole split: a --limit-val subset is never
    listed there (the card's text reports it, with its size).
    """
    config, metrics = facts["config"], facts.get("metrics")
    dataset = config.get("dataset") or {}
    hub_id = dataset.get("hub_id")
    eval_results = None
    if metrics and metrics.get("accuracy") is not None and evaluated_on_full_split(config, metrics):
        eval_results = [EvalResult(
            task_type="image-classification", task_name="Image Classification",
            dataset_type=hub_id or _slug(dataset.get("name") or config.get("task", "dataset")),
            dataset_name=dataset.get("name") or hub_id or config.get("task", "dataset"),
            dataset_config=dataset.get("hub_config"), dataset_split=metrics.get("split"),
            dataset_args={"num_images": metrics.get("num_images")},
            metric_type="accuracy", metric_name="Accuracy", metric_value=metrics["accuracy"],
        )]
    base = base_model(config)
    return ModelCardData(
        license=LICENSE, tags=tags(config),
        pipeline_tag="image-classification", datasets=[hub_id] if hub_id else None,
        base_model=base, base_model_relation="finetune" if base else None,
        metrics=["accuracy"], model_name=model_name(config), eval_results=eval_results,
    )


def base_model(config: dict) -> str | None:
    """The Hub repo of the pretrained weights training started from (--pretrained), if any."""
    pretrained = (config.get("recipe") or {}).get("pretrained")
    return BASE_MODELS.get((config.get("architecture"), pretrained)) if pretrained else None


def render_card(facts: dict) -> str:
    """The whole README.md for `facts` (as read_facts returns them). Pure: no I/O."""
    card = ModelCard.from_template(card_data(facts), template_str=TEMPLATE,
                                   **template_context(facts))
    text = str(card)
    while "\n\n\n" in text:  # the template's optional sections leave blank runs
        text = text.replace("\n\n\n", "\n\n")
    return text.rstrip("\n") + "\n"


def template_context(facts: dict) -> dict:
    """The values the template shows, already formatted (strings and rows of strings)."""
    config = facts["config"]
    history = facts.get("history") or []
    metrics = facts.get("metrics") or None
    dataset = config.get("dataset") or {}
    labels = [str(v) for v in config.get("labels", [])]
    arch = config.get("architecture", "?")
    arch_name = ARCHITECTURES[arch].title if arch in ARCHITECTURES else arch
    data_name = dataset.get("name") or config.get("task", "?")
    re_params = random_erasing_params(config)

    title = f"{arch_name} on {data_name}" + (" with Random Erasing" if re_params else "")
    summary = f"An image classifier trained on {data_name}, with {len(labels)} classes ({', '.join(labels)})"
    if metrics and metrics.get("accuracy") is not None:
        where = (f"the {metrics.get('split', '?')} split" if evaluated_on_full_split(config, metrics)
                 else f"a subset of the {metrics.get('split', '?')} split")
        summary += f": {_pct(metrics['accuracy'])} accuracy on {where} ({_int(metrics.get('num_images'))} images)."
    else:
        summary += "."
    subset = subset_flags(config)
    partial_text = ""
    if subset:
        partial_text = (f"**A partial run:** trained and/or evaluated on a seeded subset of the data "
                        f"({', '.join(f'`{f}`' for f in subset)}). Its numbers describe that subset, not the "
                        f"recipe's result on the full {data_name} splits, and they are not listed in this "
                        f"card's evaluation metadata.")

    return {
        "title": title,
        "summary": summary,
        "num_classes": config.get("num_classes", len(labels)),
        "partial_text": partial_text,
        "model_rows": _model_rows(config, arch, arch_name, labels, facts.get("model_stats")),
        "architecture_text": _architecture_text(config, arch, labels),
        "intended_use": getattr(TASKS.get(config.get("task")), "intended_use", "")
                        or "Classifying images into the labels above.",
        "eval_scope": _eval_scope(metrics, dataset, config),
        "data_text": _data_text(dataset),
        "data_rows": _data_rows(dataset, config),
        "recipe_rows": [(k, _cell(_value(v))) for k, v in flatten(config.get("recipe") or {})],
        "random_erasing_text": _random_erasing_text(re_params),
        "repro_rows": [(label, f"`{config[k]}`" if k == "init_sha256" else _cell(_value(config[k])))
                       for k, label in REPRO_KEYS if k in config] + _machine_rows(config.get("hardware")),
        "history_header": [h for k, h, _ in _history_columns(history)],
        "history_rows": [[_fmt(row.get(k), f) for k, _, f in _history_columns(history)] for row in history],
        "has_curves": bool(facts.get("has_curves")),
        "eval_text": _eval_text(metrics, config) if metrics else "",
        "per_class_rows": _per_class_rows(metrics) if metrics else [],
        "confusion_header": [_cell(v) for v in _metric_labels(metrics, labels)] if metrics else [],
        "confusion_rows": _confusion_rows(metrics, labels) if metrics else [],
        "comparison_text": _comparison_text(facts.get("comparison")),
        "usage_snippet": usage_snippet(facts),
        "usage_text": _usage_text(facts),
        "code_text": _code_text(facts),
        "version_rows": [(k, _cell(_value(v))) for k, v in (config.get("versions") or {}).items()],
        "references": [r for r in (getattr(ARCHITECTURES.get(arch), "reference", ""),
                                    RANDOM_ERASING_REFERENCE if re_params else None) if r],
        "bibtex": "\n\n".join(b for b in (getattr(ARCHITECTURES.get(arch), "bibtex", ""),
                                           RANDOM_ERASING_CITATION if re_params else None) if b),
    }


def _comparison_text(comparison: dict | None) -> str:
    if not comparison:
        return ""
    from analysis.stats import comparison_markdown
    return (f"Baseline and Random Erasing were trained for each seed from the same initial weights "
            f"({comparison.get('epochs', '?')} epoch(s) each, `python -m training.compare`); "
            f"numbers from `comparison.json` on the {comparison.get('split', '?')} split.\n\n"
            + comparison_markdown(comparison))


def usage_snippet(facts: dict) -> str:
    """Python that loads the weights and classifies an image; it runs as written.

    For a Hub repo: torch, torchvision, safetensors and huggingface_hub only (the repo's
    cnn_studio.py builds the model); for a run directory: CNN Studio's models/ package.
    """
    if facts.get("hub"):
        return _hub_snippet(facts)
    config = facts["config"]
    source = json.dumps(str(facts.get("source", ".")), allow_nan=False)
    examples = facts.get("examples") or []
    lines = ["from models.artifact import load_model",
             "from models.predict import predict_probs"]
    if examples:
        image = (f'image = loaded.root / "examples" / {json.dumps(str(examples[0]["file"]), allow_nan=False)}'
                 "  # or any image file, bytes, PIL image or array")
    else:
        lines.append("from PIL import Image")
        size = int(config.get("input_size", 32))
        mode = "L" if config.get("in_channels") == 1 else "RGB"
        image = (f'image = Image.effect_noise(({size}, {size}), 64).convert("{mode}")  '
                 '# replace with your image: a path, bytes or PIL image')
    lines += ["",
              f"loaded = load_model({source})  # a run directory, or a Hub repo id user/name[@revision]",
              image,
              "probs = predict_probs(loaded.model, loaded.config, image)  # {label: probability}",
              "print(max(probs, key=probs.get), probs)"]
    return "\n".join(lines)


def _hub_snippet(facts: dict) -> str:
    repo_id, _, revision = str(facts["source"]).partition("@")
    rev = f", revision={json.dumps(revision, allow_nan=False)}" if revision else ""
    examples = facts.get("examples") or []
    lines = ["import importlib.util",
             "",
             "from huggingface_hub import hf_hub_download"]
    if not examples:
        lines.append("from PIL import Image")
    lines += ["",
             f"repo_id = {json.dumps(repo_id, allow_nan=False)}",
             f"# the model's code (torch + torchvision) is {HUB_CODE_FILE} in the repo, next to its weights",
             f"code = hf_hub_download(repo_id, {json.dumps(HUB_CODE_FILE, allow_nan=False)}{rev})",
             'spec = importlib.util.spec_from_file_location("cnn_studio", code)',
             "cnn_studio = importlib.util.module_from_spec(spec)",
             "spec.loader.exec_module(cnn_studio)",
             "",
             f"model = cnn_studio.from_pretrained(repo_id{rev})  # config.json + model.safetensors, strict"]
    if examples:
        example = json.dumps(f"examples/{examples[0]['file']}", allow_nan=False)
        lines.append(f"image = hf_hub_download(repo_id, {example}{rev})  # or any image path or PIL image")
    else:
        size = int(facts["config"].get("input_size", 32))
        mode = "L" if facts["config"].get("in_channels") == 1 else "RGB"
        lines.append(f'image = Image.effect_noise(({size}, {size}), 64).convert("{mode}")  '
                     '# replace with your image: a path or PIL image')
    lines += ["probs = model.classify(image)  # {label: probability}", "print(probs)"]
    return "\n".join(lines)


def _usage_text(facts: dict) -> str:
    if facts.get("hub"):
        return (f"With `torch`, `torchvision`, `safetensors` and `huggingface_hub` installed (no CNN Studio "
                f"code needed): `{HUB_CODE_FILE}` in this repo rebuilds the architecture from `config.json`, "
                f"loads `model.safetensors` strictly and prepares an image exactly as the model was "
                f"evaluated. Read it before running it, as with any code from a repo.")
    return ("With the CNN Studio code on the Python path (`models/` is all it needs; no training code). "
            "`load_model` accepts a local run directory or a Hub repo id (`user/name`, optionally "
            "`user/name@revision`); it reads `config.json`, then loads `model.safetensors` strictly and "
            "checks it for shapes and finite values.")


def _code_text(facts: dict) -> str:
    version = (facts["config"].get("versions") or {}).get("cnn_studio")
    name = f"CNN Studio {version}" if version else "CNN Studio"
    if facts.get("code_url"):
        return f"Trained with [{name}]({facts['code_url']}) (`python -m training.train`)."
    return f"Trained with {name} (`python -m training.train`)."


def tags(config: dict) -> list[str]:
    dataset = config.get("dataset") or {}
    extra = [config.get("architecture"), config.get("task")]
    if dataset.get("hub_id"):
        extra.append(dataset["hub_id"].split("/")[-1].lower())
    if random_erasing_params(config):
        extra.append("random-erasing")
    out: list[str] = []
    for t in BASE_TAGS + [str(e) for e in extra if e]:
        if t not in out:
            out.append(t)
    return out


def model_name(config: dict) -> str:
    return f"cnn-studio-{Variant.of(config).task_folder(config.get('task', 'model'))}"


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
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out += flatten(value, name + ".")
        else:
            out.append((name, value))
    return out


# --------------------------------------------------------------------------- pieces


def _model_rows(config: dict, arch: str, arch_name: str, labels: list[str],
                stats: dict | None = None) -> list[tuple[str, str]]:
    rows = [("architecture", f"{arch_name} (`{arch}`)")]
    if stats:
        rows.append(("parameters", f"{_int(stats['parameters'])} (torchinfo)"))
        rows.append(("multiply-adds", f"{stats['mult_adds'] / 1e6:,.1f} M per image (torchinfo)"))
        rows.append(("input size", "×".join(str(v) for v in stats["input_size"]) + " (N×C×H×W)"))
    elif config.get("parameters") is not None:
        rows.append(("parameters", _int(config["parameters"])))
    c, s = config.get("in_channels"), config.get("input_size")
    channels = {1: "grayscale", 3: "RGB"}.get(c, f"{c} channels")
    inp = f"{channels}, {s}×{s} pixels ({c}×{s}×{s} tensor)"
    if config.get("resize_size"):
        inp += f"; shorter side resized to {config['resize_size']}, then centre-cropped"
    rows.append(("input", inp))
    rows.append(("normalisation", f"mean {_value(config.get('mean'))}, std {_value(config.get('std'))}"))
    if labels == [str(i) for i in range(len(labels))]:
        rows.append(("labels", _cell(", ".join(labels))))
    else:
        rows.append(("labels", _cell(", ".join(f"{i}: {name}" for i, name in enumerate(labels)))))
    if len(labels) == 2:
        out = f"one logit; sigmoid gives P({labels[1]})"
    else:
        out = f"{len(labels)} logits; softmax gives the class probabilities"
    rows.append(("output", _cell(out)))
    for key in ("task", "variant"):
        if config.get(key):
            rows.append((key, f"`{config[key]}`"))
    rows.append(("weights", "`model.safetensors` (final epoch)"))
    return rows


def _architecture_text(config: dict, arch: str, labels: list[str]) -> str:
    desc = ARCHITECTURES[arch].description if arch in ARCHITECTURES else arch
    text = f"Architecture: {desc} (`models/registry.py` builds it from `config.json`)."
    if len(labels) == 2:
        text += (f" The head outputs one logit, trained with `BCEWithLogitsLoss`; sigmoid is applied "
                 f"once, at inference, and gives P({labels[1]}); P({labels[0]}) = 1 − P({labels[1]}).")
    return text


def _data_text(dataset: dict) -> str:
    name = dataset.get("name", "?")
    text = f"**{name}**"
    if dataset.get("hub_id"):
        text += f" ([`{dataset['hub_id']}`](https://huggingface.co/datasets/{dataset['hub_id']}))"
    if dataset.get("source"):
        text += f", read with `{dataset['source']}`"
    return text + "."


def _data_rows(dataset: dict, config: dict) -> list[tuple[str, str]]:
    rows = []
    for split_key, count_key, what in (("train_split", "train_images", "training"),
                                       ("val_split", "val_images", "validation")):
        if split_key in dataset or count_key in dataset:
            split = dataset.get(split_key, "?")
            count = _int(dataset[count_key]) if dataset.get(count_key) is not None else "?"
            rows.append((f"{what} images", f"{count} (split `{split}`)"))
    shown = {"name", "hub_id", "source", "train_split", "val_split", "train_images", "val_images"}
    rows += [(k.replace("_", " "), _cell(_value(v))) for k, v in dataset.items() if k not in shown]
    for key, flag in (("limit_train", "--limit-train"), ("limit_val", "--limit-val")):
        if config.get(key) is not None:
            rows.append((f"`{flag}`", f"{_int(config[key])} (a seeded subset of the split)"))
    return rows


def _eval_scope(metrics: dict | None, dataset: dict, config: dict) -> str:
    if not metrics:
        return "The model has not been evaluated yet (no `metrics.json`)."
    n = metrics.get("num_images")
    split = metrics.get("split", "?")
    text = (f"The accuracy below is measured on {_int(n)} images of the `{split}` split of "
            f"{dataset.get('name', 'the dataset')}")
    if not evaluated_on_full_split(config, metrics):
        text += f" (a seeded subset chosen by `--limit-val {config.get('limit_val')}`, not the whole split)"
    return text + "; it says little about images from other sources."


def _eval_text(metrics: dict, config: dict) -> str:
    scope = "" if evaluated_on_full_split(config, metrics) else "a subset of "
    parts = [f"Accuracy **{_pct(metrics.get('accuracy'))}** on {_int(metrics.get('num_images'))} images "
             f"of {scope}the `{metrics.get('split', '?')}` split"]
    if metrics.get("epoch") is not None:
        parts.append(f"after epoch {metrics['epoch']}")
    text = ", ".join(parts)
    if metrics.get("loss") is not None:
        text += f"; loss {_fmt(metrics['loss'], 'loss')}"
    return text + "."


def _metric_labels(metrics: dict, labels: list[str]) -> list[str]:
    return [str(v) for v in (metrics.get("labels") or labels)]


def _per_class_rows(metrics: dict) -> list[tuple[str, str]]:
    per_class = metrics.get("per_class_accuracy") or {}
    return [(_cell(k), _pct(v)) for k, v in per_class.items()]


def _confusion_rows(metrics: dict, labels: list[str]) -> list[list[str]]:
    matrix = metrics.get("confusion_matrix") or []
    names = _metric_labels(metrics, labels)
    return [[f"**{_cell(names[i]) if i < len(names) else i}**"] + [_int(v) for v in row]
            for i, row in enumerate(matrix)]


def _random_erasing_text(params: dict | None) -> str:
    if params is None:
        return ""
    text = ("This run adds Random Erasing (Zhong et al.) to the training batches only, after "
            "normalisation, with a rectangle drawn independently for every image; validation "
            "images are never erased.")
    if params:
        scale, ratio = params.get("scale"), params.get("ratio")
        details = []
        if "p" in params:
            details.append(f"probability p = {params['p']}")
        if scale:
            details.append(f"erased area {scale[0]}–{scale[1]} of the image")
        if ratio:
            details.append(f"aspect ratio {ratio[0]}–{ratio[1]}")
        if "value" in params:
            fill = params["value"]
            details.append("fill: random values" if fill == "random" else f"fill value {fill}")
        known = {"p", "scale", "ratio", "value"}
        details += [f"{k} = {_value(v)}" for k, v in params.items() if k not in known]
        text += " Parameters: " + "; ".join(details) + "."
    text += (" A baseline run of the same task with the same seed starts from the same initial "
             "weights (compare `init_sha256`) and differs only in this augmentation.")
    return text


def _history_columns(history: list[dict]) -> list[tuple[str, str, str]]:
    present = {k for row in history for k in row}
    cols = [c for c in HISTORY_COLUMNS if c[0] in present]
    known = {c[0] for c in HISTORY_COLUMNS}
    extra = [k for row in history for k in row if k not in known]
    cols += [(k, k.replace("_", " "), "auto") for k in dict.fromkeys(extra)]
    return cols


# --------------------------------------------------------------------------- formatting


def _fmt(v, kind: str) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return _cell(_value(v))
    if kind == "pct":
        return _pct(v)
    if kind == "loss":
        return f"{v:.4f}"
    if kind == "lr":
        return f"{v:.4g}"
    if kind == "sec":
        return f"{v:.1f}"
    if kind == "rate":
        return f"{v:,.0f}"
    if kind == "int":
        return _int(v)
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.2f}%"


def _int(v) -> str:
    return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else ("?" if v is None else str(v))


def _value(v) -> str:
    if isinstance(v, str):
        return v
    if v is None:
        return "none"
    return json.dumps(v, allow_nan=False)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in str(text).lower()).strip("-")
