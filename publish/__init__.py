"""Sharing runs: push to the Hugging Face Hub, build the Space (publish.hub), the README's
results table (publish.results). Imports models/ and cards/, never training/."""
