"""The two verdict scales a pairwise judge answers on.

Labels, the winner each one names, its mirror image (what the label becomes
when the two answers are shown the other way round) and the spellings a judge
may use are all defined here, so the prompt that teaches the labels and the
parser that reads them back cannot drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from arenastack_arena.ratings.counts import OUTCOMES

# The arena's vote outcomes, so judge games and human votes share one vocabulary.
MODEL_A, MODEL_B, TIE, TIE_BOTHBAD = OUTCOMES
THREE = "three"
FIVE = "five"


@dataclass(frozen=True)
class Label:
    text: str
    winner: str
    strong: bool
    mirror: str
    meaning: str


@dataclass(frozen=True)
class Scale:
    name: str
    labels: tuple[Label, ...]
    # Upper-cased, whitespace-free spelling -> canonical label text.
    spellings: Mapping[str, str]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(label.text for label in self.labels)

    def label(self, text: str) -> Label:
        for label in self.labels:
            if label.text == text:
                return label
        raise ValueError(f"{text!r} is not a label of the {self.name} scale")

    def normalise(self, raw: str) -> str | None:
        """The canonical label for a judge's spelling, or None when off this scale."""
        return self.spellings.get(spelling_key(raw))


def spelling_key(raw: str) -> str:
    return re.sub(r"\s+", "", raw).upper()


THREE_SCALE = Scale(
    THREE,
    (
        Label("A", MODEL_A, False, "B", "Assistant A's reply is better"),
        Label("B", MODEL_B, False, "A", "Assistant B's reply is better"),
        Label("tie", TIE, False, "tie", "the replies are about equally good"),
    ),
    # [[C]] is MT-Bench's tie; accepting it lets MT-Bench-tuned judges work unchanged.
    {"A": "A", "B": "B", "TIE": "tie", "C": "tie"},
)

FIVE_SCALE = Scale(
    FIVE,
    (
        Label("A>>B", MODEL_A, True, "B>>A", "Assistant A's reply is much better"),
        Label("A>B", MODEL_A, False, "B>A", "Assistant A's reply is better"),
        Label("A=B", TIE, False, "A=B", "the replies are about equally good"),
        Label("B>A", MODEL_B, False, "A>B", "Assistant B's reply is better"),
        Label("B>>A", MODEL_B, True, "A>>B", "Assistant B's reply is much better"),
    ),
    # The same relations written the other way round mean the same verdict.
    {
        "A>>B": "A>>B",
        "B<<A": "A>>B",
        "A>B": "A>B",
        "B<A": "A>B",
        "A=B": "A=B",
        "B=A": "A=B",
        "B>A": "B>A",
        "A<B": "B>A",
        "B>>A": "B>>A",
        "A<<B": "B>>A",
    },
)

SCALES: Mapping[str, Scale] = {s.name: s for s in (THREE_SCALE, FIVE_SCALE)}
# Any spelling of any scale: a [[...]] holding one of these is a verdict, even if
# it is on the wrong scale (an error then), while [[other text]] is just prose.
ALL_SPELLINGS = frozenset(key for s in SCALES.values() for key in s.spellings)


def get_scale(name: str) -> Scale:
    try:
        return SCALES[name]
    except KeyError:
        raise ValueError(
            f"unknown verdict scale {name!r}; expected one of {', '.join(SCALES)}"
        ) from None
