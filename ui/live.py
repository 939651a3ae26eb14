"""Components whose content comes from the catalog, re-rendered when it reloads.

A tab creates its model dropdowns, notices and example galleries through `dropdown(...)` /
`markdown(...)` / `follow(...)` instead of creating them bare: the same component, plus a note in
the catalog of how to recompute it. `wire(...)` then connects page load, the "Reload models"
button and the Train tab's "a run finished" signal to one handler that calls `catalog.reload()`,
then re-renders every registered component, so all lists agree.

A dropdown keeps the user's choice when it is still listed and was never a default of the catalog
(catalog.former_defaults); otherwise it takes the catalog's default: one default everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

import gradio as gr

from ui import serving
from ui.catalog import Catalog

# <body data-views-rendered="<time>">: set in the page after every redraw of the views.
VIEWS_MARK = "viewsRendered"


@dataclass
class LiveView:
    component: gr.components.Component
    render: Callable[[Any], Any]        # current value -> new component state
    takes_value: bool                   # the current value is an input of the refresh


def _views(catalog: Catalog) -> list[LiveView]:
    """The live views of the app being built. Kept per app: one catalog can serve two apps in one
    process (the tests do), and each app's reload event may only name its own components."""
    return catalog.live_views.setdefault(gr.context.Context.root_block, [])


class RunDropdown(gr.Dropdown):
    """A gr.Dropdown of catalog keys. Its choices change while the app runs, and an API call sees
    those of the page as first built, so Gradio's check against them is left out: the handler
    looks the key up in the catalog, which names a key it does not know."""
    is_template = True

    def preprocess(self, payload):
        return payload


def follow(catalog: Catalog, component, render: Callable[[Any], Any], *, takes_value: bool = False):
    """`component`, re-rendered by `render(current value or None)` whenever the catalog reloads."""
    _views(catalog).append(LiveView(component, render, takes_value))
    return component


def dropdown(catalog: Catalog, choices: Callable[[], list], default: Callable[[], Any], **kwargs) -> gr.Dropdown:
    """A RunDropdown whose choices follow the catalog (`choices()`: (label, key) pairs or keys;
    `default()`: the value when the current one is gone or a former default; a list when multiselect)."""
    multiselect = bool(kwargs.get("multiselect"))

    def render(current):
        options = choices()
        keys = [c[1] if isinstance(c, (tuple, list)) else c for c in options]
        if multiselect:
            value = [k for k in (current or []) if k in keys] or default()
        else:
            value = current if current in keys and current not in catalog.former_defaults else default()
        return gr.Dropdown(choices=options, value=value, multiselect=multiselect)

    return follow(catalog, RunDropdown(choices(), value=default(), **kwargs), render, takes_value=True)


def markdown(catalog: Catalog, text: Callable[[], str], *, hide_empty: bool = False, **kwargs) -> gr.Markdown:
    """A gr.Markdown whose text follows the catalog (hidden while empty when `hide_empty`)."""
    def render(_):
        value = text()
        return gr.Markdown(value, visible=bool(value) or not hide_empty)
    first = text()
    return follow(catalog, gr.Markdown(first, visible=bool(first) or not hide_empty, **kwargs), render)


def latest_views(catalog: Catalog) -> list[LiveView]:
    """The live views of the app built last on `catalog` (outside any Blocks: for tests and tools)."""
    return list(catalog.live_views.values())[-1] if catalog.live_views else []


def render_all(catalog: Catalog, *current, views: list[LiveView] | None = None) -> list:
    """Every registered component's new state; `current` are the values of the views that take one, in order.
    `views`: one app's views (default: those of the app built last on this catalog)."""
    if views is None:
        views = latest_views(catalog)
    values = iter(current)
    return [v.render(next(values, None) if v.takes_value else None) for v in views]


def wire(catalog: Catalog, triggers: list, *, api_name: str, outputs: list, first: Callable[[], Any]):
    """On any of `triggers`: reload the catalog and return `first()` for `outputs` (the public
    `api_name` endpoint, no inputs: what an API caller uses), then re-render every live view with
    the page's current choices as inputs (a private follow-up step)."""
    def reload():
        catalog.reload()
        return first()

    # Reloading can load a new model's weights (a second or more): the status shows a spinner.
    event = gr.on(triggers, reload, inputs=None, outputs=outputs, api_name=api_name,
                  show_progress="minimal", **serving.LIGHT.event_options())
    return rerender_after(catalog, event, api_name=api_name)


def rerender_after(catalog: Catalog, event, *, api_name: str):
    """After `event` (one that changed the catalog), re-render every live view of the app being
    built, with the page's current choices as inputs (a private follow-up step `<api_name>_views`)."""
    views = _views(catalog)
    rendered = event.then(partial(render_all, catalog, views=views), api_name=f"{api_name}_views",
                          inputs=[v.component for v in views if v.takes_value], outputs=[v.component for v in views],
                          api_visibility="private", show_progress="hidden", **serving.LIGHT.event_options())
    # In the page: when the lists were last redrawn (a page that just opened has its final lists and
    # tab from then on; browser tests and scripts wait for it before they click).
    return rendered.then(None, js=f"() => {{ document.body.dataset.{VIEWS_MARK} = String(Date.now()); }}")
