"""See why -> Occlusion playground: erase a box of a photo and watch P(dog) of the baseline and
the Random Erasing model, or sweep the box over the whole image.

No `from __future__ import annotations` here: Gradio reads the `gr.SelectData` annotation
of the click handler at run time.
"""
import gradio as gr

from analysis.explain import sweep_positions
from models.tasks import TASKS
from models.tasks import BASELINE, RANDOM_ERASING
from ui import inputs
from ui import explain_handlers as h
from ui import live
from ui.catalog import Catalog, ModelUnavailable
from ui.common import INFERENCE_CONCURRENCY, is_empty, read_image, user_error
from ui.why.adapters import CATSDOGS, no_model_message


def occlusion_models(catalog: Catalog, base_key, re_key):
    models = []
    for name, key, variant in (("baseline", base_key, BASELINE), ("Random Erasing", re_key, RANDOM_ERASING)):
        try:
            models.append((name, catalog.get(key, CATSDOGS, variant).loaded))
        except ModelUnavailable:
            continue
    if not models:
        raise user_error(no_model_message())
    return models


FILLS = ("mean", "black", "noise")     # what an occlusion box is filled with (models.explain.erase)


def _choices(baseline_run, erasing_run, fill):
    return (inputs.run_key(baseline_run, "baseline_run"), inputs.run_key(erasing_run, "erasing_run"),
            inputs.choice(fill, "fill", FILLS, default=FILLS[0]))


def occlusion_probe(catalog: Catalog, image, baseline_run, erasing_run, box_x, box_y, box_size, fill="mean"):
    baseline_run, erasing_run, fill = _choices(baseline_run, erasing_run, fill)
    if is_empty(image):
        return None, None
    models = occlusion_models(catalog, baseline_run, erasing_run)
    side = models[0][1].config.input_size
    box = h.box_from_centre(inputs.real_number(box_x, "box_x", 0, side), inputs.real_number(box_y, "box_y", 0, side),
                            inputs.whole_number(box_size, "box_size", 1, side), side)
    return h.occlusion_probe(models, read_image(image), box, fill)


def occlusion_sweep(catalog: Catalog, image, baseline_run, erasing_run, box_size, fine_sweep=False, fill="mean",
                    progress=None):
    """`progress` (a gr.Progress in the app) shows which model is being swept: a sweep runs the
    model once per box position, seconds to minutes on a CPU."""
    baseline_run, erasing_run, fill = _choices(baseline_run, erasing_run, fill)
    fine_sweep = inputs.flag(fine_sweep, "fine_sweep")
    if is_empty(image):
        return [], None
    models = occlusion_models(catalog, baseline_run, erasing_run)
    side = models[0][1].config.input_size
    box = inputs.whole_number(box_size, "box_size", 1, side)
    check_sweep_work(side, box, fine_sweep, len(models))
    if progress is not None:
        models = progress.tqdm(models, desc="sweeping the box over the image, model by model")
    return h.occlusion_sweep_view(models, read_image(image), box=box, stride=max(1, box // 2) if fine_sweep else box,
                                  fill=fill)


# A sweep runs every model once per box position on the whole input: its work, positions x pixels
# x models, is bounded by what 2,048 passes at 224x224 cost (two ResNet50s, box 8).
MAX_SWEEP_WORK = 2048 * 224 * 224


def check_sweep_work(side: int, box: int, fine_sweep: bool, models: int) -> None:
    """A one-line gr.Error when a sweep would compute more than MAX_SWEEP_WORK, naming the smallest box that fits."""
    def positions(b: int) -> int:
        return len(sweep_positions(side, b, max(1, b // 2) if fine_sweep else b)) ** 2

    if positions(box) * side * side * models > MAX_SWEEP_WORK:
        fits = next((b for b in range(box, side) if positions(b) * side * side * models <= MAX_SWEEP_WORK), side)
        raise user_error(f"box_size {box}{' with fine_sweep' if fine_sweep else ''} means {positions(box):,} box "
                         f"positions for each of {models} model(s) at {side}x{side}, more than one request may "
                         f"compute: use box_size {fits} or more")


def input_side(catalog: Catalog) -> int:
    """The side of the square the cats vs dogs models see (their config), for the box sliders."""
    key = catalog.default_key(CATSDOGS, BASELINE) or catalog.default_key(CATSDOGS, RANDOM_ERASING)
    loaded = catalog.entry(key).loaded if key else None
    return (loaded.config if loaded is not None else TASKS[CATSDOGS].model_config()).input_size


def build(catalog: Catalog) -> None:
    side = input_side(catalog)
    view_side = max(side, h.VIEW_SIZE)       # the view shows the crop enlarged to at least VIEW_SIZE
    gr.Markdown("Erase part of a photo and watch P(dog) of the baseline and the Random Erasing model. "
                f"Click the image to move the box (coordinates are in the {side}x{side} crop the models see), "
                "or sweep it over the whole image.")
    live.markdown(catalog, lambda: "" if catalog.choices(CATSDOGS) else f"⚠️ {no_model_message()} Then upload a photo here.",
                  hide_empty=True, elem_classes=["notice"], elem_id="occlusion-empty")
    with gr.Row(equal_height=False):
        with gr.Column():
            image = gr.Image(label="Image", type="filepath", sources=["upload", "clipboard"], height=280)
            with gr.Row():
                base = live.dropdown(catalog, lambda: catalog.choices(CATSDOGS, (BASELINE,)),
                                     lambda: catalog.default_key(CATSDOGS, BASELINE), label="Baseline run")
                erasing = live.dropdown(catalog, lambda: catalog.choices(CATSDOGS, (RANDOM_ERASING,)),
                                        lambda: catalog.default_key(CATSDOGS, RANDOM_ERASING), label="Random Erasing run")
            x = gr.Slider(0, side, value=side // 2, step=1, label="Box centre x")
            y = gr.Slider(0, side, value=side // 2, step=1, label="Box centre y")
            size = gr.Slider(8, side, value=side // 4, step=4, label="Box side (pixels)")
            fill = gr.Radio(list(FILLS), value=FILLS[0], label="Fill")
        with gr.Column():
            view = gr.Image(label="What the models see, box erased", format="png", interactive=False, height=256)
            table = gr.Dataframe(label="P(dog) without and with the box", interactive=False)
            with gr.Row():
                fine = gr.Checkbox(label="Fine sweep (half-box steps, 4x slower)", value=False)
                sweep = gr.Button("Sweep the box over the image")
            maps = gr.Gallery(label="P(dog) where the box covers each pixel (blue: cat, red: dog)",
                              columns=2, height=300, preview=False)
            sweep_table = gr.Dataframe(interactive=False, label="Sweep summary")
    gr.on([image.change, x.release, y.release, size.release, fill.change],
          inputs.endpoint(occlusion_probe, catalog),
          inputs=[image, base, erasing, x, y, size, fill], outputs=[view, table],
          api_name="occlusion_probe", preprocess=False, **INFERENCE_CONCURRENCY)

    def on_view_click(image, baseline_run, erasing_run, box_size, fill, evt: gr.SelectData):
        cx, cy = (float(v) * side / view_side for v in evt.index[:2])
        shown, probs = occlusion_probe(catalog, image, baseline_run, erasing_run, cx, cy, box_size, fill)
        return round(cx), round(cy), shown, probs

    view.select(on_view_click, inputs=[image, base, erasing, size, fill], outputs=[x, y, view, table],
                api_name="occlusion_click", preprocess=False, **INFERENCE_CONCURRENCY)
    def on_sweep(image, baseline_run, erasing_run, box_size, fine_sweep, fill, progress=gr.Progress()):
        return occlusion_sweep(catalog, image, baseline_run, erasing_run, box_size, fine_sweep, fill, progress=progress)

    sweep.click(inputs.endpoint(on_sweep),
                inputs=[image, base, erasing, size, fine, fill], outputs=[maps, sweep_table],
                api_name="occlusion_sweep", preprocess=False, **INFERENCE_CONCURRENCY)
