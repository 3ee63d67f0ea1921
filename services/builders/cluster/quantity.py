"""Kubernetes resource quantities (`10G`, `2Gi`, `1.5e3`, `2147483648`) as exact numbers.

Why it exists: the apiserver keeps a quantity's value but rewrites its spelling into the canonical
form (`10000000000` is stored as `10G`, `1024Ki` stays `1Mi`), so two quantities can only be
compared by value. Exact `Fraction`s, so that no size is ever rounded into looking equal.
What it does not do: format quantities back (we always send plain byte counts) or check limits
the apiserver enforces (its own validation answers that).
"""

from __future__ import annotations

import re
from fractions import Fraction

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
# <signedNumber><suffix>, the grammar of k8s.io/apimachinery/pkg/api/resource.Quantity.
_QUANTITY = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?")


def parse(quantity: str | int) -> Fraction:
    """The exact value of a quantity; ValueError for anything the apiserver would not accept."""
    text = str(quantity).strip()
    match = _QUANTITY.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a Kubernetes quantity")
    number, suffix = Fraction(match.group(1)), match.group(2) or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    exponent = _DECIMAL[suffix] if suffix in _DECIMAL else int(suffix[1:])
    return number * Fraction(10) ** exponent


def same(a: str | int | None, b: str | int | None) -> bool:
    """Whether two quantities have the same value; an absent or malformed one equals nothing."""
    if a is None or b is None:
        return False
    try:
        return parse(a) == parse(b)
    except ValueError:
        return False
