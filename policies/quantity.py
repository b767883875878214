"""Kubernetes resource quantities (`100m`, `128Mi`, `1.5`, `2e3`) as exact decimals."""

from __future__ import annotations

import functools
import re
from decimal import Decimal, InvalidOperation

_SUFFIXES: dict[str, Decimal] = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}
_QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:\d+\.?\d*|\.\d+))(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$"
)


class InvalidQuantity(ValueError):
    pass


def parse_quantity(value: object) -> Decimal:
    """The quantity's value in base units (cores, bytes). Raises InvalidQuantity."""
    if isinstance(value, bool):
        raise InvalidQuantity(f"{value!r} is not a quantity")
    if isinstance(value, int | float):
        return Decimal(str(value))
    if not isinstance(value, str):
        raise InvalidQuantity(f"{value!r} is not a quantity")
    return _parse_string(value)


@functools.lru_cache(maxsize=1024)
def _parse_string(value: str) -> Decimal:
    """Cached: a cluster uses a handful of distinct quantities over and over."""
    match = _QUANTITY.match(value.strip())
    if match is None:
        raise InvalidQuantity(f"{value!r} is not a quantity (expected e.g. 100m, 128Mi, 1.5)")
    try:
        number = Decimal(match["number"])
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only numbers
        raise InvalidQuantity(f"{value!r} is not a quantity") from exc
    suffix = match["suffix"] or ""
    factor = _SUFFIXES.get(suffix)  # `E` and `Ei` are exa and exbi, not exponents
    if factor is not None:
        return number * factor
    return number * Decimal(10) ** int(suffix[1:])
