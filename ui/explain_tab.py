"""See why tab: Grad-CAM, confusion matrix -> gallery, occlusion playground, decision threshold and
calibration, top losses, and the Random Erasing study with its uncertainty.

One module per sub-tab in `ui/why/` (its adapters and its `build`); the numbers come from
`ui/explain_handlers.py`. This module only lays the sub-tabs out.
"""
from __future__ import annotations

import gradio as gr

from ui.catalog import Catalog
from ui.why import confusion, erasing, gradcam, losses, occlusion, threshold
from ui.why.adapters import Images, default_data_dir


def build(catalog: Catalog, data_dir=None) -> None:
    images = Images(data_dir if data_dir is not None else default_data_dir())
    gr.Markdown("Why a model answers as it does, and how sure we can be of it. Everything here is read "
                "from the runs' files (`metrics.json`, `predictions.json`, `comparison.json`) or computed "
                "by the model itself.")
    with gr.Tabs():
        with gr.Tab("Grad-CAM", id="why-gradcam"):
            gradcam.build(catalog)
        with gr.Tab("Confusion matrix", id="why-confusion"):
            confusion.build(catalog, images)
        with gr.Tab("Occlusion playground", id="why-occlusion"):
            occlusion.build(catalog)
        with gr.Tab("Threshold & calibration", id="why-threshold"):
            threshold.build(catalog)
        with gr.Tab("Top losses", id="why-losses"):
            losses.build(catalog, images)
        with gr.Tab("Random Erasing study", id="why-erasing"):
            erasing.build(catalog)
