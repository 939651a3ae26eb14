"""The Gradio app's tabs: one module per tab, plain handler functions first, then `build()`.

`ui.catalog` holds the models the app serves (local run directories and Hub repos);
handlers take the catalog as their first argument so tests call them without a server.
Nothing here imports `training/` except `ui.augment_tab`, lazily, for the training
transforms (see that module).
"""
