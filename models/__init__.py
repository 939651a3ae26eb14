"""Architectures and the release artifact: everything needed to load and use a trained model.

Nothing here imports `training/`: the app and any Hub user need only this package.
"""

__version__ = "0.1.0"
