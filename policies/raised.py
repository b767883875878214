"""Where a policy that raised raised, for its author (`podgate check -v`)."""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable
from typing import Any


def raised_at(exc: BaseException, func: Callable[..., Any]) -> str:
    """`plugins/team.py:12 in require_team_label`: the deepest line of the
    policy's own file in the traceback, then the line that raised when that
    is elsewhere (a helper, a library): `(raised at yaml/x.py:3 in load)`."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    code = getattr(func, "__code__", None)
    own_file = code.co_filename if code is not None else None
    own = [f for f in frames if f.filename == own_file]
    deepest = frames[-1]
    if not own:
        return _where(deepest)
    text = _where(own[-1])
    return text if own[-1] is deepest else f"{text} (raised at {_where(deepest)})"


def _where(frame: traceback.FrameSummary) -> str:
    path = frame.filename
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        relative = path
    shown = relative if not relative.startswith("..") else path
    return f"{shown}:{frame.lineno} in {frame.name}"
