"""Kubernetes resource quantities (`100m`, `128Mi`, `1.5`, `2e3`) as exact decimals."""

from __future__ import annotations

import functools
import re
from decimal import Decimal, DecimalException

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


# The same syntax for JSON Schema (the chart's values.schema.json): no named
# groups, which not every schema validator's regular expressions know.
QUANTITY_PATTERN = r"^\s*[+-]?(\d+\.?\d*|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?\s*$"


class InvalidQuantity(ValueError):
    pass


# Past this, a number is no resource amount any node has: a typo or an attack
# (`1e9999999` would overflow the arithmetic that compares quantities).
MAX_EXPONENT = 30
_MAX = Decimal(10) ** MAX_EXPONENT
_QUOTED = 40  # how much of a bad value a message quotes


def parse_quantity(value: object) -> Decimal:
    """The quantity's value in base units (cores, bytes). Raises InvalidQuantity,
    never anything else: a bad quantity is the object's fault, a violation."""
    if isinstance(value, bool):
        raise InvalidQuantity(f"{value!r} is not a quantity")
    if isinstance(value, int | float):
        return _in_range(Decimal(str(value)), repr(value))
    if not isinstance(value, str):
        raise InvalidQuantity(f"{_quoted(repr(value))} is not a quantity")
    return _parse_string(value)


def _quoted(text: str) -> str:
    return text if len(text) <= _QUOTED else f"{text[:_QUOTED]}…"


def _in_range(number: Decimal, written: str) -> Decimal:
    if not number.is_finite() or abs(number) >= _MAX:
        raise InvalidQuantity(
            f"{_quoted(written)} is out of range (a quantity is below 1e{MAX_EXPONENT})"
        )
    return number


@functools.lru_cache(maxsize=1024)
def _parse_string(value: str) -> Decimal:
    """Cached: a cluster uses a handful of distinct quantities over and over."""
    match = _QUANTITY.match(value.strip())
    if match is None:
        raise InvalidQuantity(
            f"{_quoted(repr(value))} is not a quantity (expected e.g. 100m, 128Mi, 1.5)"
        )
    number_text, suffix = match["number"], match["suffix"] or ""
    factor = _SUFFIXES.get(suffix)  # `E` and `Ei` are exa and exbi, not exponents
    # Checked before any arithmetic: the digits and the exponent as written are
    # bounded, so nothing below can overflow or take long.
    digits = len(number_text.lstrip("+-").split(".")[0].lstrip("0"))
    exponent = 0 if factor is not None else _exponent(suffix[1:])
    if exponent is None or digits + exponent > MAX_EXPONENT + 1:
        raise InvalidQuantity(
            f"{_quoted(repr(value))} is out of range (a quantity is below 1e{MAX_EXPONENT})"
        )
    try:
        number = Decimal(number_text) * (factor if factor is not None else Decimal(10) ** exponent)
    except DecimalException as exc:  # pragma: no cover - bounded above
        raise InvalidQuantity(f"{_quoted(repr(value))} is not a quantity") from exc
    return _in_range(number, repr(value))


def _exponent(text: str) -> int | None:
    """A decimal exponent as written, None when it is absurdly long."""
    return int(text) if len(text.lstrip("+-")) <= 6 else None
