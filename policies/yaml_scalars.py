"""What a YAML scalar means to kubectl: go-yaml v2's resolver, then a JSON round trip.

kubectl reads a manifest with sigs.k8s.io/yaml, which decodes it with go-yaml
v2 (YAML 1.1's booleans, but not its sexagesimal numbers or `=`), turns
every key into a string and hands the API server JSON; numbers then come
back as integers when their JSON text is one. PyYAML's resolvers differ
from go-yaml's in a dozen places (tests/unit/test_yaml_reading.py has one
case per difference), so podgate resolves plain scalars here instead.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import struct
from decimal import Decimal
from typing import Any

STR = "tag:yaml.org,2002:str"
NULL = "tag:yaml.org,2002:null"
BOOL = "tag:yaml.org,2002:bool"
INT = "tag:yaml.org,2002:int"
FLOAT = "tag:yaml.org,2002:float"
MERGE = "tag:yaml.org,2002:merge"
BINARY = "tag:yaml.org,2002:binary"
TIMESTAMP = "tag:yaml.org,2002:timestamp"


class ScalarError(ValueError):
    """A scalar kubectl would not read; the message says why."""


# go-yaml v2's table of words, `y` and `n` included (PyYAML has neither).
WORDS: dict[str, tuple[str, Any]] = {
    **dict.fromkeys(("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE"), (BOOL, True)),
    **dict.fromkeys(("on", "On", "ON"), (BOOL, True)),
    **dict.fromkeys(("n", "N", "no", "No", "NO", "false", "False", "FALSE"), (BOOL, False)),
    **dict.fromkeys(("off", "Off", "OFF"), (BOOL, False)),
    **dict.fromkeys(("", "~", "null", "Null", "NULL"), (NULL, None)),
    **dict.fromkeys((".nan", ".NaN", ".NAN"), (FLOAT, math.nan)),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), (FLOAT, math.inf)),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), (FLOAT, -math.inf)),
    "<<": (MERGE, "<<"),
}

# Go's strconv.ParseInt(s, 0, 64) after go-yaml removed every `_`: a sign,
# then 0x, 0o, 0b (either case) or a leading 0 for octal, else decimal.
_GO_INT = re.compile(r"[-+]?(?:0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)\Z")
_GO_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?\Z")
_INT64 = 2**63


def _go_int(plain: str) -> int | None:
    """The integer Go reads, or None. Past 64 bits go-yaml keeps a big integer,
    which the JSON round trip turns into a float (see `json_number`)."""
    if not _GO_INT.match(plain):
        return None
    sign = -1 if plain.startswith("-") else 1
    digits = plain.lstrip("+-")
    if len(digits) > 1 and digits[0] == "0" and digits[1] not in "xXoObB":
        digits = "0o" + digits[1:]  # Go's leading-zero octal
    return sign * int(digits, 0)


def resolve_plain(text: str) -> str:
    """The tag go-yaml v2 gives a plain (unquoted, untagged) scalar."""
    word = WORDS.get(text)
    if word is not None:
        return word[0]
    first = text[0]
    if first == ".":
        return FLOAT if _finite_float(text) else STR
    if first in "0123456789+-":
        # A timestamp (2024-01-01) stays a string in an untyped document, as
        # anything that is no number does: no need to tell them apart.
        plain = text.replace("_", "")
        if _go_int(plain) is not None:
            return INT
        if _finite_float(plain):
            return FLOAT
    return STR


def _finite_float(text: str) -> bool:
    """Go's ParseFloat refuses what overflows (`1e999`): such text stays a string."""
    return _GO_FLOAT.match(text) is not None and math.isfinite(float(text))


def json_number(value: int | float) -> int | float:
    """A number as it comes back from kubectl's JSON: an integral float
    within 64 bits is an integer (`1.0`, `1e3`); an integer past 64 bits is
    a float; NaN and infinities are refused, as JSON has neither."""
    if isinstance(value, int):
        return value if -_INT64 <= value < _INT64 else _finite(float(value))
    value = _finite(value)
    if value.is_integer() and -_INT64 <= value < _INT64:
        return int(value)
    return value


def _finite(value: float) -> float:
    if math.isnan(value) or math.isinf(value):
        raise ScalarError(
            f"{_written(value)} is no number JSON can hold: kubectl refuses the document"
        )
    return value


def _written(value: float) -> str:
    return ".nan" if math.isnan(value) else ("-.inf" if value < 0 else ".inf")


def construct(tag: str, text: str) -> Any:
    """The value of a scalar with this tag: implicit (from `resolve_plain`) or
    written (`!!int 3`). A written tag the text does not fit is refused, as
    go-yaml refuses it; a tag go-yaml does not know keeps the text."""
    if tag in (INT, FLOAT, BOOL, NULL):
        found = _standard(text)
        if found is not None and (found[0] == tag or (tag == FLOAT and found[0] == INT)):
            value = found[1]
            return json_number(value) if isinstance(value, int | float) and tag != BOOL else value
        what = found[0] if found is not None else STR
        raise ScalarError(f"cannot read !!{_short(what)} `{text}` as a !!{_short(tag)}")
    if tag == MERGE:
        return text  # `<<` as a value, not as a key
    if tag == BINARY:
        try:
            return base64.b64decode("".join(text.split()), validate=True).decode(
                "utf-8", errors="replace"
            )
        except (binascii.Error, ValueError) as exc:
            raise ScalarError("!!binary value contains invalid base64 data") from exc
    return text  # !!str, !!timestamp, a local tag (`!foo`): the text itself


def _standard(text: str) -> tuple[str, Any] | None:
    """(tag, value) of the text as go-yaml resolves it, None for a string."""
    word = WORDS.get(text)
    if word is not None:
        return word
    tag = resolve_plain(text) if text else STR
    if tag == INT:
        value = _go_int(text.replace("_", ""))
        return (INT, value) if value is not None else None
    if tag == FLOAT:
        return FLOAT, float(text.replace("_", ""))
    return None


def _short(tag: str) -> str:
    return tag.rpartition(":")[2]


def key_text(tag: str, text: str) -> str | None:
    """A mapping key as sigs.k8s.io/yaml writes it into JSON: numbers and
    booleans as text (`1`, `true`, a float as Go prints a float32); None
    for a null key, which it refuses."""
    if tag == FLOAT:
        found = _standard(text)
        return _go_float32_g(float(found[1]) if found is not None else math.nan)
    if tag == INT:
        number = _go_int(text.replace("_", ""))
        return str(number) if number is not None else text
    value = construct(tag, text)
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _go_float32_g(value: float) -> str:
    """strconv.FormatFloat(value, 'g', -1, 32): the shortest digits that read
    back as the same float32, in exponent form from 1e+06 up and below 1e-04."""
    if math.isnan(value) or math.isinf(value):
        return _written(value)
    single = struct.unpack("f", struct.pack("f", value))[0]
    digits = f"{single:.8e}"
    for precision in range(9):
        candidate = f"{single:.{precision}e}"
        if struct.unpack("f", struct.pack("f", float(candidate)))[0] == single:
            digits = candidate
            break
    mantissa, _, exponent_text = digits.partition("e")
    exponent = int(exponent_text)
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    if exponent < -4 or exponent >= 6:
        return f"{mantissa}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    return format(Decimal(digits).normalize(), "f")
