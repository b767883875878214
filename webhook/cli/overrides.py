"""One-off changes to a config from the command line: `--set`, `--policy`, `--skip`.

`--set require-probes.mode=any` sets a policy's (or a mutation's)
parameter, `--set enforcement=audit` a top-level setting; the value is read
as YAML, as in the config file (`[a, b]`, `true`, `100m`). `--policy ID`
runs only the policies named, `--skip ID` switches one off. They apply on
top of `--config` (or the built-in defaults), and the result is validated
as a config file is, each problem naming the option that caused it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import yaml
from pydantic import ValidationError

from policies.config import (
    Config,
    ConfigError,
    ConfigFile,
    format_validation_error,
    resolve,
)
from policies.yaml_reading import load_yaml, yaml_problem

# Keys a --set cannot change: they decide which code is loaded, which only
# --config does (it loads the plugins before anything is validated).
_LOADING = frozenset({"plugins", "entry_points"})


def add_overrides(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set", action="append", default=[], dest="sets", metavar="KEY=VALUE",
        help="change one setting: POLICY.PARAM=VALUE (e.g. require-probes.mode=any), "
        "MUTATION.PARAM=VALUE or a top-level key (enforcement=audit); repeatable",
    )  # fmt: skip
    parser.add_argument(
        "--policy", action="append", default=[], dest="only", metavar="ID",
        help="run only this policy (repeatable); the others are off",
    )  # fmt: skip
    parser.add_argument(
        "--skip", action="append", default=[], metavar="ID",
        help="switch this policy off (repeatable)",
    )  # fmt: skip


def apply_overrides(
    config: Config, sets: Sequence[str] = (), only: Sequence[str] = (), skip: Sequence[str] = ()
) -> Config:
    """The config with the command line's changes, validated; ConfigError names
    the option at fault."""
    if not (sets or only or skip):
        return config
    registry = config.registry
    data = config.raw.model_dump(mode="json")
    for option in sets:
        key, value = _parse_set(option)
        path = key.split(".")
        if path[0] in registry.policies:
            path = ["policies", *path]
        elif path[0] in registry.mutations:
            path = ["mutations", *path]
        elif path[0] in _LOADING:
            raise ConfigError(f"--set {option}: {path[0]} loads code: set it in --config")
        elif path[0] not in ConfigFile.model_fields:
            raise ConfigError(
                f"--set {option}: {path[0]!r} is no policy, mutation or setting "
                f"(policies: {', '.join(sorted(registry.policies))}; "
                f"mutations: {', '.join(sorted(registry.mutations))})"
            )
        _put(data, path, value, option)
    for option, ids in (("--policy", only), ("--skip", skip)):
        unknown = sorted(set(ids) - set(registry.policies))
        if unknown:
            raise ConfigError(
                f"{option} {unknown[0]}: no such policy "
                f"(known: {', '.join(sorted(registry.policies))})"
            )
    sections = data["policies"]
    for pid in registry.policies:
        section = sections.get(pid) or {}
        if (only and pid not in only) or pid in skip:
            sections[pid] = {**section, "action": "off"}
        elif only and section.get("action") in ("off", False):
            # named on purpose: run it with the action it has by default
            sections[pid] = {k: v for k, v in section.items() if k != "action"}
    try:
        raw = ConfigFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_named(format_validation_error(exc))) from exc
    try:
        return resolve(raw, registry, f"{config.source} with command-line options")
    except ConfigError as exc:
        raise ConfigError(_named(str(exc))) from exc


def _parse_set(option: str) -> tuple[str, Any]:
    key, sep, text = option.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {option}: write KEY=VALUE, e.g. require-probes.mode=any")
    try:
        value = load_yaml(text) if text else ""
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"--set {option}: the value is not valid YAML{yaml_problem(exc)}"
        ) from exc
    return key, value


def _put(data: dict[str, Any], path: list[str], value: Any, option: str) -> None:
    node = data
    for depth, part in enumerate(path[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(path[: depth + 1])
            raise ConfigError(f"--set {option}: {where} is not a mapping")
        node = child
    node[path[-1]] = value


def _named(lines: str) -> str:
    """Validation lines of the changed config, said to come from the options."""
    return "\n".join(f"--set/--policy/--skip: {line}" for line in lines.splitlines())
