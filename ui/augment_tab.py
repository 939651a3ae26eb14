"""Augmentation tab: a grid of augmented versions of one image, with a task's training transforms.

The transforms are `models.augment.TrainAugment`, the very class training applies to its
batches, built from the recipe in the run's config.json (or, before any run exists, the
task's default recipe from models.presets). The image is first put in the form training
stores (a square of the stored size, uint8), then one batch of copies is augmented at once,
so each copy gets its own crop, flip and erasing rectangle, exactly as in training.
"""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import torch
from PIL import Image

from models.augment import TrainAugment
from models.digits import NotADigit
from models.predict import decode_image, denormalize, pixels_to_image, stored_image
from models.registry import ModelConfig
from models.tasks import BASELINE, TASKS
from ui import inputs
from ui.catalog import Catalog
from ui.common import ASSETS_DIR, LIGHT_CONCURRENCY, is_empty, read_image, user_error

MAX_COPIES = 24
MAX_SEED = 2**31 - 1  # torch.Generator takes any int64; the UI's Number field stops here
TILE = 160            # gallery tiles are upscaled (nearest neighbour) to at least this size


@dataclass(frozen=True)
class Recipe:
    name: str
    task: str
    config: ModelConfig
    augment: dict
    source: str        # where the recipe comes from, for the caption


# Every task and variant, from the task records (a folder task once a run gives it labels).
RECIPES = tuple((task.title + ("" if variant is BASELINE else f" + {variant.title}"), name, variant)
                for name, task in TASKS.items() for variant in task.variants)


def recipes(catalog: Catalog) -> dict[str, Recipe]:
    """Each task's augmentation recipe: from its default run's config.json, else the defaults."""
    out = {}
    for name, task, variant in RECIPES:
        key = catalog.default_key(task, variant)
        if key is not None:
            loaded = catalog.entry(key).loaded
            augment = (loaded.info.get("recipe") or {}).get("augment")
            if isinstance(augment, dict) and "crop" in augment:
                out[name] = Recipe(name, task, loaded.config, dict(augment), f"recipe of run {key}")
                continue
        record = TASKS[task]
        if record.labels:
            augment = record.resolved_recipe(variant=variant)["augment"]
            out[name] = Recipe(name, task, record.model_config(), augment, "default recipe (no run yet)")
    return out


def samples() -> dict[str, str]:
    """Sample images shipped in assets/: display name -> path (the only files this tab opens)."""
    return {p.stem.replace("_", " "): str(p) for p in sorted(ASSETS_DIR.glob("*.png"))}


def stored_form(img: Image.Image, recipe: Recipe) -> torch.Tensor:
    """An image as training stores it: uint8 (C, S, S), after the task's step (MNIST-like digits),
    as models.predict prepares every image; an image that is not one digit is shown as it is."""
    try:
        stored, _ = stored_image(img, recipe.config)
    except NotADigit:
        stored = None
    return stored if stored is not None else stored_image(img, recipe.config, task_step=False)[0]


def to_pixels(x: torch.Tensor, cfg: ModelConfig) -> Image.Image:
    """A normalised float (C, S, S) back to an image (erased noise shows as coloured noise)."""
    return _tile(denormalize(x, cfg))


def _tile(pixels: torch.Tensor) -> Image.Image:
    """uint8 (C, S, S) -> an image, small ones upscaled (nearest neighbour) for the gallery."""
    img = pixels_to_image(pixels)
    if img.width < TILE:
        factor = -(-TILE // img.width)
        img = img.resize((img.width * factor, img.height * factor), Image.NEAREST)
    return img


def augment_grid(catalog: Catalog, recipe_name: str, sample: str | None = None, image=None,
                 seed: int = 0, copies: int = 12):
    """(recipe, sample name or uploaded image, seed, copies) -> (gallery items, recipe markdown).

    The uploaded image wins over the sample; the sample must be one of `samples()`.
    """
    table = recipes(catalog)
    recipe = table[inputs.choice(recipe_name, "recipe_name", list(table))]
    seed = inputs.whole_number(seed, "seed", 0, MAX_SEED)
    copies = inputs.whole_number(copies, "copies", 1, MAX_COPIES)
    known = samples()
    sample = inputs.text(sample, "sample")
    if not is_empty(image):
        img, what = read_image(image), "your image"
    else:
        if not sample:
            raise user_error("sample is missing: choose a sample image or upload one as image")
        img, what = decode_image(known[inputs.choice(sample, "sample", list(known))]), sample  # the app's own file
    stored = stored_form(img, recipe)
    augment = TrainAugment(crop=recipe.augment["crop"], padding=recipe.augment.get("padding", 0),
                           flip=bool(recipe.augment.get("flip", False)),
                           random_erasing=recipe.augment.get("random_erasing"),
                           mean=recipe.config.mean, std=recipe.config.std)
    # As in training, Random Erasing draws from its own generator, so with the same seed a
    # recipe with and one without erasing show the same crops and flips.
    with torch.inference_mode():
        batch = augment(stored.unsqueeze(0).repeat(copies, 1, 1, 1), torch.Generator().manual_seed(seed),
                        erase_generator=torch.Generator().manual_seed(seed + 1))
    shown = recipe.config.input_size
    items = [(_tile(stored), f"as stored, {stored.shape[-1]}x{stored.shape[-1]}")]
    items += [(to_pixels(x, recipe.config), f"#{i + 1}") for i, x in enumerate(batch)]
    re = recipe.augment.get("random_erasing")
    parts = [f"random crop {recipe.augment['crop']}x{recipe.augment['crop']}"
             + (f" after {recipe.augment['padding']} px zero padding" if recipe.augment.get("padding") else ""),
             "horizontal flip (p=0.5)" if recipe.augment.get("flip") else "no flip",
             f"normalise (mean {list(recipe.config.mean)}, std {list(recipe.config.std)})"]
    if re:
        parts.append(f"Random Erasing (p={re['p']}, area {re['scale'][0]}-{re['scale'][1]}, "
                     f"aspect {re['ratio'][0]}-{re['ratio'][1]}, fill {re.get('value', 'random')})")
    text = (f"**{recipe.name}** on {what}: " + " → ".join(parts) + f". Model input {shown}x{shown}. "
            f"Source: {recipe.source}; seed {seed}.")
    return items, text


def build(catalog: Catalog) -> None:
    names = list(recipes(catalog))
    sample_names = list(samples())
    gr.Markdown("The training augmentation of each model, applied to one image many times. Every copy "
                "gets its own random crop, flip and (with Random Erasing) rectangle: these are the "
                "exact transforms of training, read from the run's recipe.")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            recipe = gr.Dropdown(names, value=names[0], label="Recipe")
            sample = gr.Dropdown(sample_names, value=sample_names[0] if sample_names else None,
                                 label="Sample image", elem_id="augment-sample")
            image = gr.Image(label="…or your own image", sources=["upload", "clipboard"], type="filepath",
                             image_mode=None, height=200, elem_id="augment-upload")
            with gr.Row():
                seed = gr.Number(0, label="Seed", precision=0, minimum=0, maximum=MAX_SEED)
                copies = gr.Slider(1, MAX_COPIES, value=11, step=1, label="Copies")
            button = gr.Button("Augment", variant="primary")
        with gr.Column(scale=7):
            gallery = gr.Gallery(label="Augmented copies (first: the image as stored)", columns=4,
                                 height="auto", object_fit="contain", format="png", elem_id="augment-gallery")
            caption = gr.Markdown(label="Recipe", elem_id="augment-recipe")
    # The last choice wins: an upload (or a click on Augment) uses the uploaded image; picking a
    # sample uses the sample and removes the upload, so the image shown is always the one used.
    gr.on([button.click, recipe.change, image.upload, image.clear], inputs.endpoint(augment_grid, catalog, required=()),
          inputs=[recipe, sample, image, seed, copies], outputs=[gallery, caption], api_name="augment",
          preprocess=False, trigger_mode="once", **LIGHT_CONCURRENCY)
    sample.change(lambda r, name, sd, n: (*augment_grid(catalog, r, name, None, sd, n), None),
                  inputs=[recipe, sample, seed, copies], outputs=[gallery, caption, image], api_name="augment_sample",
                  api_visibility="private", **LIGHT_CONCURRENCY)
