"""The chart's schema for `config:` is podgate's own model: generated from it
(chart/hack/update_config_schema.py), so helm refuses what podgate refuses
and accepts what it accepts, before any pod starts with the config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from chart.hack.update_config_schema import SCHEMA_FILE, updated
from policies.config import ConfigError, parse_config_file, resolve
from policies.plugins import builtin_registry
from tests.chart.helm import REPO, template

REFUSED: list[tuple[str, Any, str]] = [
    # (id, config, what helm's message must name)
    ("unknown-probe-mode", {"policies": {"require-probes": {"mode": "most"}}}, "mode"),
    ("unknown-parameter", {"policies": {"require-probes": {"modes": "any"}}}, "modes"),
    ("no-probe-required", {"policies": {"require-probes": {"require": []}}}, "require"),
    ("unknown-resource-field",
     {"policies": {"require-resources": {"require": ["requests.gpu"]}}}, "require"),
    ("root-allowed", {"policies": {"require-non-root": {"min_user_id": 0}}}, "min_user_id"),
    ("not-an-action", {"policies": {"require-image-digest": {"action": "block"}}}, "action"),
    ("budget-over-30s", {"budget_ms": 40_000}, "budget_ms"),
    ("budget-zero", {"policies": {"require-probes": {"budget_ms": 0}}}, "budget_ms"),
    ("not-a-quantity",
     {"mutations": {"default-resources": {"requests": {"cpu": "lots"}}}}, "cpu"),
    ("unknown-resource",
     {"mutations": {"default-resources": {"requests": {"gpu": "1"}}}}, "gpu"),
    ("mutation-typo",
     {"mutations": {"default-security-context": {"run_as_nonroot": True}}}, "run_as_nonroot"),
    ("annotation-maybe", {"exemptions": {"allow_annotation": "maybe"}}, "allow_annotation"),
    ("bad-id", {"policies": {"Require_Probes": {}}}, "Require_Probes"),
    ("unsynced-typo", {"unsynced_action": "refuse"}, "unsynced_action"),
]  # fmt: skip

ACCEPTED: list[tuple[str, Any]] = [
    ("empty", {}),
    ("unquoted-off", yaml.safe_load("policies: {require-probes: {action: off}}")),
    ("numbers-as-quantities",
     {"mutations": {"default-resources": {"requests": {"cpu": 1, "memory": "64Mi"}}}}),
    ("a-plugin-s-policy", {"policies": {"my-plugin-policy": {"action": "warn", "x": 1}}}),
    ("null-section", {"policies": {"require-probes": None}}),
]  # fmt: skip


def _podgate_refuses(config: Any) -> bool:
    try:
        resolve(parse_config_file(yaml.safe_dump(config), "config.yaml"), builtin_registry())
    except ConfigError:
        return True
    return False


def _helm(config: Any, tmp_path: Path) -> tuple[bool, str]:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"config": config}))
    result = template([values])
    return result.returncode == 0, result.stderr


def test_the_schema_file_is_generated_from_the_model() -> None:
    text = SCHEMA_FILE.read_text()
    assert updated(text) == text, "run: python chart/hack/update_config_schema.py"


@pytest.mark.parametrize(("config", "named"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_what_podgate_refuses_helm_refuses(config: Any, named: str, tmp_path: Path) -> None:
    if "my-plugin" not in str(config):
        assert _podgate_refuses(config)
    accepted, message = _helm(config, tmp_path)
    assert not accepted, f"helm accepted {config}"
    assert "schema" in message
    assert named in message, message


@pytest.mark.parametrize("config", [a[1] for a in ACCEPTED], ids=[a[0] for a in ACCEPTED])
def test_what_podgate_accepts_helm_accepts(config: Any, tmp_path: Path) -> None:
    if "my-plugin-policy" not in str(config):  # a plugin's id: podgate needs the plugin
        assert not _podgate_refuses(config)
    accepted, message = _helm(config, tmp_path)
    assert accepted, message


def test_the_documented_example_config_passes_both(tmp_path: Path) -> None:
    # examples/config.yaml sets every parameter of every built-in
    config = yaml.safe_load((REPO / "examples" / "config.yaml").read_text())
    assert not _podgate_refuses(config)
    accepted, message = _helm(config, tmp_path)
    assert accepted, message
