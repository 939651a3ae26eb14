"""Augmentation tab: a grid of augmented versions of one image, with a task's training transforms.

The transforms are `models.augment.TrainAugment`, the very class training applies to its batches,
built from the recipe in the run's config.json (or, before any run exists, the task's default
recipe in models/tasks.py). The image is first put in the form training stores (a square of the
stored size, uint8, models.predict.stored_image), then one batch of copies is augmented at once,
so each copy gets its own crop, flip and erasing rectangle, exactly as in training.
"""
from __future__ import annotations

import gradio as gr
import torch

from models.augment import TrainAugment
from models.digits import NotADigit
from models.predict import decode_image, denormalize, pixels_to_image, stored_image
from models.tasks import BASELINE, TASKS
from ui import inputs
from ui.catalog import Catalog
from ui.common import ASSETS_DIR, LIGHT_CONCURRENCY, is_empty, read_image, user_error
from ui.why.adapters import enlarge

MAX_COPIES = 24
MAX_SEED = 2**31 - 1  # torch.Generator takes any int64; the UI's Number field stops here
TILE = 160            # gallery tiles are upscaled (nearest neighbour) to at least this size


def recipes(catalog: Catalog) -> dict:
    """Name -> (model config, augment recipe, where it comes from), one per task and variant: the
    default run's recipe, else the record's (a folder task only once a run gives it labels)."""
    out = {}
    for task_name, task in TASKS.items():
        for variant in task.variants:
            name = task.title + ("" if variant is BASELINE else f" + {variant.title}")
            entry = catalog.default_entry(task_name, variant)
            augment = (entry.loaded.info.get("recipe") or {}).get("augment") if entry else None
            if isinstance(augment, dict) and "crop" in augment:
                out[name] = (entry.loaded.config, dict(augment), f"recipe of run {entry.key}")
            elif task.labels:
                out[name] = (task.model_config(), task.resolved_recipe(variant=variant)["augment"],
                             "default recipe (no run yet)")
    return out


def samples() -> dict[str, str]:
    """Sample images shipped in assets/: display name -> path (the only files this tab opens)."""
    return {p.stem.replace("_", " "): str(p) for p in sorted(ASSETS_DIR.glob("*.png"))}


def describe(augment: dict, cfg) -> str:
    """The recipe in words, in the order training applies it."""
    crop, re = augment["crop"], augment.get("random_erasing")
    parts = [f"random crop {crop}x{crop}" + (f" after {augment['padding']} px zero padding"
                                              if augment.get("padding") else ""),
             "horizontal flip (p=0.5)" if augment.get("flip") else "no flip",
             f"normalise (mean {list(cfg.mean)}, std {list(cfg.std)})"]
    if re:
        parts.append(f"Random Erasing (p={re['p']}, area {re['scale'][0]}-{re['scale'][1]}, "
                     f"aspect {re['ratio'][0]}-{re['ratio'][1]}, fill {re.get('value', 'random')})")
    return " → ".join(parts)


def augment_grid(catalog: Catalog, recipe_name: str, sample: str | None = None, image=None,
                 seed: int = 0, copies: int = 12):
    """(recipe, sample name or uploaded image, seed, copies) -> (gallery items, recipe markdown).

    The uploaded image wins over the sample; the sample must be one of `samples()`.
    """
    table = recipes(catalog)
    cfg, augment, source = table[inputs.choice(recipe_name, "recipe_name", list(table))]
    seed = inputs.whole_number(seed, "seed", 0, MAX_SEED)
    copies = inputs.whole_number(copies, "copies", 1, MAX_COPIES)
    known, sample = samples(), inputs.text(sample, "sample")
    if not is_empty(image):
        img, what = read_image(image), "your image"
    elif not sample:
        raise user_error("sample is missing: choose a sample image or upload one as image")
    else:
        img, what = decode_image(known[inputs.choice(sample, "sample", list(known))]), sample  # the app's own file
    try:       # as training stores it, after the task's step (MNIST-like digits) where it applies
        stored = stored_image(img, cfg)[0]
    except NotADigit:
        stored = None
    if stored is None:        # not one digit: shown as it is
        stored = stored_image(img, cfg, task_step=False)[0]
    # As in training, Random Erasing draws from its own generator, so with the same seed a
    # recipe with and one without erasing show the same crops and flips.
    with torch.inference_mode():
        batch = TrainAugment.from_recipe(augment, cfg)(stored.unsqueeze(0).repeat(copies, 1, 1, 1),
                                                       torch.Generator().manual_seed(seed),
                                                       erase_generator=torch.Generator().manual_seed(seed + 1))
    items = [(enlarge(pixels_to_image(stored), TILE), f"as stored, {stored.shape[-1]}x{stored.shape[-1]}")]
    items += [(enlarge(pixels_to_image(denormalize(x, cfg)), TILE), f"#{i + 1}") for i, x in enumerate(batch)]
    side = cfg.input_size
    return items, (f"**{recipe_name}** on {what}: {describe(augment, cfg)}. Model input {side}x{side}. "
                   f"Source: {source}; seed {seed}.")


def build(catalog: Catalog) -> None:
    names, sample_names = list(recipes(catalog)), list(samples())
    gr.Markdown("The training augmentation of each model, applied to one image many times. Every copy "
                "gets its own random crop, flip and (with Random Erasing) rectangle: these are the "
                "exact transforms of training, read from the run's recipe.")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=300):
            recipe = gr.Dropdown(names, value=names[0], label="Recipe")
            sample = gr.Dropdown(sample_names, value=sample_names[0] if sample_names else None,
                                 label="Sample image", elem_id="augment-sample")
            image = gr.Image(label="…or your own image", sources=["upload", "clipboard"], type="filepath",
                             image_mode=None, height=200, elem_id="augment-upload")
            with gr.Row():
                seed = gr.Number(0, label="Seed", precision=0, minimum=0, maximum=MAX_SEED)
                copies = gr.Slider(1, MAX_COPIES, value=11, step=1, label="Copies")
            button = gr.Button("Augment", variant="primary")
        with gr.Column(scale=7, min_width=300):
            gr.Markdown("**Augmented copies** (first: the image as stored)")
            gallery = gr.Gallery(label="Augmented copies", show_label=False, object_fit="contain", format="png",
                                 elem_id="augment-gallery", elem_classes=["whole-gallery"])
            caption = gr.Markdown(label="Recipe", elem_id="augment-recipe")
    # The last choice wins: an upload (or a click on Augment) uses the uploaded image; picking a
    # sample uses the sample and removes the upload, so the image shown is always the one used.
    gr.on([button.click, recipe.change, image.upload, image.clear], inputs.endpoint(augment_grid, catalog, required=()),
          inputs=[recipe, sample, image, seed, copies], outputs=[gallery, caption], api_name="augment",
          preprocess=False, trigger_mode="once", **LIGHT_CONCURRENCY)
    sample.change(lambda r, name, sd, n: (*augment_grid(catalog, r, name, None, sd, n), None),
                  inputs=[recipe, sample, seed, copies], outputs=[gallery, caption, image], api_name="augment_sample",
                  api_visibility="private", **LIGHT_CONCURRENCY)
