"""`podgate explain ID` (also `podgate policies ID`): one policy, told in full.

Its description, its parameters with their defaults (and the value the
config gives, where it differs), and its example: a manifest it refuses,
what `podgate check` says of it, and the same manifest fixed.
"""

from __future__ import annotations

import json
import textwrap
from typing import Any

import yaml

from policies.config import Config
from policies.model import Outcome
from policies.registry import Metadata
from webhook.cli.check import check_documents
from webhook.cli.manifests import parse_text


class UnknownPolicy(LookupError):
    pass


def _meta(config: Config, entry_id: str) -> tuple[Metadata, str]:
    registry = config.registry
    if entry_id in registry.policies:
        return registry.policies[entry_id].meta, "policy"
    if entry_id in registry.mutations:
        return registry.mutations[entry_id].meta, "mutation"
    known = ", ".join(sorted(registry.ids()))
    raise UnknownPolicy(f"no policy or mutation {entry_id!r} (known: {known})")


def _kind_of(schema: dict[str, Any]) -> str:
    """A parameter's type as a reader writes it: `list of liveness|readiness`."""
    if "enum" in schema:
        return "|".join(str(v) for v in schema["enum"])
    if "anyOf" in schema:
        return " or ".join(_kind_of(s) for s in schema["anyOf"] if s.get("type") != "null")
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list of {_kind_of(schema.get('items', {}))}"
    if kind == "object":
        return "mapping"
    names = {"string": "text", "integer": "whole number", "boolean": "true|false"}
    return names.get(str(kind), str(kind))


def _yaml(value: object) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6, sort_keys=False)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def describe(config: Config, entry_id: str) -> dict[str, Any]:
    """Everything `explain` tells, as data (`-o json`)."""
    meta, kind = _meta(config, entry_id)
    params = meta.params()
    settings = config.policies.get(entry_id) if kind == "policy" else None
    current = (
        settings.params if settings is not None else config.mutations[entry_id].params
    ).model_dump(mode="json")
    schema = meta.params.model_json_schema()
    rows = []
    for name, field in meta.params.model_fields.items():
        default = params.model_dump(mode="json")[name]
        rows.append(
            {
                "name": name,
                "type": _kind_of(schema["properties"][name]),
                "default": default,
                "value": current[name],
                "description": field.description or "",
            }
        )
    described: dict[str, Any] = {
        **meta.as_dict(),
        "type": kind,
        "default_action": str(meta.default_action) if kind == "policy" else "on",
        "action": str(settings.action) if settings is not None else "on",
        "params": rows,
    }
    if meta.example is not None:
        described["example"] = {
            "fails": meta.example.fails,
            "findings": _findings(config, entry_id, meta.example.fails),
            "passes": meta.example.passes,
        }
    return described


def _findings(config: Config, entry_id: str, manifest: str) -> list[str]:
    """What `podgate check` says of the example, under this policy alone."""
    documents = list(parse_text(manifest, "example.yaml"))
    lines: list[str] = []
    for checked in check_documents(documents, config):
        for result in checked.results:
            if result.policy == entry_id and result.outcome is Outcome.FAIL:
                lines.extend(result.lines())
    return lines


def render(described: dict[str, Any], output: str) -> str:
    if output == "json":
        return json.dumps(described, indent=2)
    d = described
    lines = [
        f"{d['id']}: {d['title']}",
        f"  {d['type']}, category {d['category']}, severity {d['severity']}, "
        + (
            f"action {d['action']} (default {d['default_action']}), "
            if d["type"] == "policy"
            else ""
        )
        + f"from {d['origin']}",
        "",
        *textwrap.wrap(" ".join(d["description"].split()), 79),
    ]
    if d["params"]:
        section = "policies" if d["type"] == "policy" else "mutations"
        lines += [
            "",
            f"Parameters ({section}.{d['id']} in the config, or --set {d['id']}.NAME=VALUE):",
        ]
        for row in d["params"]:
            now = "" if row["value"] == row["default"] else f" (this config: {_yaml(row['value'])})"
            lines.append(f"  {row['name']}: {row['type']}, default {_yaml(row['default'])}{now}")
            lines += textwrap.wrap(
                " ".join(row["description"].split()), 79, initial_indent="    ",
                subsequent_indent="    ",
            )  # fmt: skip
    example = d.get("example")
    if example:
        lines += [
            "",
            "Refused, for example:",
            "",
            textwrap.indent(example["fails"].rstrip(), "    "),
        ]
        if example["findings"]:
            lines += ["", "podgate check says:", *(f"    {f}" for f in example["findings"])]
        lines += ["", "Fixed:", "", textwrap.indent(example["passes"].rstrip(), "    ")]
    return "\n".join(lines)
