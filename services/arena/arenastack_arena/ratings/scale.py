"""The Elo display scale shared by every rating method."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DEFAULT_SCALE = 400.0
DEFAULT_BASE = 10.0
DEFAULT_INIT = 1000.0


@dataclass(frozen=True)
class EloScale:
    """Maps natural-log strengths (mean zero) to Elo points.

    rating = init + scale / ln(base) * theta, then optionally shifted so that
    ``anchor`` has ``anchor_rating`` (the public board pins mixtral at 1114).
    """

    scale: float = DEFAULT_SCALE
    base: float = DEFAULT_BASE
    init: float = DEFAULT_INIT
    anchor: str | None = None
    anchor_rating: float = DEFAULT_INIT

    @property
    def factor(self) -> float:
        """Elo points per natural-log unit of strength."""
        return self.scale / math.log(self.base)

    def offset(self, theta: np.ndarray, models: tuple[str, ...]) -> float:
        """The constant added to ``init + factor * theta`` (non-zero only when anchored)."""
        if self.anchor is None:
            return 0.0
        try:
            k = models.index(self.anchor)
        except ValueError:
            raise ValueError(f"anchor model {self.anchor!r} has no battles") from None
        return self.anchor_rating - (self.init + self.factor * float(theta[k]))

    def to_elo(self, theta: np.ndarray, models: tuple[str, ...]) -> np.ndarray:
        return self.init + self.factor * np.asarray(theta) + self.offset(theta, models)
