"""Per-answer style counts for style control (length and markdown elements)."""

from __future__ import annotations

import re

from arenastack_arena.ratings.style import STYLE_FEATURES

_HEADER = re.compile(r"^#{1,6}\s", re.MULTILINE)
_LIST = re.compile(r"^\s*(?:[-*+]|\d+\.)\s", re.MULTILINE)
_BOLD = re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__")
_TOKEN = re.compile(r"\w+|[^\w\s]")


def answer_style(text: str) -> tuple[float, ...]:
    """Counts in STYLE_FEATURES order; tokens approximated by words and punctuation."""
    values = (
        len(_TOKEN.findall(text)),
        len(_HEADER.findall(text)),
        len(_LIST.findall(text)),
        len(_BOLD.findall(text)),
    )
    assert len(values) == len(STYLE_FEATURES)
    return tuple(map(float, values))


def total_style(texts: list[str]) -> tuple[float, ...]:
    """Style of a whole conversation side: the sum over its answers."""
    totals = [0.0] * len(STYLE_FEATURES)
    for text in texts:
        totals = [t + v for t, v in zip(totals, answer_style(text), strict=True)]
    return tuple(totals)
