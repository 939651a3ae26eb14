"""See why -> Occlusion playground, for any task that trains a baseline and a Random Erasing model side
by side (models/tasks.py): erase a box of a photo and watch P(last class) of both, or sweep the box
over the whole image. The words (the class, the input size) come from the record and the run.

No `from __future__ import annotations` here: Gradio reads the `gr.SelectData` annotation
of the click handler at run time.
"""
import gradio as gr
import numpy as np
import pandas as pd
import torch
from matplotlib import colormaps
from PIL import Image, ImageDraw

from analysis.explain import FILLS, erase, occlusion_sweep as sweep, sweep_positions
from models.predict import input_to_image, logits_to_probs, prepare
from models.tasks import BASELINE, RANDOM_ERASING, TASKS
from ui import inputs, live
from ui.catalog import Catalog, ModelUnavailable, missing_model_message
from ui.common import INFERENCE_CONCURRENCY, VIEW_SIZE, is_empty, read_image, user_error
from ui.why.adapters import SIDE_BY_SIDE, enlarge, entry_of

# A sweep runs every model once per box position on the whole input: its work, positions x pixels
# x models, is bounded by what 2,048 passes at 224x224 cost (two ResNet50s, box 8).
MAX_SWEEP_WORK = 2048 * 224 * 224
WIDTHS = ["31%", "23%", "23%", "23%"]    # the tables' columns: model name, three numbers


def default_task(catalog: Catalog) -> str:
    """The first side-by-side task with a model (else the first such task): what the page shows first."""
    return next((t for t in SIDE_BY_SIDE if catalog.choices(t)), SIDE_BY_SIDE[0])


def occlusion_models(catalog: Catalog, base_key, re_key):
    """[(name, LoadedModel)] of the chosen runs, or of the first side-by-side task's defaults. Both runs
    must be of one task, so that a box covers the same pixels for both."""
    task = entry_of(catalog, base_key or re_key).task if base_key or re_key else default_task(catalog)
    if task not in SIDE_BY_SIDE:
        raise user_error(f"{task}: choose runs of a task trained with and without Random Erasing "
                         f"({', '.join(SIDE_BY_SIDE)})")
    models = []
    for key, variant in ((base_key, BASELINE), (re_key, RANDOM_ERASING)):
        try:
            models.append((variant.title, catalog.get(key, task, variant).loaded))
        except ModelUnavailable as e:
            if key:                            # a run asked for by name: say why it cannot serve
                raise user_error(str(e)) from e
    if not models:
        raise user_error(missing_model_message(task, None))
    return models


def columns(label: str) -> tuple[list[str], list[str]]:
    """The headers of the probe's and of the sweep's table: shown before there is an answer too."""
    return ["model", f"P({label})", f"P({label}) with the box", "change"], \
        ["model", f"P({label})", "lowest", "lowest at (top, left)"]


def box_from_centre(cx: float, cy: float, size: float, input_size: int) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a size x size box centred at (cx, cy) in input pixels, kept inside."""
    size = int(max(1, min(round(size), input_size)))
    left = int(min(max(round(cx - size / 2), 0), input_size - size))
    top = int(min(max(round(cy - size / 2), 0), input_size - size))
    return top, left, size, size


@torch.inference_mode()
def probe(models, img, box, fill: str = "mean"):
    """One erase box, several models (same preprocessing): (what they see with the box, table of
    P(last class) without and with the box)."""
    cfg = models[0][1].config
    x = prepare(img, cfg, task_step=False)[0]
    erased = erase(x, box, cfg, fill)
    rows = []
    for name, loaded in models:
        p = logits_to_probs(loaded.model.eval()(torch.cat([x, erased]).to(next(loaded.model.parameters()).device)),
                            loaded.config)[:, -1].cpu().tolist()
        rows.append([name, round(p[0], 4), round(p[1], 4), round(p[1] - p[0], 4)])
    view = input_to_image(erased[0], cfg).convert("RGB")
    top, left, h, w = box
    ImageDraw.Draw(view).rectangle([left, top, left + w - 1, top + h - 1], outline=(255, 255, 0), width=2)
    return enlarge(view), pd.DataFrame(rows, columns=columns(cfg.labels[-1])[0])


def sweep_view(models, img, box: int, stride: int, fill: str = "mean"):
    """Sweep an erase box over the image for each model: (maps of P(last class) where the box covers each
    pixel, in colour over the image (blue low, red high), captioned with the model's name; summary
    table; how to read them)."""
    items, rows = [], []
    for name, loaded in models:
        cfg = loaded.config
        x = prepare(img, cfg, task_step=False)[0].to(next(loaded.model.parameters()).device)
        occ = sweep(loaded.model, cfg, x, box=box, stride=stride, fill=fill)
        base = np.asarray(input_to_image(x[0].cpu(), cfg).convert("RGB"), dtype=np.float32) / 255
        colour = colormaps["coolwarm"](np.clip(occ.pixel_map(cfg.input_size), 0, 1))[..., :3]
        items.append((enlarge(Image.fromarray(((base * 0.45 + colour * 0.55) * 255).round().astype(np.uint8))), name))
        top, left, p_min = occ.most_sensitive()
        rows.append([name, round(occ.base, 4), round(p_min, 4), f"({top}, {left})"])
    label = models[0][1].config.labels[-1]
    return items, pd.DataFrame(rows, columns=columns(label)[1]), (
        f"Each map: P({label}) with the {box}-pixel box over each pixel, {occ.probs.size} box positions per model. "
        f"Red: still {label}; blue: P({label}) falls where the box hides the evidence.")


def _choices(baseline_run, erasing_run, fill):
    return (inputs.run_key(baseline_run, "baseline_run"), inputs.run_key(erasing_run, "erasing_run"),
            inputs.choice(fill, "fill", FILLS, default=FILLS[0]))


def occlusion_probe(catalog: Catalog, image, baseline_run, erasing_run, box_x, box_y, box_size, fill="mean"):
    baseline_run, erasing_run, fill = _choices(baseline_run, erasing_run, fill)
    if is_empty(image):
        return None, gr.skip()
    models = occlusion_models(catalog, baseline_run, erasing_run)
    side = models[0][1].config.input_size
    box = box_from_centre(inputs.real_number(box_x, "box_x", 0, side), inputs.real_number(box_y, "box_y", 0, side),
                          inputs.whole_number(box_size, "box_size", 1, side), side)
    return probe(models, read_image(image), box, fill)


def occlusion_sweep(catalog: Catalog, image, baseline_run, erasing_run, box_size, fine_sweep=False, fill="mean",
                    progress=gr.Progress()):
    """`progress` shows which model is being swept (in the app; elsewhere it does nothing): a sweep
    runs the model once per box position, seconds to minutes on a CPU."""
    baseline_run, erasing_run, fill = _choices(baseline_run, erasing_run, fill)
    fine_sweep = inputs.flag(fine_sweep, "fine_sweep")
    if is_empty(image):
        return [], gr.skip(), ""
    models = occlusion_models(catalog, baseline_run, erasing_run)
    side = models[0][1].config.input_size
    box = inputs.whole_number(box_size, "box_size", 1, side)
    check_sweep_work(side, box, fine_sweep, len(models))
    models = progress.tqdm(models, desc="sweeping the box over the image, model by model")
    return sweep_view(list(models), read_image(image), box, max(1, box // 2) if fine_sweep else box, fill)


def check_sweep_work(side: int, box: int, fine_sweep: bool, models: int) -> None:
    """A one-line gr.Error when a sweep would compute more than MAX_SWEEP_WORK, naming the smallest box that fits."""
    def positions(b: int) -> int:
        return len(sweep_positions(side, b, max(1, b // 2) if fine_sweep else b)) ** 2

    if positions(box) * side * side * models > MAX_SWEEP_WORK:
        fits = next((b for b in range(box, side) if positions(b) * side * side * models <= MAX_SWEEP_WORK), side)
        raise user_error(f"box_size {box}{' with fine_sweep' if fine_sweep else ''} means {positions(box):,} box "
                         f"positions for each of {models} model(s) at {side}x{side}, more than one request may "
                         f"compute: use box_size {fits} or more")


def last_label(catalog: Catalog) -> str:
    """The class whose probability the page shows: the last of the first side-by-side model's labels."""
    task = default_task(catalog)
    entry = catalog.default_entry(task, BASELINE) or catalog.default_entry(task, RANDOM_ERASING)
    labels = entry.loaded.config.labels if entry else TASKS[task].labels
    return labels[-1] if labels else "last class"


def intro(catalog: Catalog) -> str:
    task, side = default_task(catalog), TASKS[default_task(catalog)].input_size
    return (f"Erase part of a photo and watch P({last_label(catalog)}) of the {TASKS[task].title} "
            f"baseline and Random Erasing models. Click the image to move the box (coordinates are in the "
            f"{side}x{side} crop the models see), or sweep it over the whole image.")


def build(catalog: Catalog) -> None:
    side = TASKS[default_task(catalog)].input_size
    probe_columns, sweep_columns = columns(last_label(catalog))
    live.markdown(catalog, lambda: intro(catalog))
    live.markdown(catalog, lambda: "" if any(catalog.choices(t) for t in SIDE_BY_SIDE) else
                  f"⚠️ {missing_model_message(default_task(catalog), None)} Then upload a photo here.",
                  hide_empty=True, elem_classes=["notice"], elem_id="occlusion-empty")
    with gr.Row(equal_height=False):
        with gr.Column():
            image = gr.Image(label="Image", type="filepath", sources=["upload", "clipboard"], height=280,
                             elem_id="occlusion-image")
            base, erasing = (live.dropdown(
                catalog, lambda v=v: [c for t in SIDE_BY_SIDE for c in catalog.choices(t, (v,))],
                lambda v=v: catalog.default_key(default_task(catalog), v), label=f"{v.title} run")
                for v in (BASELINE, RANDOM_ERASING))
            x = gr.Slider(0, side, value=side // 2, step=1, label="Box centre x")
            y = gr.Slider(0, side, value=side // 2, step=1, label="Box centre y")
            size = gr.Slider(8, side, value=side // 4, step=4, label="Box side (pixels)")
            fill = gr.Radio(list(FILLS), value=FILLS[0], label="Fill")
        with gr.Column():
            view = gr.Image(label="With the box", format="png", interactive=False, height=256)
            # Wide enough columns that a phone wraps the headers between words, not inside them.
            table = gr.Dataframe(pd.DataFrame(columns=probe_columns), label="Without and with the box",
                                 show_label=False, interactive=False, wrap=True, column_widths=WIDTHS,
                                 elem_id="occlusion-table")
            with gr.Row():
                fine = gr.Checkbox(label="Fine sweep (half-box steps, 4x slower)", value=False)
                sweep_button = gr.Button("Sweep the box over the image")
            maps = gr.Gallery(label="Sweep maps", show_label=False, preview=False, elem_id="occlusion-maps",
                              elem_classes=["whole-gallery"])
            sweep_note = gr.Markdown(label="How to read the maps", elem_id="occlusion-sweep-note")
            sweep_table = gr.Dataframe(pd.DataFrame(columns=sweep_columns), label="Sweep summary", show_label=False,
                                       interactive=False, wrap=True, column_widths=WIDTHS,
                                       elem_id="occlusion-sweep-table")
    gr.on([image.change, x.release, y.release, size.release, fill.change], inputs.endpoint(occlusion_probe, catalog),
          inputs=[image, base, erasing, x, y, size, fill], outputs=[view, table],
          api_name="occlusion_probe", preprocess=False, **INFERENCE_CONCURRENCY)

    def on_view_click(image, baseline_run, erasing_run, box_size, fill, evt: gr.SelectData):
        cx, cy = (float(v) * side / max(side, VIEW_SIZE) for v in evt.index[:2])
        return round(cx), round(cy), *occlusion_probe(catalog, image, baseline_run, erasing_run, cx, cy, box_size, fill)

    view.select(on_view_click, inputs=[image, base, erasing, size, fill], outputs=[x, y, view, table],
                api_name="occlusion_click", preprocess=False, **INFERENCE_CONCURRENCY)

    sweep_button.click(inputs.endpoint(occlusion_sweep, catalog), inputs=[image, base, erasing, size, fine, fill],
                       outputs=[maps, sweep_table, sweep_note], api_name="occlusion_sweep", preprocess=False,
                       **INFERENCE_CONCURRENCY)
