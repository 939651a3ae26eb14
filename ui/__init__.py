"""The Gradio app's tabs: one module per tab, plain handler functions first, then `build()`.

`ui.catalog` holds the models the app serves (local run directories and Hub repos);
handlers take the catalog as their first argument so tests call them without a server.
Nothing here imports `training/` (tests/test_architecture.py checks it): training transforms
come from `models.augment`, training jobs run as `python -m training.train` processes (ui/jobs.py).
"""
