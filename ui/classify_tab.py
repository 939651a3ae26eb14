"""The classify tab of any task, built from its record (models/tasks.py): an image in (and a drawing
for a task whose preparation is "mnist_digit"), one answer per model compared, what the model
sees, examples, Grad-CAM, and how to train a missing model.

A task's endpoint keeps the record's api_name and takes `image` (`sketch` for a drawing) and
`model_run`, or one `<variant>_run` per model shown side by side (cats vs dogs: baseline and
Random Erasing). A task whose labels come from its data (your own images) has one list of all
its runs instead: runs of different folders have different classes, so none is paired with
another. Outputs: the top classes and the bar chart of each model. What the model sees is its own
endpoint, `/model_input_<name>`, which the page asks after each answer: an answer carries no file
to download (the largest cost of a small model's answer; benchmarks/serve.py).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
import pandas as pd
import torch
from PIL import Image

from models.digits import NotADigit
from models.jsonfile import run_file, try_read_json
from models.predict import ImageInputError, decode_image, input_to_image, logits_to_probs, prepare
from models.tasks import BASELINE, RANDOM_ERASING, TASKS, Task
from ui import inputs, live, serving
from ui.catalog import Catalog, ModelEntry, ModelUnavailable, code, missing_model_message, plain
from ui.common import (ASSETS_DIR, INFERENCE_CONCURRENCY, LIGHT_CONCURRENCY, UploadedImage, UploadedSketch, is_empty,
                       read_image, user_error)
from ui.why import gradcam
from ui.why.adapters import enlarge

NO_DIGIT = ("no digit found: the image is blank or a single colour (fully transparent, uniform, "
            "one pixel); draw or upload a digit, dark on light or light on dark")
RUN_PARAMETERS = {BASELINE: "baseline_run", RANDOM_ERASING: "erasing_run"}


@dataclass(frozen=True)
class Column:
    """One model answering in a tab: its variant (None: any run of the task), API parameter, list title."""
    variant: str | None
    parameter: str = "model_run"
    title: str = "Model run"
    suffix: str = ""     # of the elem_ids of its components ("" for a tab's only column)


def columns(task: Task) -> list[Column]:
    if not task.labels or len(task.variants) == 1:
        return [Column(None)]
    return [Column(v, RUN_PARAMETERS[v], f"{v.title[:1].upper()}{v.title[1:]} run",
                   "-" + RUN_PARAMETERS[v].removesuffix("_run")) for v in task.variants]


def variant_of(catalog: Catalog, task: Task, column: Column) -> str:
    """The column's variant; for a column of any run, the first variant with a default model."""
    return column.variant or next((v for v in task.variants if catalog.default_key(task.name, v)), task.variants[0])


@dataclass
class Answer:
    entry: ModelEntry
    probs: dict[str, float]


@dataclass
class Result:
    """What a tab shows for one input: per column an Answer or why none."""
    answers: list = field(default_factory=list)


def models_asked(catalog: Catalog, task: Task, runs=()) -> list:
    """Per column the ModelEntry of its run key (None: its default), or why there is none; a gr.Error
    saying how to train them when every model is missing."""
    cols = columns(task)
    keys = [inputs.run_key(key, c.parameter) for key, c in zip([*runs, *[None] * len(cols)], cols)]
    found = []
    for column, key in zip(cols, keys):
        try:
            found.append(catalog.get(key, task.name, variant_of(catalog, task, column)))
        except ModelUnavailable as e:
            found.append(str(e))
    if all(isinstance(f, str) for f in found):
        raise user_error("; ".join(found))
    return found


def classify(catalog: Catalog, task: Task | str, image, runs=(), *, blank_is_empty: bool = False) -> Result:
    """An image (an upload's FileData, a data: URL, a drawing's composite, bytes, PIL, array) and a run
    key per column (None: its default) -> a Result. No image: an empty Result (a cleared input).

    A missing model leaves its column empty with the reason, unless every model is missing: then it
    is a gr.Error saying how to train them. A blank image is a gr.Error saying why nothing is
    classified, except the page's empty canvas (`blank_is_empty`)."""
    task = TASKS[task] if isinstance(task, str) else task
    empty = Result(answers=[None] * len(columns(task)))
    if is_empty(image):
        return empty
    found = models_asked(catalog, task, runs)
    img, result = read_image(image), Result()
    for entry in found:
        if isinstance(entry, str):
            result.answers.append(entry)
            continue
        try:
            probs = run_model(entry, img)
        except NotADigit as e:                    # marks, but not one digit: say so, never guess
            raise user_error(f"Could not classify the image: {e}") from e
        if probs is None:
            if blank_is_empty:
                return empty
            raise user_error(f"Could not classify the image: {NO_DIGIT}")
        result.answers.append(Answer(entry, probs))
    return result


def model_input(catalog: Catalog, task: Task | str, image, runs=()) -> str | None:
    """What the first model asked sees of an image, as a PNG file: its prepared input (models.predict.prepare,
    as run_model), upscaled. None: no image, or nothing to classify in it (a blank drawing)."""
    task = TASKS[task] if isinstance(task, str) else task
    if is_empty(image):
        return None
    entry = next(e for e in models_asked(catalog, task, runs) if not isinstance(e, str))
    try:
        x, _ = prepare(read_image(image), entry.loaded.config)
    except NotADigit:
        return None
    return None if x is None else serving.image_file(enlarge(input_to_image(x[0], entry.loaded.config)), "model_input")


@torch.inference_mode()
def run_model(entry: ModelEntry, img: Image.Image) -> dict[str, float] | None:
    """Probabilities over all labels (sum 1); None when the task's preparation finds nothing to
    classify. models.predict.prepare, as every endpoint; concurrent calls on the same model share
    one forward pass (serving.ForwardBatcher)."""
    loaded = entry.loaded
    x, _ = prepare(img, loaded.config)
    if x is None:
        return None
    x = x.to(next(loaded.model.parameters()).device)
    probs = logits_to_probs(serving.batcher_for(loaded.model)(x), loaded.config)[0].double().cpu()
    probs = probs / probs.sum()
    return {label: float(p) for label, p in zip(loaded.config.labels, probs)}


def percent(p: float) -> str:
    return "<0.01%" if 0 < p < 1e-4 else ">99.99%" if 1 - 1e-4 < p < 1 else f"{p:.2%}"


def caption(answer: Answer, source: str = "") -> str:
    """Under the chart: the answer with its probability to 0.01% (the two of a two-class model), which
    input it answers, and which model answered, with how good it is."""
    probs = answer.probs
    top = list(probs) if len(probs) == 2 else [max(probs, key=probs.get)]
    quality = f" ({answer.entry.quality})" if answer.entry.quality else ""
    return f"{', '.join(f'{c} {percent(probs[c])}' for c in top)}{source}, by {answer.entry.key}{quality}"


def probs_frame(probs: dict[str, float] | None, labels=()) -> pd.DataFrame:
    """A bar-chart frame, one row per class (zeros before any answer). The class column is always text,
    so the class axis stays categorical ("0".."9" would otherwise become numbers)."""
    names = list(probs) if probs is not None else list(labels)
    values = [round(p, 6) for p in probs.values()] if probs is not None else [0.0] * len(names)
    return pd.DataFrame({"class": pd.Series(names, dtype="string"), "probability": pd.Series(values, dtype="float64")})


def shown(catalog: Catalog, task: Task, result: Result, source: str = "") -> list:
    """A Result as the tab's outputs: each column's top classes and chart, then (for the page only: a
    State, not in the API) each column's caption."""
    out, captions = [], []
    for column, answer in zip(columns(task), result.answers):
        found = isinstance(answer, Answer)
        out += [answer.probs if found else None, probs_frame(answer.probs if found else None, labels(catalog, task, column))]
        captions.append(caption(answer, source) if found else answer or "")
    return out + [captions]


def labels(catalog: Catalog, task: Task, column: Column) -> tuple[str, ...]:
    entry = catalog.default_entry(task.name, variant_of(catalog, task, column))
    return entry.loaded.config.labels if entry else task.labels


def respond(catalog: Catalog, task: Task, value, runs, source: str = "", *, blank_is_empty: bool = False) -> list:
    """classify(), as the tab's outputs and (States of the page) the input answered and which it was.

    In the page a refusal is one warning and answers that say why: an error would also mark every
    output red, and its input would stay (an unreadable upload's broken-image icon). API callers get
    the error."""
    try:
        result = classify(catalog, task, value, runs, blank_is_empty=blank_is_empty and inputs.from_browser())
    except gr.Error as e:
        if not inputs.from_browser():
            raise
        gr.Warning(e.message)
        return [*shown(catalog, task, Result(answers=[e.message] * len(columns(task)))), None, source]
    return [*shown(catalog, task, result, source), value, source]


def endpoint(catalog: Catalog, task: Task, parameter: str, source: str = "", *, blank_is_empty: bool = False):
    """The function an event calls: `parameter` (the image) and one run key per column, named for the API."""
    def handler(image, *runs):
        return respond(catalog, task, image, runs, source, blank_is_empty=blank_is_empty)
    handler.__name__ = task.api_name
    handler.__doc__ = f"Classify {'a drawing' if source else 'an image'} with the {task.title} model(s)."
    return _named(handler, task, parameter)


def model_input_endpoint(catalog: Catalog, task: Task):
    """`/model_input_<name>`: the image and the run keys of the classify endpoint -> what the model sees."""
    def handler(image, *runs):
        return model_input(catalog, task, image, runs)
    handler.__name__ = f"model_input_{task.api_name.removeprefix('classify_')}"
    handler.__doc__ = f"What the {task.title} model sees of an image: its prepared input, upscaled."
    return _named(handler, task, "image")


def _named(handler, task: Task, parameter: str):
    """`handler(image, *runs)` with its API parameters named: `parameter`, then one run key per column."""
    handler.__signature__ = inspect.Signature(
        [inspect.Parameter(parameter, inspect.Parameter.POSITIONAL_OR_KEYWORD)] +
        [inspect.Parameter(c.parameter, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None) for c in columns(task)])
    return inputs.endpoint(handler, images=(parameter,))


# --- the page ---------------------------------------------------------------------------------------

def run_examples(entry: ModelEntry | None, limit: int = 10) -> list[tuple[str, str]]:
    """(path, caption) of a run's examples/ (index.json order), captioned "<class> #<index in its split>"."""
    if entry is None or entry.root is None:
        return []
    rows = try_read_json(entry.root, "examples/index.json")
    items = []
    for i, row in enumerate(rows if isinstance(rows, list) else []):
        path = run_file(entry.root, f"examples/{Path(str(row.get('file', ''))).name}") if isinstance(row, dict) else None
        if path is not None and (copy := served_copy(path)) is not None:
            items.append((copy, f"{row.get('label', path.stem)} #{row.get('index', i)}"))
        if len(items) == limit:
            break
    return items


def served_copy(path: Path) -> str | None:
    """A copy of an image file inside Gradio's cache folder (None: unreadable). Gradio serves and moves
    only files under the working directory, the temp folder or its cache: a runs folder elsewhere
    (`--runs /data/runs`) must not break the examples, and no folder of the server is opened to clients."""
    try:
        return serving.image_file(decode_image(path), path.stem)
    except ImageInputError:
        return None


def examples(catalog: Catalog, task: Task) -> tuple[str, list[tuple[str, str]]]:
    """(heading, items): the default run's own examples, or the record's assets until a run brings some."""
    entry = catalog.default_entry(task.name, variant_of(catalog, task, columns(task)[0]))
    items = run_examples(entry)
    if items:
        split = try_read_json(entry.root, "metrics.json")
        split = split.get("split") if isinstance(split, dict) else None
        return f"**Examples:** {plain(split or 'held-out')} images of {code(entry.key)}", items
    files = sorted(ASSETS_DIR.glob(task.examples))[:10] if task.examples else []
    assets = [(copy, p.stem.replace("_", " ")) for p in files if (copy := served_copy(p)) is not None]
    return ("**Examples**" if assets else ""), assets


def notice(catalog: Catalog, task: Task) -> str:
    """Markdown for the top of a tab: how to train what is missing, what failed to load."""
    served = len(columns(task)) == 1 and any(catalog.default_key(task.name, v) for v in task.variants)
    missing = [] if served else [v for v in task.variants if catalog.default_key(task.name, v) is None]
    lines = [f"⚠️ {missing_model_message(task.name, v).replace(cmd, f'`{cmd}`')}"
             for v in missing if (cmd := task.train_command(v))]
    return "\n\n".join(lines + [f"⚠️ {code(e.key)} unavailable: {plain(e.error)}" for e in catalog.unavailable(task.name)])


def build(catalog: Catalog, task: Task) -> None:
    """The tab's components and events, inside an open gr.Tab."""
    gr.Markdown(task.description)
    live.markdown(catalog, lambda: notice(catalog, task), hide_empty=True, elem_classes=["notice"])
    cols = columns(task)
    with gr.Row(equal_height=False):
        with gr.Column(scale=5):
            image, sketch, buttons, pick = _inputs(catalog, task)
            # The caption is above the picture, not a block label over it (it hid a digit's top stroke).
            gr.Markdown("**What the model sees** (after its preprocessing; small inputs upscaled)",
                        elem_id=f"{task.name}-seen-caption")
            seen = gr.Image(show_label=False, label="What the model sees", format="png", interactive=False,
                            height=220, buttons=[], elem_id=f"{task.name}-seen", elem_classes=["pixels"])
        with gr.Column(scale=6):
            runs = [_run_list(catalog, task, c) for c in cols]       # as wide as the column: their names are long
            with gr.Row():
                answers = [_answer(catalog, task, c) for c in cols]
    # The answers' captions, and the input last answered and which it was (a model change answers it
    # again, Grad-CAM explains it): States, so the API's outputs are plain values.
    captions, last, source = gr.State([]), gr.State(), gr.State("")
    outputs = [*[c for label, chart, _ in answers for c in (label, chart)], captions, last, source]
    short = task.api_name.removeprefix("classify_")
    captions.change(lambda texts: texts[0] if len(texts) == 1 else tuple(texts), captions, [a[2] for a in answers],
                    api_name=f"captions_{short}", api_visibility="private", show_progress="hidden", queue=False)
    # `input`, not `change`: Gradio 6's Image fires `change` twice when an image replaces another. An
    # upload the page could not answer is cleared (`last` is then None).
    answer_image = endpoint(catalog, task, "image", " for the uploaded image" if sketch else "")
    # always_last: an upload while an answer is pending is answered after it ("once" dropped it: the page
    # then showed the new image beside the old answer).
    answered = gr.on([image.input, buttons[0].click], answer_image, [image, *runs], outputs, api_name=task.api_name,
                     trigger_mode="always_last", **INFERENCE_CONCURRENCY)
    answered.then(lambda value: gr.skip() if value is not None else None, last, image, api_name=f"cleared_{short}",
                  api_visibility="private", queue=False)
    answered = {task.api_name: answered,
                f"{short}_example_answer": pick.then(answer_image, [image, *runs], outputs,
                                                     api_name=f"{short}_example_answer", api_visibility="private",
                                                     **INFERENCE_CONCURRENCY)}
    if sketch is not None:        # MNIST's published names: /classify_digit_image and /classify_digit
        drawing = task.api_name.removesuffix("_image") if task.api_name.endswith("_image") else f"{task.api_name}_drawing"
        answered[drawing] = gr.on([sketch.change, buttons[1].click],
                                  endpoint(catalog, task, "sketch", " for your drawing", blank_is_empty=True),
                                  [sketch, *runs], outputs, api_name=drawing, trigger_mode="always_last",
                                  **INFERENCE_CONCURRENCY)

    def again(value, what, *keys):
        return respond(catalog, task, value, keys, what, blank_is_empty=True)
    answered[f"reclassify_{short}"] = gr.on([run.change for run in runs], inputs.endpoint(again, images=()),
                                            [last, source, *runs], outputs, api_name=f"reclassify_{short}",
                                            api_visibility="private", **INFERENCE_CONCURRENCY)
    # What the model sees: its own endpoint for API callers (a button never shown), asked by the page
    # after each answer, for the input answered (`last`: None when refused or cleared).
    gr.Button(visible=False).click(model_input_endpoint(catalog, task), [image, *runs], seen,
                                   api_name=f"model_input_{short}", **INFERENCE_CONCURRENCY)
    show_seen = inputs.endpoint(lambda value, *keys: model_input(catalog, task, value, keys), images=())
    for name, event in answered.items():
        event.then(show_seen, [last, *runs], seen, api_name=f"seen_{name}", api_visibility="private",
                   show_progress="hidden", **LIGHT_CONCURRENCY)
    for column, run in zip(cols, runs):
        gradcam.add_gradcam(catalog, task.name, image, run, variant=variant_of(catalog, task, column),
                            api_name=f"gradcam_{task.name}" + ("_re" if column.variant == RANDOM_ERASING else ""),
                            clear_on=(image, run) + ((sketch,) if sketch else ()), last_classified=last,
                            title="Why? Grad-CAM: where the model looked" + (
                                f" ({column.variant.title})" if len(cols) > 1 else
                                " (at the drawing or upload last answered)" if sketch else ""))


def _inputs(catalog: Catalog, task: Task):
    """(image input, drawing or None, their buttons, the examples' pick event). A digit task draws too."""
    if task.preparation != "mnist_digit":
        image, button, pick = _image_input(catalog, task, f"{task.name}-input")
        return image, None, (button,), pick
    with gr.Tabs():
        with gr.Tab("Draw"):
            sketch = UploadedSketch(label="Draw a digit", type="filepath", canvas_size=(400, 400), fixed_canvas=True,
                                    layers=False, transforms=(), height=420, elem_id=f"{task.name}-sketch",
                                    elem_classes=["sketch"],
                                    brush=gr.Brush(default_size=14, colors=["#000000"], color_mode="fixed"))
            draw = gr.Button("Classify drawing", variant="primary")
            # Clearing the canvas puts Gradio's brush away: pick it again, so the next stroke draws.
            sketch.clear(None, js=f"() => setTimeout(() => document.querySelector("
                                  f"'#{task.name}-sketch button[aria-label=Brush]')?.click(), 50)", api_visibility="private")
        with gr.Tab("Upload"):
            image, button, pick = _image_input(catalog, task, f"{task.name}-upload")
    return image, sketch, (button, draw), pick


def _image_input(catalog: Catalog, task: Task, elem_id: str):
    """The image input, its button, and the examples (the default run's own, following the catalog)."""
    image = UploadedImage(label="Image", sources=["upload", "webcam", "clipboard"], type="filepath", image_mode=None,
                          height=300, elem_id=elem_id, elem_classes=["pixels"])
    button = gr.Button("Classify", variant="primary")
    live.markdown(catalog, lambda: examples(catalog, task)[0], hide_empty=True)
    gallery = live.follow(catalog, gr.Gallery(examples(catalog, task)[1], show_label=False, label="Examples", columns=5,
                                              height="auto", object_fit="contain", allow_preview=False, buttons=[],
                                              elem_id=f"{task.name}-examples", elem_classes=["pixels", "examples"]),
                          lambda _: gr.Gallery(examples(catalog, task)[1]))

    def pick(event: gr.SelectData):
        """The example clicked, by its place in the list (the client names no file)."""
        items = examples(catalog, task)[1]
        return items[event.index][0] if isinstance(event.index, int) and 0 <= event.index < len(items) else gr.skip()
    short = task.api_name.removeprefix("classify_")
    return image, button, gallery.select(pick, None, image, api_name=f"{short}_example", api_visibility="private")


def _run_list(catalog: Catalog, task: Task, column: Column) -> gr.Dropdown:
    return live.dropdown(catalog, lambda: catalog.choices(task.name, column.variant and (column.variant,)),
                         lambda: catalog.default_key(task.name, variant_of(catalog, task, column)),
                         label=column.title, elem_id=f"{task.name}-run{column.suffix}")


def _answer(catalog: Catalog, task: Task, column: Column):
    """One model's answer: top classes, the chart of every class, and what answered (a caption)."""
    named = f" ({column.title.removesuffix(' run')})" if column.suffix else ""
    with gr.Column(min_width=200):
        label = gr.Label(num_top_classes=3, show_label=False, label=f"Top classes{named}",
                         elem_id=f"{task.name}-label{column.suffix}")
        # Classes down the side: their names never collide, at any width. No fixed height: with one,
        # Gradio 6 cuts off the class names.
        chart = gr.BarPlot(probs_frame(None, labels(catalog, task, column)), x="probability", y="class", x_lim=[0, 1],
                           x_axis_format=".0%", show_label=False, label=f"All classes{named}",
                           elem_id=f"{task.name}-bars{column.suffix}")
        about = gr.Markdown(elem_id=f"{task.name}-about{column.suffix}")
    return label, chart, about
