"""values.schema.json refuses typos and wrong types with a message naming the key;
values.yaml documents every value."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.helm import CHART, lint, template

BAD_VALUES: list[tuple[str, str, str]] = [
    # (--set, what the error must name, why)
    ("webhook.replica=3", "replica", "unknown key"),
    ("webhookk.replicas=3", "webhookk", "unknown top-level key"),
    ("webhook.replicas=two", "/webhook/replicas", "wrong type"),
    ("webhook.replicas=0", "/webhook/replicas", "a Fail webhook with no pods"),
    ("enforcement=enforcing", "/enforcement", "not an enforcement mode"),
    ("certificates.mode=manual", "/certificates/mode", "not a certificate mode"),
    ("webhook.validating.failurePolicy=fail", "/webhook/validating/failurePolicy", "case"),
    ("webhook.validating.timeoutSeconds=60", "/webhook/validating/timeoutSeconds", "API max 30"),
    ("webhook.mutating.reinvocationPolicy=Always", "/webhook/mutating/reinvocationPolicy", "enum"),
    ("webhook.url=http://127.0.0.1:9443", "/webhook/url", "plain HTTP"),
    ("webhook.namespaceSelector.excludedNamespace={a}", "excludedNamespace", "unknown key"),
    ("webhook.securityContext.runAsNonroot=true", "runAsNonroot", "security typo"),
    ("webhook.resources.request.cpu=1", "request", "resources typo"),
    ("image.digest=sha256:abc", "/image/digest", "not a digest"),
    ("config.enforcment=audit", "enforcment", "unknown config key"),
    ("config.budget_ms=fast", "/config/budget_ms", "wrong config type"),
    ("config.failure_action=block", "/config/failure_action", "not an action"),
    ("config.exemptions.namespace={a}", "namespace", "unknown exemptions key"),
    ("plugins.files.policy\\.txt=x", "policy.txt", "not a .py file"),
    ("audit.policyReports=yes", "/audit/policyReports", "wrong type"),
    ("metrics.serviceMonitor.interval=often", "/metrics/serviceMonitor/interval", "duration"),
]


@pytest.mark.parametrize(("item", "named", "why"), BAD_VALUES, ids=[b[0] for b in BAD_VALUES])
def test_bad_values_fail_template_and_lint_naming_the_key(item: str, named: str, why: str) -> None:
    rendered = template(sets=[item])
    assert rendered.returncode != 0, f"accepted {item} ({why})"
    assert "schema" in rendered.stderr, rendered.stderr
    assert named in rendered.stderr, rendered.stderr
    linted = lint(sets=[item])
    assert linted.returncode != 0, f"lint accepted {item} ({why})"
    assert named in linted.stdout + linted.stderr


def test_typo_in_a_values_file(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text("webhook:\n  validating:\n    failurePolicy: Fail\n    timeout: 5\n")
    result = template([values])
    assert result.returncode != 0
    assert "/webhook/validating" in result.stderr
    assert "timeout" in result.stderr


@pytest.mark.parametrize(
    "item",
    [
        "config.policies.my-plugin-policy.action=warn",  # free-form: plugins add ids
        "webhook.podAnnotations.example\\.com/anything=x",
        "webhook.nodeSelector.disk=ssd",
        "webhook.affinity.nodeAffinity.x=y",
        "global.imageRegistry=example.com",  # what a parent chart passes down
        "webhook.podDisruptionBudget.minAvailable=50%",
    ],
)
def test_free_form_maps_stay_open(item: str) -> None:
    result = template(sets=[item])
    assert result.returncode == 0, result.stderr


def _closed_everywhere(node: Any, path: str, schema: dict[str, Any], out: list[str]) -> None:
    if isinstance(node, dict):
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            node = schema["definitions"][name]
        if node.get("type") == "object" and "properties" in node:
            # a map keyed by policy ids stays open to the ids of plugins
            if node.get("additionalProperties") is not False and "propertyNames" not in node:
                out.append(path)
            for key, child in node["properties"].items():
                _closed_everywhere(child, f"{path}.{key}", schema, out)
        if "items" in node:
            _closed_everywhere(node["items"], f"{path}[]", schema, out)


def test_every_structured_object_rejects_unknown_keys() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["additionalProperties"] is False
    open_objects: list[str] = []
    _closed_everywhere(schema, "", schema, open_objects)
    assert open_objects == []


def test_schema_covers_every_value_in_values_yaml() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(node: Any, sub: dict[str, Any], path: str) -> None:
        if "$ref" in sub:
            sub = schema["definitions"][sub["$ref"].rsplit("/", 1)[-1]]
        if not isinstance(node, dict) or "properties" not in sub:
            return
        for key, value in node.items():
            assert key in sub["properties"], f"{path}.{key} is not in values.schema.json"
            walk(value, sub["properties"][key], f"{path}.{key}")

    walk(values, schema, "")


_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][\w.-]*):(?: |$)")
# Values that are a Kubernetes object or a free-form map, documented as a whole.
_DOCUMENTED_AS_A_WHOLE = {
    "resources",
    "podSecurityContext",
    "securityContext",
    "labels",
    "behavior",
}


def test_every_value_is_documented() -> None:
    """Every key has a comment right above it, except inside whole Kubernetes objects."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    stack: list[tuple[int, str]] = []
    undocumented: list[str] = []
    for number, line in enumerate(lines):
        match = _KEY.match(line)
        if not match:
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        inside_object = any(key in _DOCUMENTED_AS_A_WHOLE for _, key in stack)
        stack.append((indent, match["key"]))
        if not inside_object and not lines[number - 1].lstrip().startswith("#"):
            undocumented.append(".".join(key for _, key in stack))
    assert undocumented == []
