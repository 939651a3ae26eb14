"""See why tab: Grad-CAM, confusion matrix -> gallery, occlusion playground, decision threshold and
calibration, the most confidently wrong images (top losses), and the Random Erasing study with its uncertainty.

One module per sub-tab in `ui/why/`, each with its plain handlers and its `build`; what they share
is in `ui/why/adapters.py`. Everything is read from a run's own files (a run folder, a Space or a
Hub repo alike) or computed by the model: no dataset is read here.
"""
from __future__ import annotations

import gradio as gr

from ui.catalog import Catalog
from ui.why import erasing, errors, gradcam, occlusion, threshold

SUB_TABS = [("Grad-CAM", gradcam), ("Confusion matrix", errors), ("Occlusion playground", occlusion),
            ("Threshold & calibration", threshold), ("Random Erasing study", erasing)]


def build(catalog: Catalog) -> None:
    gr.Markdown("Why a model answers as it does, and how sure we can be of it. Everything here is read from "
                "the runs' files (`metrics.json`, `predictions.json`, `see_why/`, `comparison.json`) or "
                "computed by the model itself.")
    with gr.Tabs():
        for title, module in SUB_TABS:
            with gr.Tab(title, id=f"why-{module.__name__.rsplit('.', 1)[-1]}"):
                module.build(catalog)
