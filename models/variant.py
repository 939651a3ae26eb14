"""The variant of a run: the baseline, or the same recipe with Random Erasing.

One fact, one home: config.json's "variant" says which; the recipe's
`augment.random_erasing` holds the erasing parameters of a Random Erasing run (None for the
baseline); the runs/ folder of a variant is `<task><folder_suffix>` (`catsdogs`, `catsdogs-re`).
"""
from __future__ import annotations

from enum import StrEnum


class Variant(StrEnum):
    BASELINE = "baseline"
    RANDOM_ERASING = "random-erasing"

    @property
    def folder_suffix(self) -> str:
        return "-re" if self is Variant.RANDOM_ERASING else ""

    @property
    def title(self) -> str:
        """How the app and the card name it."""
        return "Random Erasing" if self is Variant.RANDOM_ERASING else "baseline"

    def task_folder(self, task: str) -> str:
        """The runs/ folder of this variant of `task`: runs/<task_folder>/<run-name>/."""
        return f"{task}{self.folder_suffix}"

    @classmethod
    def of(cls, config: dict) -> "Variant":
        """The variant config.json records; a config without one (written before variants
        existed) is a baseline."""
        value = config.get("variant")
        try:
            return cls(value) if value else cls.BASELINE
        except ValueError:
            raise ValueError(f"config.json: unknown variant {value!r}; "
                             f"expected {' or '.join(v.value for v in cls)}") from None


BASELINE = Variant.BASELINE
RANDOM_ERASING = Variant.RANDOM_ERASING
