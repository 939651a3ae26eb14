"""Model cards: render_card is a pure function of the run's facts; write_card writes README.md.

The hand-made facts below have the shape docs/run-directory.md fixes; the last tests use a
real tiny training run (tests/conftest.py: mnist_run, catsdogs_re_run) and run the card's usage snippet.
"""
from __future__ import annotations

import ast
import builtins
import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from cards import CardError, read_facts, render_card, write_card
from cards.card import flatten
from models.artifact import save_release
from models.registry import create_model
from models.tasks import BASELINE, RANDOM_ERASING, get_task
from training.data import Source

REPO_ROOT = Path(__file__).resolve().parents[1]
BASE_TAGS = {"image-classification", "pytorch", "safetensors", "cnn-studio"}


def make_config(task_name: str = "mnist", *, random_erasing: bool = False) -> dict:
    """A config.json as training.train writes it (docs/run-directory.md)."""
    task = get_task(task_name)
    return {
        **task.model_config().to_dict(),
        "task": task.name,
        "variant": "random-erasing" if random_erasing else "baseline",
        "run_name": "20261129-170000",
        "dataset": {**Source(task.dataset, task.labels).facts(), "train_images": 640, "val_images": 320},
        "recipe": {**task.resolved_recipe(variant=RANDOM_ERASING if random_erasing else BASELINE,
                                          binary=len(task.labels) == 2), "epochs": 3},
        "seed": 7,
        "init_sha256": "0123456789abcdef" * 4,
        "parameters": 20296522 if task_name == "mnist" else 23510081,
        "device": "cpu",
        "precision": "bf16",
        "versions": {"python": "3.11.7", "torch": "2.14.1", "torchvision": "0.29.1", "cnn_studio": "0.1.0"},
        "created": "2026-11-29T17:00:00+00:00",
        "hardware": {"cpu": "Intel(R) Xeon(R) Processor", "cpu_cores": 2, "bf16_instructions": "amx",
                     "torch_threads": 2, "gpu": None},
    }


def make_metrics(config: dict, accuracy: float = 0.8125) -> dict:
    labels = config["labels"]
    n = len(labels)
    matrix = [[(7 if i == j else (i + 2 * j) % 3) for j in range(n)] for i in range(n)]
    return {"accuracy": accuracy, "loss": 0.53125, "split": config["dataset"]["val_split"],
            "num_images": sum(map(sum, matrix)), "epoch": 3, "labels": labels,
            "per_class_accuracy": {lab: round(matrix[i][i] / sum(matrix[i]), 6) for i, lab in enumerate(labels)},
            "confusion_matrix": matrix}


def make_history(epochs: int = 3) -> list[dict]:
    return [{"epoch": e, "train_loss": 2.0 / e, "train_accuracy": 0.3 + 0.11 * e, "val_loss": 1.9 / e,
             "val_accuracy": 0.25 + 0.13 * e, "lr": 0.001 * e, "seconds": 12.5 * e, "images_per_s": 51.2}
            for e in range(1, epochs + 1)]


def make_facts(task_name: str = "mnist", *, random_erasing: bool = False, curves: bool = True,
               metrics: bool = True) -> dict:
    config = make_config(task_name, random_erasing=random_erasing)
    return {"config": config, "history": make_history(), "has_curves": curves,
            "metrics": make_metrics(config) if metrics else None, "examples": [],
            "source": "runs/example"}


def parse(text: str) -> ModelCard:
    return ModelCard(text)


def snippet_of(text: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 1, "the card has exactly one Python block: the usage snippet"
    return blocks[0]


def point_snippet_at(snippet: str, source: str) -> str:
    new, count = re.subn(r'load_model\("[^"]*"\)', lambda m: f"load_model({json.dumps(source)})", snippet)
    assert count == 1
    return new


# --------------------------------------------------------------------------- metadata


@pytest.mark.parametrize("task_name,hub_id", [("mnist", "ylecun/mnist"), ("cifar10", "uoft-cs/cifar10"),
                                               ("catsdogs", "timm/oxford-iiit-pet")])
def test_metadata_and_model_index_come_from_the_facts(task_name, hub_id):
    facts = make_facts(task_name)
    card = parse(render_card(facts))
    data = card.data
    # a local card (not on the Hub) declares no library: its snippet uses CNN Studio's models/
    assert data.library_name is None and "library_name" not in render_card(facts).split("---")[1]
    assert data.base_model is None, "trained from scratch"
    assert data.license == "mit"
    assert data.pipeline_tag == "image-classification"
    assert data.datasets == [hub_id]
    assert data.metrics == ["accuracy"]
    assert BASE_TAGS | {facts["config"]["architecture"], task_name} <= set(data.tags)
    assert "random-erasing" not in data.tags
    [result] = data.eval_results
    assert result.task_type == "image-classification"
    assert result.dataset_type == hub_id
    assert result.dataset_split == facts["metrics"]["split"]
    assert result.dataset_config == {"ylecun/mnist": "mnist", "uoft-cs/cifar10": "plain_text",
                                     "timm/oxford-iiit-pet": "default"}[hub_id]
    # the spec's `args` are arguments of load_dataset(): the count is in the name instead
    assert result.dataset_args is None and "args:" not in render_card(facts).split("---")[1]
    n, split = facts["metrics"]["num_images"], facts["metrics"]["split"]
    assert result.dataset_name == f"{facts['config']['dataset']['name']} ({split} split, {n:,} images)"
    assert result.metric_type == "accuracy"
    assert result.metric_value == facts["metrics"]["accuracy"]
    assert data.model_name == facts["config"]["run_name"], "a local card is named after its run"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(accuracy=st.floats(min_value=0.0, max_value=1.0, allow_nan=False),
       labels=st.lists(st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
                               min_size=1, max_size=8), min_size=2, max_size=4, unique=True))
def test_any_accuracy_and_labels_round_trip_through_the_card(accuracy, labels):
    facts = make_facts("mnist")
    config = facts["config"]
    config.update(labels=labels, num_classes=len(labels))
    facts["metrics"] = make_metrics(config, accuracy=accuracy)
    text = render_card(facts)
    card = parse(text)
    assert card.data.eval_results[0].metric_value == accuracy
    # tables keep their shape whatever the labels hold ("|" is escaped)
    matrix_rows = [line for line in text.splitlines() if line.startswith("| **")]
    assert len(matrix_rows) == len(labels)
    for line in matrix_rows:
        cells = re.split(r"(?<!\\)\|", line)[1:-1]
        assert len(cells) == len(labels) + 1


def test_without_metrics_the_card_has_no_model_index_and_says_so():
    text = render_card(make_facts(metrics=False))
    card = parse(text)
    assert card.data.eval_results is None
    assert "model-index" not in text
    assert "no `metrics.json` yet" in text


# --------------------------------------------------------------------------- body


def test_body_shows_every_recipe_key_history_row_and_class():
    facts = make_facts("cifar10")
    text = render_card(facts)
    config, metrics = facts["config"], facts["metrics"]
    for key, _ in flatten(config["recipe"]):
        assert f"| `{key}` |" in text, key
    assert "| `augment.random_erasing` | none |" in text
    rows = [line for line in text.splitlines() if re.match(r"\| \d+ \| \d\.\d{4} \|", line)]
    assert len(rows) == len(facts["history"])
    for row, line in zip(facts["history"], rows):
        assert line.startswith(f"| {row['epoch']} | {row['train_loss']:.4f} |")
        assert f"{100 * row['val_accuracy']:.2f}%" in line
    for label, acc in metrics["per_class_accuracy"].items():
        assert f"| {label} | {100 * acc:.2f}% |" in text
    for label, counts in zip(metrics["labels"], metrics["confusion_matrix"]):
        assert f"| **{label}** | " + " | ".join(map(str, counts)) + " |" in text
    assert f"{config['parameters']:,}" in text                  # 20,297,674-style
    assert config["init_sha256"] in text and "| seed | 7 |" in text
    assert "| training arithmetic (evaluation: fp32) | bf16 |" in text
    assert ("| machine (the timings above) | Intel(R) Xeon(R) Processor, 2 cores, bf16 instructions: amx, "
            "2 torch threads |") in text
    for name, version in config["versions"].items():
        assert f"- {name}: {version}" in text
    assert f"{config['dataset']['train_images']:,} (split `train`)" in text
    assert f"{config['dataset']['val_images']:,} (split `test`)" in text
    assert "uoft-cs/cifar10" in text and config["dataset"]["name"] in text
    assert "## Intended uses and limitations" in text


def test_numbers_change_with_the_files():
    facts = make_facts()
    a = render_card(facts)
    changed = copy.deepcopy(facts)
    changed["metrics"]["accuracy"] = 0.4321
    changed["config"]["parameters"] = 1234567
    changed["history"][0]["val_accuracy"] = 0.111
    b = render_card(changed)
    assert "43.21%" in b and "43.21%" not in a
    assert "1,234,567" in b
    assert "11.10%" in b


def test_random_erasing_variant_names_its_parameters():
    facts = make_facts("catsdogs", random_erasing=True)
    text = render_card(facts)
    card = parse(text)
    re_params = facts["config"]["recipe"]["augment"]["random_erasing"]
    assert "random-erasing" in card.data.tags
    assert card.data.model_name == facts["config"]["run_name"]
    section = text.split("### Random Erasing", 1)[1].split("###", 1)[0]
    assert f"p = {re_params['p']}" in section
    assert f"{re_params['scale'][0]}–{re_params['scale'][1]}" in section
    assert f"{re_params['ratio'][0]}–{re_params['ratio'][1]}" in section
    assert "arXiv:1708.04896" in text
    baseline = render_card(make_facts("catsdogs"))
    assert "### Random Erasing" not in baseline and "random-erasing" not in parse(baseline).data.tags


def test_curves_image_only_when_the_file_exists():
    assert "![curves](curves.png)" in render_card(make_facts(curves=True))
    assert "curves.png" not in render_card(make_facts(curves=False))


def test_render_card_does_no_io(monkeypatch):
    facts = make_facts()

    def refuse(*args, **kwargs):
        raise AssertionError("render_card opened a file")
    monkeypatch.setattr(builtins, "open", refuse)
    monkeypatch.setattr(Path, "open", refuse)
    monkeypatch.setattr(os, "open", refuse)
    assert render_card(facts).startswith("---\n")


def test_render_card_does_not_change_its_input():
    facts = make_facts("catsdogs", random_erasing=True)
    before = copy.deepcopy(facts)
    render_card(facts)
    assert facts == before


# --------------------------------------------------------------------------- files


@pytest.fixture(scope="module")
def handmade_run(tmp_path_factory) -> Path:
    """config/history/metrics written by hand, real weights via save_release, one example."""
    run = tmp_path_factory.mktemp("handmade") / "run"
    config = make_config("mnist")
    torch.manual_seed(0)
    save_release(run, create_model(get_task("mnist").model_config()), config)
    (run / "history.json").write_text(json.dumps(make_history()))
    (run / "metrics.json").write_text(json.dumps(make_metrics(config)))
    (run / "examples").mkdir()
    digit = Image.new("L", (32, 32))
    ImageDraw.Draw(digit).ellipse((10, 6, 22, 26), outline=255, width=3)     # a white 0 on black, as MNIST
    digit.save(run / "examples" / "00_0.png")
    (run / "examples" / "index.json").write_text(json.dumps([{"file": "00_0.png", "label": "0", "index": 3}]))
    return run


def test_read_facts_reads_the_run_directory(handmade_run):
    facts = read_facts(handmade_run)
    assert facts["config"] == json.loads((handmade_run / "config.json").read_text())
    assert facts["history"] == make_history()
    assert facts["metrics"]["accuracy"] == 0.8125
    assert facts["has_curves"] is False
    assert facts["examples"] == [{"file": "00_0.png", "label": "0", "index": 3}]
    assert read_facts(handmade_run, source="me/model")["source"] == "me/model"


def test_read_facts_names_a_missing_or_broken_file(tmp_path):
    with pytest.raises(CardError, match="config.json: missing"):
        read_facts(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(make_config()))
    (tmp_path / "metrics.json").write_text("{not json")
    with pytest.raises(CardError, match="metrics.json: not valid JSON"):
        read_facts(tmp_path)


def test_write_card_writes_readme_atomically_and_the_snippet_runs(handmade_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(handmade_run, run)
    path = write_card(run)
    assert path == run / "README.md"
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == []  # no temp file left
    card = ModelCard.load(path)
    assert card.data.eval_results[0].metric_value == 0.8125
    snippet = snippet_of(path.read_text())
    assert 'image = loaded.root / "examples/00_0.png"' in snippet
    namespace: dict = {}
    exec(point_snippet_at(snippet, str(run)), namespace)
    probs = namespace["probs"]
    assert list(probs) == list(get_task("mnist").model_config().labels)
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)


def test_snippet_without_examples_runs_too(handmade_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(handmade_run, run, ignore=shutil.ignore_patterns("examples"))
    text = render_card(read_facts(run))
    snippet = snippet_of(text)
    assert "ImageDraw.Draw(image).line(" in snippet and "loaded.root" not in snippet
    namespace: dict = {}
    exec(point_snippet_at(snippet, str(run)), namespace)
    assert sum(namespace["probs"].values()) == pytest.approx(1.0, abs=1e-5)


# --------------------------------------------------------------------------- a real run


def test_real_run_card(mnist_run):
    run = mnist_run
    readme = run / "README.md"
    assert readme.is_file(), "training.train writes the card"
    card = ModelCard.load(readme)
    metrics = json.loads((run / "metrics.json").read_text())
    config = json.loads((run / "config.json").read_text())
    history = json.loads((run / "history.json").read_text())
    data = card.data
    # a --limit-val run: the subset's accuracy is on the card, never in the model-index
    assert config["limit_val"] is not None and data.eval_results is None
    assert f"on {metrics['num_images']:,} images of a subset of the `{metrics['split']}` split" in card.text
    assert data.library_name is None and data.license == "mit"
    assert data.pipeline_tag == "image-classification" and data.datasets == ["ylecun/mnist"]
    assert BASE_TAGS | {"vgg19_bn_32", "mnist"} <= set(data.tags)
    text = readme.read_text()
    for key, _ in flatten(config["recipe"]):
        assert f"| `{key}` |" in text, key
    assert f"{config['parameters']:,} (torchinfo)" in text and config["init_sha256"] in text
    assert ("![curves](curves.png)" in text) == (run / "curves.png").is_file()
    assert len([ln for ln in text.splitlines() if re.match(r"\| \d+ \| \d\.\d{4} \|", ln)]) == len(history)
    # the card train.py wrote is exactly what render_card gives for the files now
    assert text == render_card(read_facts(run))


def test_real_run_snippet_runs_in_a_fresh_python(mnist_run, tmp_path):
    """The usage snippet, run as a user would: a new interpreter with the repo on the path."""
    snippet = point_snippet_at(snippet_of((mnist_run / "README.md").read_text()), str(mnist_run))
    snippet += "\nimport json; print('PROBS=' + json.dumps(probs))\n"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    probs = json.loads(proc.stdout.split("PROBS=", 1)[1])
    assert list(probs) == [str(i) for i in range(10)]
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)


def test_real_random_erasing_run_card(catsdogs_re_run):
    config = json.loads((catsdogs_re_run / "config.json").read_text())
    metrics = json.loads((catsdogs_re_run / "metrics.json").read_text())
    card = ModelCard.load(catsdogs_re_run / "README.md")
    assert "random-erasing" in card.data.tags and "resnet50" in card.data.tags
    assert card.data.eval_results is None, "a --limit-val run stays out of the model-index"
    assert f"Accuracy **{100 * metrics['accuracy']:.2f}%** on {metrics['num_images']:,} images of a subset" \
        in card.text
    params = config["recipe"]["augment"]["random_erasing"]
    section = card.text.split("### Random Erasing", 1)[1].split("###", 1)[0]
    assert f"p = {params['p']}" in section and f"{params['ratio'][0]}–{params['ratio'][1]}" in section


def test_a_run_outside_a_comparison_has_no_comparison_section(tmp_path):
    from analysis.stats import comparison_for_run
    run = tmp_path / "compare" / "catsdogs" / "seed-0"
    run.mkdir(parents=True)
    (tmp_path / "compare" / "comparison.json").write_text(
        '{"runs": {"1": {"baseline": "catsdogs/seed-1", "random-erasing": "catsdogs-re/seed-1"}}}')
    assert comparison_for_run(run) is None
    (tmp_path / "compare" / "comparison.json").write_text(
        '{"runs": {"0": {"baseline": "catsdogs/seed-0", "random-erasing": "catsdogs-re/seed-0"}}}')
    assert comparison_for_run(run)["runs"]["0"]["baseline"] == "catsdogs/seed-0"


# --------------------------------------------------------------------------- Hub fields


def test_pretrained_run_names_its_base_model_on_the_hub():
    facts = make_facts("catsdogs")
    facts["config"]["recipe"]["pretrained"] = "IMAGENET1K_V2"
    data = parse(render_card(facts)).data
    assert data.base_model == "timm/resnet50.tv2_in1k"   # torchvision's IMAGENET1K_V2 weights on the Hub
    assert data.to_dict()["base_model_relation"] == "finetune"
    facts["config"]["recipe"]["pretrained"] = "IMAGENET1K_V1"
    assert parse(render_card(facts)).data.base_model == "timm/resnet50.tv_in1k"


def test_subset_evaluation_is_not_in_the_model_index_and_the_card_says_so():
    facts = make_facts("mnist")
    facts["config"].update(limit_train=2000, limit_val=1000)
    text = render_card(facts)
    card = parse(text)
    assert card.data.eval_results is None and "model-index" not in text.split("---")[1]
    n = facts["metrics"]["num_images"]
    assert f"on {n:,} images of a subset of the `test` split" in text
    assert "`--limit-train 2000`, `--limit-val 1000`" in text and "A partial run" in text
    assert "accuracy on the test split" not in text
    facts["config"].update(limit_val=None)   # trained on a subset, evaluated on the whole split
    assert parse(render_card(facts)).data.eval_results[0].dataset_split == "test"


@pytest.mark.parametrize("task_name,random_erasing,keys", [
    ("mnist", False, ["simonyan2015vgg", "lecun1998mnist"]), ("catsdogs", False, ["he2016resnet", "parkhi2012pets"]),
    ("catsdogs", True, ["he2016resnet", "zhong2020randomerasing", "parkhi2012pets"])])
def test_citation_block_is_bibtex_for_the_architecture_random_erasing_and_the_dataset(task_name, random_erasing, keys):
    text = render_card(make_facts(task_name, random_erasing=random_erasing))
    [bib] = re.findall(r"```bibtex\n(.*?)```", text, flags=re.S)
    entries = re.findall(r"@(\w+)\{([\w]+),\n(.*?)\n\}", bib, flags=re.S)
    assert [key for _, key, _ in entries] == keys
    for kind, _, body in entries:
        fields = dict(re.findall(r"^\s+(\w+)\s+= \{(.*)\},?$", body, flags=re.M))
        assert {"title", "author", "year"} <= set(fields)
        assert {"inproceedings": "booktitle", "article": "journal"}.get(kind, "title") in fields
        assert body.count("{") == body.count("}")
    # the public dataset is named with its link and its Hub id (models/tasks.py: Dataset.url, hub_id)
    dataset = get_task(task_name).dataset
    assert f"[{dataset.url}]({dataset.url})" in text
    assert f"[`{dataset.hub_id}`](https://huggingface.co/datasets/{dataset.hub_id})" in text


def test_model_stats_are_measured_on_the_model():
    """Parameters and multiply-adds, derived here from the layers themselves (not torchinfo)."""
    from cards.card import model_stats
    config = make_config("mnist")
    stats = model_stats(config)
    model = create_model(get_task("mnist").model_config())
    assert stats["parameters"] == sum(p.numel() for p in model.parameters()) == 20296522
    macs = []

    def count(module, inputs, output):
        if isinstance(module, torch.nn.Conv2d):
            macs.append(output.numel() * module.in_channels * module.kernel_size[0] * module.kernel_size[1])
        elif isinstance(module, torch.nn.Linear):
            macs.append(module.in_features * module.out_features)
    for m in model.modules():
        m.register_forward_hook(count)
    model.eval()(torch.zeros(1, 1, 32, 32))
    assert stats["mult_adds"] == pytest.approx(sum(macs), rel=0.01)
    assert stats["input_size"] == [1, 1, 32, 32]
    text = render_card({**make_facts("mnist"), "model_stats": stats})
    assert f"| multiply-adds | {stats['mult_adds'] / 1e6:,.1f} M per image (torchinfo) |" in text
    assert "| input size | 1×1×32×32 (N×C×H×W) |" in text


def test_card_links_to_the_code_when_known():
    text = render_card({**make_facts("mnist"), "code_url": "https://github.com/example/cnn-studio"})
    assert "Trained with [CNN Studio 0.1.0](https://github.com/example/cnn-studio)" in text


# --------------------------------------------------------------------------- issue 22: what a card may claim


PROJECT_PACKAGES = {"models", "training", "cards", "publish", "ui", "analysis", "app", "tests", "benchmarks", "scripts"}
FILE_NAME = re.compile(r"^(?:[\w.-]+/)*[\w.-]+\.(?:py|json|png|safetensors|md|txt|pt|csv)$|^[A-Z][A-Z0-9]{3,}$|^[\w.-]+/$")


def hub_facts(task_name: str = "catsdogs", **changes) -> dict:
    """make_facts as `publish.hub push` passes them for repo me/<task>-run (an example, a pinned code digest)."""
    facts = make_facts(task_name)
    facts.update(hub=True, source=f"me/{task_name}-run", name=f"{task_name}-run", code_sha256="ab" * 32,
                 examples=[{"file": "00_0.png", "label": facts["config"]["labels"][0]}], **changes)
    return facts


def project_definitions() -> set[str]:
    """Every top-level function and class name defined in CNN Studio's packages."""
    names = set()
    for path in REPO_ROOT.glob("*/**/*.py"):
        if path.relative_to(REPO_ROOT).parts[0] in PROJECT_PACKAGES - {"tests"}:
            tree = ast.parse(path.read_text(encoding="utf-8"))
            names |= {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    return names


def defined_names(code: str) -> set[str]:
    """Top-level names of a module's source, and the methods of its classes."""
    tree = ast.parse(code)
    names = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    return names | {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}


def resolves_in_project(dotted: str) -> bool:
    """`models.predict.predict_probs`, `models/registry.py`, `models`: something in this checkout."""
    if "/" in dotted:
        return (REPO_ROOT / dotted).exists()
    import importlib
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr, None)
        return obj is not None
    return False


def unresolved_names(text: str, repo_files: set[str], code: str | None) -> list[str]:
    """Every file, function and command the card names that is neither in the repo it is in (the
    files `repo_files`; the functions of the repo's `code`, cnn_studio.py) nor a link to the code.
    `code` None: a local card, whose repo is this checkout (its project names must resolve here)."""
    body = text.split("---", 2)[2]
    prose = re.sub(r"\[[^\]]*\]\([^)]*\)", "", re.sub(r"```.*?```", "", body, flags=re.S))   # links may name anything
    ours = project_definitions()
    available = defined_names(code) if code is not None else ours
    problems = []
    for span in re.findall(r"`([^`\n]+)`", prose):
        head = re.split(r"[\s(]", span)[0]
        root = re.split(r"[./]", head)[0]
        if span.startswith(("python ", "pip ", "hf ")):
            problems.append(f"command `{span}` is not a link to the code")
        elif root in PROJECT_PACKAGES and (code is not None or not resolves_in_project(head)):
            problems.append(f"`{span}` is CNN Studio code, not in this repo")
        elif FILE_NAME.match(head) and root not in PROJECT_PACKAGES and head not in repo_files \
                and not any(f.startswith(head) for f in repo_files):
            problems.append(f"file `{span}` is not in this repo")
        elif re.fullmatch(r"\w+", head) and head in ours and head not in available:
            problems.append(f"function `{span}` is not in this repo's code")
    for block in re.findall(r"```python\n(.*?)```", body, flags=re.S):
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for name in [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]:
                    if name.split(".")[0] in PROJECT_PACKAGES and (code is not None or not resolves_in_project(name)):
                        problems.append(f"the snippet imports {name}, not in this repo")
            elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "hf_hub_download":
                files = [a.value for a in node.args[1:2] if isinstance(a, ast.Constant)]
                files += [k.value.value for k in node.keywords if k.arg == "filename"]
                problems += [f"the snippet downloads {f}, not in this repo" for f in files if f not in repo_files]
            elif isinstance(node, ast.Attribute) and getattr(node.value, "id", None) in ("cnn_studio", "model") \
                    and code is not None and node.attr not in available | {"eval", "pretrained_cfg"}:
                problems.append(f"the snippet calls {node.attr}, not in {HUB_CODE}")
    return problems


HUB_CODE = "cnn_studio.py"


def test_a_hub_card_names_only_what_its_repo_holds():
    """The old card told Hub users to call `models.predict.predict_probs` and said `models/registry.py`
    builds the model: neither is in a pushed repo. Every name is checked against the repo's files and
    its cnn_studio.py; commands are links to the code."""
    from publish.hub_code import hub_code_source
    code = hub_code_source()
    repo = {"config.json", "model.safetensors", "history.json", "metrics.json", "README.md", "curves.png",
            "examples/00_0.png", "examples/index.json", HUB_CODE, "LICENSE", "SHA256SUMS"}
    for task_name in ("mnist", "catsdogs"):
        for code_url in (None, "https://github.com/example/cnn-studio"):
            text = render_card(hub_facts(task_name, code_url=code_url))
            assert unresolved_names(text, repo, code) == [], (task_name, code_url)
    old = "Use `models.predict.predict_probs`; `models/registry.py` builds it (`python -m training.train`)."
    assert len(unresolved_names("---\n---\n" + old, repo, code)) == 3, "the check sees what the old card named"


def test_a_local_card_names_only_what_this_checkout_and_its_run_hold(handmade_run):
    text = render_card(read_facts(handmade_run))
    files = {p.relative_to(handmade_run).as_posix() for p in handmade_run.rglob("*") if p.is_file()}
    assert unresolved_names(text, files | {"README.md", "curves.png"}, None) == []


def test_a_hub_card_is_named_after_its_repo_and_declares_timm_only_where_timm_loads_it():
    resnet = parse(render_card(hub_facts("catsdogs"))).data
    assert resnet.model_name == "catsdogs-run" and resnet.eval_results[0].dataset_type == "timm/oxford-iiit-pet"
    assert resnet.library_name == "timm" and "timm" in resnet.tags
    vgg = parse(render_card(hub_facts("mnist"))).data
    assert vgg.library_name is None and "timm" not in vgg.tags, "timm has no VGG19-BN for 32x32 input"
    older = hub_facts("catsdogs")
    del older["config"]["pretrained_cfg"]    # a config.json written before it had timm's keys
    assert parse(render_card(older)).data.library_name is None, "timm could not load that repo"


def test_the_declared_license_is_the_project_license_file():
    text = (REPO_ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n\nCopyright (c) 2026 CNN Studio contributors\n")
    assert "THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND" in text
    assert parse(render_card(make_facts())).data.license == "mit"
    assert "the license in `LICENSE`" in render_card(hub_facts("mnist"))


def local_folder_facts(*, seeded: bool) -> dict:
    """A folder run as training.train records it: dataset.name "a local image folder", no Hub id,
    class counts per split, and (for a folder without train/ and val/) the seeded split."""
    from models.tasks import LOCAL_FOLDER
    facts = make_facts("catsdogs")
    config = facts["config"]
    labels = ["apple", "pear", "plum"]
    config.update(task="folder", labels=labels, num_classes=3)
    counts = {"train": {"apple": 40, "pear": 32, "plum": 24}, "val": {"apple": 10, "pear": 8, "plum": 6}}
    source = Source(LOCAL_FOLDER, tuple(labels), "a seeded 20% of each class's images" if seeded else "")
    config["dataset"] = {**source.facts(), "train_images": 96, "val_images": 24, "skipped_unreadable": 0,
                         "class_counts": counts}
    facts["metrics"] = make_metrics(config)
    return facts


@pytest.mark.parametrize("seeded", [True, False])
def test_a_run_on_a_local_image_folder_is_carded_as_what_it_was(seeded):
    facts = local_folder_facts(seeded=seeded)
    text = render_card(facts)
    data = parse(text).data
    assert data.datasets is None, "no public dataset was read"
    assert data.eval_results is None and "model-index" not in text, "no public split to report against"
    plain = text.replace("**", "")
    assert "a local image folder: 120 images in 3 classes" in plain
    for label, train, val in (("apple", 40, 10), ("pear", 32, 8), ("plum", 24, 6)):
        assert f"| {label} | {train} | {val} |" in text
    assert ("a seeded 20% of each class's images" in text) is seeded
    for name in ("Oxford-IIIT Pet", "huggingface.co/datasets", "parkhi2012pets"):
        assert name not in text, f"{name}: a public dataset the run never read"


def test_the_real_cats_vs_dogs_run_on_an_image_folder_claims_no_public_dataset(catsdogs_run):
    """conftest's catsdogs data is an image folder (train/ and val/): training records it as such."""
    config = json.loads((catsdogs_run / "config.json").read_text())
    assert config["dataset"]["name"] == "a local image folder" and config["dataset"]["hub_id"] is None
    card = ModelCard.load(catsdogs_run / "README.md")
    assert card.data.datasets is None and card.data.eval_results is None
    assert "oxford-iiit-pet" not in card.data.tags and "Oxford-IIIT" not in card.text
    for label, n in config["dataset"]["class_counts"]["val"].items():
        assert re.search(rf"^\| {label} \| \d+ \| {n} \|$", card.text, flags=re.M), label
