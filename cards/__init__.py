"""Model cards: a run directory's facts -> README.md with Hugging Face metadata.

    from cards import write_card
    write_card("runs/mnist/20261129-170000")   # -> Path to README.md
"""
from cards.card import CardError, card_data, read_facts, render_card, write_card

__all__ = ["CardError", "card_data", "read_facts", "render_card", "write_card"]
