"""Kubernetes resource quantities (``500m``, ``2Gi``, ``1e3``) as exact fractions."""

from __future__ import annotations

import math
import re
from fractions import Fraction

_SUFFIX = {
    "": Fraction(1),
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
    "Ki": Fraction(2**10),
    "Mi": Fraction(2**20),
    "Gi": Fraction(2**30),
    "Ti": Fraction(2**40),
    "Pi": Fraction(2**50),
    "Ei": Fraction(2**60),
}
_RE = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|[a-zA-Z]*)$")


def parse(value: str | int | float) -> Fraction:
    text = str(value).strip()
    match = _RE.match(text)
    if not match:
        raise ValueError(f"not a quantity: {value!r}")
    number, suffix = match.groups()
    if suffix[:1] in ("e", "E"):
        return Fraction(number) * Fraction(10) ** int(suffix[1:])
    if suffix not in _SUFFIX:
        raise ValueError(f"unknown quantity suffix in {value!r}")
    return Fraction(number) * _SUFFIX[suffix]


def ceil_div(value: Fraction, divisor: Fraction) -> int:
    """What the downward API reports: the value in divisor units, rounded up."""
    return math.ceil(value / divisor)
