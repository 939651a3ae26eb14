"""The "See why" tab's sub-tabs, one module each: `build(catalog, ...)` inside an open gr.Tab,
plus the catalog adapters its events call (keys in, one-line gr.Error out).

`adapters` holds what several sub-tabs share (run choices, labels, validation images);
`ui.explain_tab` composes the sub-tabs; the numbers come from `ui.explain_handlers`.
"""
