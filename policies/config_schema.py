"""The JSON Schema of config.yaml, made from the pydantic models that load it.

The Helm chart's values.schema.json carries it under `config:` (written by
chart/hack/update-config-schema), so `helm install` and `helm upgrade` refuse
what podgate would refuse before any pod starts with it: unknown keys, wrong
types, actions, bounds, and each built-in policy's and mutation's own
parameters. Ids that no built-in has (a plugin's) stay open: the chart cannot
know their parameters. What JSON Schema cannot say is left to podgate, which
keeps its old config on a reload: a quantity's range (`1e40`), a request
above its limit.

Draft-07 with every reference inlined: the schema is nested inside the
chart's own, where `#/$defs/...` would point at the wrong document.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from policies.config import CommonSettings, ConfigFile
from policies.registry import Registry

ID_PATTERN = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
# Keys of pydantic's output that document the Python side, not the YAML.
_DROPPED = frozenset({"title", "default"})


def config_schema(registry: Registry) -> dict[str, Any]:
    """config.yaml's schema, with a closed section for every id in `registry`."""
    schema = _model(ConfigFile)
    common = _model(CommonSettings)["properties"]
    schema["properties"]["policies"] = _sections(
        {pid: pol.meta.params for pid, pol in sorted(registry.policies.items())},
        common,
        "Policy id -> its action, failure_action, budget_ms and parameters.",
    )
    schema["properties"]["mutations"] = _sections(
        {mid: mut.meta.params for mid, mut in sorted(registry.mutations.items())},
        {"enabled": {"type": "boolean"}},
        "Mutation id -> `enabled` and its parameters.",
    )
    schema["description"] = (
        "podgate's config.yaml (the format of `podgate serve --config`), generated from "
        "podgate's own model; a plugin's policy ids are checked by podgate."
    )
    return schema


def _sections(
    models: dict[str, type[BaseModel]], common: dict[str, Any], description: str
) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "propertyNames": {"pattern": ID_PATTERN},
        "properties": {
            id: {
                "type": ["object", "null"],
                "additionalProperties": False,
                "properties": {**common, **_model(model)["properties"]},
            }
            for id, model in models.items()
        },
        "additionalProperties": {"type": ["object", "null"]},
    }


def _model(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(mode="validation")
    definitions = raw.pop("$defs", {})
    inlined: dict[str, Any] = _inline(raw, definitions)
    inlined.setdefault("properties", {})
    return inlined


def _inline(node: Any, definitions: dict[str, Any]) -> Any:
    """A schema node with its references replaced by what they name."""
    if isinstance(node, list):
        return [_inline(item, definitions) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = definitions[node["$ref"].rsplit("/", 1)[-1]]
        rest = {k: v for k, v in node.items() if k != "$ref"}
        return _inline({**target, **rest}, definitions)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED:
            continue
        if key == "properties":  # names of keys, each mapped to a schema
            out[key] = {name: _inline(sub, definitions) for name, sub in value.items()}
        else:
            out[key] = _inline(value, definitions)
    return out
