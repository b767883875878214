"""What podgate's collectors expose, found by importing every module of the
`webhook` package (so the names stay found wherever a collector is defined)."""

from __future__ import annotations

import functools
import importlib
import pkgutil
from types import ModuleType
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry

import webhook

_SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


@functools.cache
def modules() -> tuple[ModuleType, ...]:
    return tuple(
        importlib.import_module(info.name)
        for info in pkgutil.walk_packages(webhook.__path__, "webhook.")
        if not info.name.endswith(".__main__")  # a program, not a module to import
    )


def exported_names() -> set[str]:
    """Sample names the webhook's and the audit's collectors expose."""
    registries = [REGISTRY]
    for module in modules():
        registries += [v for v in vars(module).values() if isinstance(v, CollectorRegistry)]
    names: set[str] = set()
    for registry in registries:
        for family in registry.collect():
            names.add(family.name)
            names.update(family.name + suffix for suffix in _SUFFIXES)
    return names


def defined(name: str) -> Any:
    """The module-level value `name` of whichever webhook module defines it."""
    found = [vars(m)[name] for m in modules() if name in vars(m)]
    assert found, f"no webhook module defines {name}"
    return found[0]
