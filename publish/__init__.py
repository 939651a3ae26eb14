"""Sharing runs. Imports models/ and cards/, never training/.

    publish.hub        push a run to a Hub model repo; the CLI (python -m publish.hub push|space)
    publish.space      the Gradio Space folder: what the app runs, requirements, README header
    publish.hub_code   cnn_studio.py, the standalone code uploaded into each model repo
    publish.results    the README's results table from committed results/ folders
    publish.common     one-line errors, repo ids, token, user agent
"""
