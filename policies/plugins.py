"""Where policies come from: the built-ins, config-named plugins, entry points.

Loading is all-or-nothing: every source is imported and collected into a new
registry, and only when all succeed is that registry returned. A plugin with a
syntax error or a duplicate id fails the load with a message naming its file;
the caller (the webhook's config reload) keeps the registry it had.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points as installed_entry_points
from pathlib import Path
from types import ModuleType

from policies.registry import Entry, Mutation, Policy, PolicyDefinitionError, Registry

ENTRY_POINT_GROUP = "podgate.policies"
BUILTIN_MODULES = (
    "policies.resources",
    "policies.probes",
    "policies.non_root",
    "policies.image_digest",
    "policies.network_policy",
    "policies.defaults",
)


def collect(module: ModuleType, origin: str) -> list[Entry]:
    """The policies and mutations a module defines at its top level, tagged with origin.

    Objects merely imported into the module (a plugin reusing a built-in) are
    not collected again: only those whose function the module itself, or a
    submodule of it, defines. The submodule rule lets a plugin package's entry
    point name the package, whose `__init__` imports the policies from the
    modules that define them, as any Python package re-exports its API.
    """
    own = module.__name__
    return [
        value.with_origin(origin)
        for value in vars(module).values()
        if isinstance(value, Policy | Mutation)
        and (value.func.__module__ == own or value.func.__module__.startswith(own + "."))
    ]


class PluginError(ValueError):
    """A plugin that could not be loaded; the message names it and the cause."""


@functools.cache
def builtin_registry() -> Registry:
    entries: list[Entry] = []
    for name in BUILTIN_MODULES:
        entries.extend(collect(importlib.import_module(name), "builtin"))
    return Registry.of(*entries)


def _import_file(path: Path) -> ModuleType:
    """Import a .py file under a private module name derived from its path and content.

    The content is part of the name so that a plugin file edited in place (a
    ConfigMap the kubelet updates under a running webhook) is imported afresh
    on the next load instead of being served from `sys.modules`; an unchanged
    file is imported once however many times the config is loaded.
    """
    try:
        source = path.read_bytes()
    except OSError as exc:
        raise PluginError(f"cannot read: {exc}") from exc
    digest = hashlib.sha256(str(path.resolve()).encode() + b"\0" + source).hexdigest()[:12]
    name = f"podgate_plugin_{path.stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PluginError("not an importable Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]  # a later, fixed load must import it afresh
        raise
    return module


def policy_files(folder: Path) -> list[Path]:
    """The policy files of a folder, recursively.

    Hidden entries are skipped: a ConfigMap mounted as a volume holds each
    file three times, as `name.py` and under the kubelet's `..data` and
    `..<timestamp>` folders, and loading all three would define every policy
    thrice. Private modules, tests and caches are skipped too.
    """
    return sorted(
        p
        for p in folder.rglob("*.py")
        if not p.name.startswith(("_", "test_", "."))
        and not any(part.startswith(".") or part == "__pycache__"
                    for part in p.relative_to(folder).parts[:-1])
    )  # fmt: skip


def _load_source(source: str, base: Path) -> list[Entry]:
    """The entries of one `plugins:` item: a .py file, a folder of them, or a module."""
    # normalised (`a/../b` is `b`) so that errors and origins name the file plainly
    candidate = Path(os.path.normpath(source if Path(source).is_absolute() else base / source))
    if source.endswith(".py") or candidate.is_dir() or "/" in source:
        if candidate.is_dir():
            files = policy_files(candidate)
        elif candidate.is_file():
            files = [candidate]
        else:
            raise PluginError(f"{source}: no such file or folder (looked in {candidate})")
        entries: list[Entry] = []
        for file in files:
            entries.extend(_guarded(functools.partial(_import_file, file), f"file:{file}"))
        return entries
    return _guarded(lambda: importlib.import_module(source), f"module:{source}")


# Frames of podgate's loader and of importlib are not where a plugin went wrong.
_LOADER_DIRS = tuple(
    str(d.resolve()) + os.sep for d in (Path(__file__).parent, Path(importlib.__file__).parent)
)


def _raised_at(exc: BaseException) -> str:
    """` at file:line` of the plugin's own line that led to the exception.

    That is the first frame outside importlib and podgate: the plugin module's
    top-level statement (a deeper frame may be inside a library it called,
    which tells the author less than the line of their own file).
    """
    for frame in traceback.extract_tb(exc.__traceback__):
        if not frame.filename.startswith(("<", *_LOADER_DIRS)):
            return f" at {frame.filename}:{frame.lineno}"
    return ""


def _guarded(load: Callable[[], object], origin: str) -> list[Entry]:
    try:
        module = load()
    except (PolicyDefinitionError, PluginError) as exc:
        raise PluginError(f"{origin}: {exc}") from exc
    except SyntaxError as exc:
        raise PluginError(
            f"{origin}: syntax error at {exc.filename}:{exc.lineno}: {exc.msg}"
        ) from exc
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # SystemExit too: a plugin's sys.exit() must not end podgate
        raise PluginError(
            f"{origin}: import failed{_raised_at(exc)}: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(module, ModuleType):
        raise PluginError(f"{origin}: did not resolve to a module")
    entries = collect(module, origin)
    if not entries:
        raise PluginError(f"{origin}: defines no @policy or @mutation")
    return entries


def _entry_point_entries() -> list[Entry]:
    entries: list[Entry] = []
    for ep in installed_entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist is not None else "?"
        entries.extend(_guarded(ep.load, f"entry-point:{dist}:{ep.name}"))
    return entries


def load_registry(
    plugins: Sequence[str] = (),
    *,
    base: Path | None = None,
    entry_points: bool = True,
    registry: Registry | None = None,
) -> Registry:
    """The built-in (or given) registry plus every plugin; all or nothing."""
    base = base or Path.cwd()
    entries: list[Entry] = []
    for source in plugins:
        entries.extend(_load_source(source, base))
    if entry_points:
        entries.extend(_entry_point_entries())
    try:
        return (registry if registry is not None else builtin_registry()).extended(entries)
    except PolicyDefinitionError as exc:
        raise PluginError(str(exc)) from exc
