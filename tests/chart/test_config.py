"""The rendered config.yaml is a config podgate itself accepts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from policies.config import (
    Config,
    ConfigError,
    ConfigFile,
    Exemptions,
    parse_config_file,
    resolve,
)
from policies.model import Action, Mode
from policies.plugins import builtin_registry, load_registry
from tests.chart.helm import CHART, NAME, SCENARIOS, Rendered, render, scenario, template

PLUGIN_DIR = "/etc/podgate/plugins"


def load_rendered(rendered: Rendered, plugin_root: Path) -> Config:
    """Load the rendered config the way a pod does, with the plugin files on disk."""
    text: str = rendered.get("ConfigMap", f"{NAME}-config")["data"]["config.yaml"]
    raw = parse_config_file(text, "config.yaml")
    if PLUGIN_DIR not in raw.plugins:
        return resolve(raw, builtin_registry(), "config.yaml")
    plugins = rendered.get("ConfigMap", f"{NAME}-plugins")["data"]
    for file, source in plugins.items():
        (plugin_root / file).write_text(source, encoding="utf-8")
    sources = [str(plugin_root) if p == PLUGIN_DIR else p for p in raw.plugins]
    registry = load_registry(sources, entry_points=False)
    return resolve(raw, registry, "config.yaml")


@pytest.mark.parametrize("values", SCENARIOS)
def test_rendered_config_loads_in_podgate(values: Path, tmp_path: Path) -> None:
    config = load_rendered(render([values]), tmp_path)
    assert set(config.policies) >= set(builtin_registry().policies)


def test_default_config() -> None:
    rendered = render()
    config = resolve(
        parse_config_file(rendered.get("ConfigMap")["data"]["config.yaml"], "config.yaml"),
        builtin_registry(),
    )
    assert config.enforcement is Mode.ENFORCE
    # podgate's own namespace is exempt for the audit too, not only skipped by the webhook.
    assert config.exemptions.namespaces == ["kube-system", rendered.namespace]
    # whoever may create a Pod must not be able to exempt it with an annotation
    assert config.exemptions.allow_annotation is False
    honoured = render(sets=["config.exemptions.allow_annotation=true"])
    text = honoured.get("ConfigMap")["data"]["config.yaml"]
    assert parse_config_file(text, "config.yaml").exemptions.allow_annotation is True


def test_audit_mode_scenario_is_the_dry_run_mode(tmp_path: Path) -> None:
    config = load_rendered(render([scenario("audit-mode")]), tmp_path)
    assert config.enforcement is Mode.AUDIT
    assert config.policies["require-image-digest"].action is Action.WARN
    assert config.policies["require-network-policy"].action is Action.AUDIT


def test_enforcement_shortcut_and_conflicts() -> None:
    rendered = render(sets=["enforcement=audit"])
    text = rendered.get("ConfigMap", f"{NAME}-config")["data"]["config.yaml"]
    assert parse_config_file(text, "config.yaml").enforcement == "audit"
    conflict = template(sets=["enforcement=enforce", "config.enforcement=audit"])
    assert conflict.returncode != 0
    assert "config.enforcement" in conflict.stderr


def test_everything_optional_config_keeps_user_settings(tmp_path: Path) -> None:
    rendered = render([scenario("everything-optional-enabled")])
    config = load_rendered(rendered, tmp_path)
    # the release's own namespace is added to the user's list
    assert config.exemptions.namespaces == ["kube-system", "monitoring", rendered.namespace]
    assert config.exemptions.allow_annotation is False
    assert config.mutations["default-security-context"].enabled is False
    assert config.unsynced_action is Action.AUDIT


def test_plugin_policy_is_loaded_from_the_mounted_folder(tmp_path: Path) -> None:
    rendered = render([scenario("plugins-configmap")])
    text = rendered.get("ConfigMap", f"{NAME}-config")["data"]["config.yaml"]
    assert parse_config_file(text, "config.yaml").plugins == [PLUGIN_DIR]
    config = load_rendered(rendered, tmp_path)
    assert config.policies["require-team-label"].action is Action.WARN


def test_a_plugin_s_parameters_are_caught_by_loading(tmp_path: Path) -> None:
    # The chart's schema knows the built-ins' parameters (test_config_schema);
    # a plugin's are podgate's to check, which this loading does.
    rendered = render(
        [scenario("plugins-configmap")], sets=["config.policies.require-team-label.actio=warn"]
    )
    with pytest.raises(ConfigError, match=r"policies\.require-team-label\.actio"):
        load_rendered(rendered, tmp_path)


def test_schema_knows_exactly_podgates_config_keys() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    config = schema["properties"]["config"]
    assert config["additionalProperties"] is False
    assert set(config["properties"]) == set(ConfigFile.model_fields)
    exemptions = config["properties"]["exemptions"]
    assert set(exemptions["properties"]) == set(Exemptions.model_fields)
    actions = schema["definitions"]["action"]["enum"]
    assert set(actions) == {a.value for a in Action}
