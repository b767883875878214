"""JSON out on the hot path: the admission response, its patch, the log line.

orjson encodes these far faster than the standard library's `json.dumps`,
which builds a new encoder on every call with options. Output is compact
UTF-8. What orjson refuses
(integers beyond 64 bits, which a user's manifest can hold and a patch can
copy) goes through the standard library instead, so nothing fails to encode.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def dumps(value: Any) -> bytes:
    """Compact JSON as UTF-8 bytes; anything not JSON by nature is written as `str()`."""
    try:
        return orjson.dumps(value, default=str)
    except orjson.JSONEncodeError:
        return json.dumps(value, default=str, separators=(",", ":"), ensure_ascii=False).encode()
