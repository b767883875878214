"""A bad config fails at load, naming the file, the field path and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from policies.config import ConfigError, load_config
from policies.model import Action, Mode


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "podgate.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_file() -> None:
    config = load_config()
    assert config.enforcement is Mode.ENFORCE
    assert config.policies["require-network-policy"].action is Action.WARN
    assert config.policies["require-resources"].action is Action.DENY
    assert config.exemptions.namespaces == ["kube-system"]
    assert all(m.enabled for m in config.mutations.values())


def test_the_defaults_are_the_secure_ones_and_an_empty_mapping_gives_them(tmp_path: Path) -> None:
    for config in (load_config(), load_config(write(tmp_path, "{}\n"))):
        assert config.exemptions.allow_annotation is False
        # a policy that cannot be evaluated decides as its action would
        for settings in config.policies.values():
            assert settings.failure_action is settings.action
    assert load_config().describe() == load_config(write(tmp_path, "{}\n")).describe()


def test_a_full_config_is_applied(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            """
enforcement: audit
policies:
  require-resources: {action: warn, require: [limits.cpu]}
  require-probes: {action: audit, mode: any, require: [readiness, startup]}
mutations:
  default-resources: {enabled: false}
exemptions: {namespaces: [kube-*], images: ["registry.k8s.io/*"], allow_annotation: false}
""",
        )
    )
    assert config.enforcement is Mode.AUDIT
    assert config.policies["require-resources"].action is Action.WARN
    assert config.policies["require-resources"].params.model_dump()["require"] == ["limits.cpu"]
    assert config.mutations["default-resources"].enabled is False
    assert config.exemptions.allow_annotation is False


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("enforcement: strict", "enforcement: Input should be 'enforce' or 'audit'"),
        (
            "policies: {require-resources: {require: [limits.gpu]}}",
            "policies.require-resources.require[0]: Input should be",
        ),
        ("policies: {require-resources: {action: block}}", "policies.require-resources.action"),
        ("policies: {require-probes: {mode: some}}", "policies.require-probes.mode"),
        ("policies: {require-probs: {}}", "policies.require-probs: no such policy"),
        ("policies: {require-probes: {typo: 1}}", "policies.require-probes.typo: Extra inputs"),
        (
            "policies: {require-probes: {typo: 1}}",
            "policies.require-probes.typo: Extra inputs are not permitted (it takes action, "
            "budget_ms, failure_action, include_sidecars, mode, require, skip_jobs)",
        ),
        (
            "mutations: {default-resources: {request: {}}}",
            "mutations.default-resources.request: Extra inputs are not permitted "
            "(it takes enabled, limits, requests)",
        ),
        ("policies: {default-resources: {}}", "a mutation: configure it under mutations:"),
        ("mutations: {require-probes: {}}", "a validating policy: configure it under policies:"),
        (
            "mutations: {default-resources: {requests: {cpu: lots}}}",
            "mutations.default-resources.requests",
        ),
        (
            "mutations: {default-resources: {requests: {memory: 1Gi}, limits: {memory: 512Mi}}}",
            "requests.memory (1Gi) exceeds limits.memory (512Mi)",
        ),
        ("mutations: {default-resources: {enabled: maybe}}", "mutations.default-resources.enabled"),
        ("exemptions: {namespace: [x]}", "exemptions.namespace: Extra inputs"),
        ("budget_ms: -1", "budget_ms: Input should be greater than 0"),
        ("- a list", "the config must be a mapping"),
        ("just text", "the config must be a mapping, got str"),
        ("", "the config is empty; write {} for the built-in defaults"),
        ("# all commented out\n", "the config is empty"),
        ("enforcement: [", "not valid YAML"),
        ("plugins: [no_such_module_xyz]", "module:no_such_module_xyz: import failed"),
        (
            "policies:\n  require-probes: {action: off}\npolicies: {}\n",
            "not valid YAML at line 3, column 1: found duplicate key 'policies'",
        ),
        ("policies: {require-probes: {action: off, action: deny}}", "duplicate key 'action'"),
        ("budget_ms: true", "budget_ms: Input should be a number of milliseconds, not a boolean"),
        ("budget_ms: .inf", ".inf is no number JSON can hold"),  # as kubectl reads YAML
        ("policies: {require-probes: {budget_ms: 0}}", "require-probes.budget_ms: Input should"),
        ("plugins: ['']", "plugins[0]: String should have at least 1 character"),
    ],
)
def test_bad_config_names_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=r".") as info:  # ConfigError or PluginError
        load_config(path)
    assert message in str(info.value)
    if isinstance(info.value, ConfigError) and "plugins" not in text:
        assert str(path) in str(info.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config"):
        load_config(tmp_path / "nope.yaml")


def test_examples_config_loads_and_matches_the_defaults() -> None:
    example = Path(__file__).parents[2] / "examples" / "config.yaml"
    loaded = load_config(example)
    defaults = load_config()
    assert loaded.describe() == defaults.describe(), "examples/config.yaml documents the defaults"
    assert loaded.controllers == defaults.controllers


def test_unquoted_off_reads_as_off(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "policies: {require-probes: {action: off}}\n"))
    assert config.policies["require-probes"].action is Action.OFF


def test_config_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "enforcement: [\n"))
    assert "\n" not in str(info.value)
    assert "<unicode string>" not in str(info.value)


def test_quantities_may_be_numbers_as_in_a_manifest(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            "mutations: {default-resources: {requests: {cpu: 1, memory: 2Ei}, "
            "limits: {cpu: 1.5}}}\n",
        )
    )
    params = config.mutations["default-resources"].params.model_dump()
    assert params == {"requests": {"cpu": "1", "memory": "2Ei"}, "limits": {"cpu": "1.5"}}


def test_a_misspelt_nested_key_does_not_list_the_sections_keys() -> None:
    from pydantic import BaseModel, ConfigDict

    from policies.config import _params
    from policies.registry import Params

    class Probe(BaseModel):
        model_config = ConfigDict(extra="forbid")
        port: int = 8080

    class Checked(Params):
        probe: Probe = Probe()

    with pytest.raises(ConfigError) as error:
        _params(Checked, {"probe": {"prot": 1}}, "policies.x", ("action",))
    assert str(error.value) == "policies.x.probe.prot: Extra inputs are not permitted"
    with pytest.raises(ConfigError) as error:
        _params(Checked, {"prob": {}}, "policies.x", ("action",))
    assert str(error.value) == (
        "policies.x.prob: Extra inputs are not permitted (it takes action, probe)"
    )


def test_examples_config_writes_out_every_parameter() -> None:
    """Every parameter of every built-in, with its default, is in the file
    users read to learn them."""
    from policies.config import parse_config_file
    from policies.plugins import builtin_registry

    path = Path(__file__).parents[2] / "examples" / "config.yaml"
    raw = parse_config_file(path.read_text(encoding="utf-8"), str(path))
    registry = builtin_registry()
    for section, entries in (("policies", registry.policies), ("mutations", registry.mutations)):
        written = getattr(raw, section)
        for entry_id, entry in entries.items():
            given = written.get(entry_id) or {}
            missing = set(entry.meta.params.model_fields) - set(given)
            assert not missing, f"examples/config.yaml: {section}.{entry_id} lacks {missing}"
