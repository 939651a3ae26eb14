"""Architecture tab: each model's layer table from torchinfo, at the model's real input size.

Works without weights: the table depends only on the architecture, so a freshly built model
(models.registry.create_model) is summarised. The config is the default run's config.json
when one is loaded, else the task's record (models/tasks.py).
"""
from __future__ import annotations

from functools import lru_cache

import gradio as gr
import pandas as pd
import torch
import torchinfo

from models.registry import ARCHITECTURES, ModelConfig, create_model
from models.tasks import BASELINE, TASKS
from ui.catalog import Catalog
from ui import inputs
from ui.common import LIGHT_CONCURRENCY

DEPTHS = (1, 2, 3, 4)


def model_configs(catalog: Catalog) -> dict[str, ModelConfig]:
    """Display name -> config, one per task: the default run's config, else the preset."""
    out = {}
    for task, record in TASKS.items():
        entry = catalog.default_entry(task, BASELINE)
        if not entry and not record.labels:
            continue          # a folder task has no model before a run gives it labels
        cfg = entry.loaded.config if entry else record.model_config()
        out[f"{record.title}: {cfg.architecture}"] = cfg
    return out


NBSP = "\u00a0"   # a space HTML does not collapse: the tree's indentation survives in the table


@lru_cache(maxsize=16)
def summarise(cfg: ModelConfig, depth: int = 2) -> tuple[pd.DataFrame, int, int]:
    """(layer table, total parameters, total multiply-adds) of `cfg`'s architecture.

    Rows are torchinfo's: a container's parameters are shown on its sublayers ("--" on the
    container itself) unless the table stops at its depth, so the parameter column sums to
    the total.
    """
    torch.manual_seed(0)
    model = create_model(cfg).eval()
    stats = torchinfo.summary(model, input_size=(1, cfg.in_channels, cfg.input_size, cfg.input_size),
                              depth=depth, verbose=0, device="cpu",
                              col_names=("output_size", "num_params", "mult_adds"))
    rows = []
    for layer in (layer for layer in stats.summary_list if 1 <= layer.depth <= depth):
        shown = layer.is_leaf_layer or layer.depth == depth
        # torchinfo's own tree guides (├─, │ └─), top-level layers without any.
        prefix = stats.formatting.get_start_str(layer.depth - 1).replace(" ", NBSP)
        rows.append({
            "layer": prefix + layer.get_layer_name(show_var_name=True, show_depth=False),
            "output shape": " x ".join(str(d) for d in layer.output_size),
            "parameters": f"{layer.num_params:,}" if shown else "--",
            "mult-adds": f"{layer.macs:,}" if shown else "--",
        })
    return pd.DataFrame(rows), int(stats.total_params), int(stats.total_mult_adds)


def architecture(catalog: Catalog, model_name: str, depth: int = 2):
    """(model name, table depth) -> (layer table, totals markdown)."""
    configs = model_configs(catalog)
    cfg = configs[inputs.choice(model_name, "model_name", list(configs))]
    depth = inputs.whole_number(depth, "depth", min(DEPTHS), max(DEPTHS))
    table, params, macs = summarise(cfg, depth)
    side = cfg.input_size
    head = f"sigmoid: P({cfg.labels[1]})" if cfg.binary else f"softmax over {cfg.num_classes} classes"
    text = (f"**{ARCHITECTURES[cfg.architecture].description}**. Input 1x{cfg.in_channels}x{side}x{side}, "
            f"{cfg.num_outputs} output{'s' if cfg.num_outputs > 1 else ''} ({head}).  \n"
            f"Total parameters: **{params:,}** · multiply-adds per image: **{macs / 1e9:.3f} G** ({macs:,})")
    return table, text


def build(catalog: Catalog) -> None:
    names = list(model_configs(catalog))
    gr.Markdown("The layers of each model with their output shapes and parameter counts (torchinfo), "
                "computed at the model's real input size. No weights needed.")
    with gr.Row():
        name = gr.Dropdown(names, value=names[0], label="Model", scale=3, elem_id="architecture-model")
        depth = gr.Radio(list(DEPTHS), value=2, label="Table depth", scale=2)
    first_table, first_text = architecture(catalog, names[0], 2)
    totals = gr.Markdown(first_text, label="Totals", elem_id="architecture-totals")
    table = gr.Dataframe(first_table, interactive=False, wrap=False, max_height=520,
                         column_widths=["45%", "25%", "15%", "15%"], label="Layers", elem_id="architecture-table")
    gr.on([name.change, depth.change], inputs.endpoint(architecture, catalog, images=()), inputs=[name, depth],
          outputs=[table, totals], api_name="architecture", preprocess=False, **LIGHT_CONCURRENCY)
