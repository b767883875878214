"""The example policies under examples/policies: their suites pass under
`podgate test` (as CI runs it), a wrong expectation fails it readably, and the
example mutation's patch is minimal and idempotent."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import jsonpatch
import pytest
import yaml

from policies import Outcome, StaticContext, evaluate
from policies.config import load_config
from tests.plugins.conftest import REPO, Cli

EXAMPLES = REPO / "examples" / "policies"
PACKAGE_TESTS = REPO / "examples" / "plugin-package" / "tests"
EXAMPLE_IDS = {"allowed-registries", "require-labels", "disallow-latest-tag", "default-env"}


def _cases(cli: Cli, *paths: str) -> list[dict[str, Any]]:
    run = cli("test", "-o", "json", *paths)
    assert run.code == 0, run.out + run.err
    cases: list[dict[str, Any]] = json.loads(run.out)["cases"]
    return cases


def test_podgate_test_passes_over_the_examples(cli: Cli) -> None:
    run = cli("test", str(EXAMPLES))
    assert run.code == 0, run.out + run.err
    assert run.err == ""
    assert not [line for line in run.out.splitlines() if line.startswith("FAIL")]
    # Every example has a suite that ran: a suite deleted or renamed would
    # otherwise pass by running nothing.
    cases = _cases(cli, str(EXAMPLES))
    tested = {c["name"].split(": ", 1)[1].split(" on ")[0] for c in cases}
    assert tested == EXAMPLE_IDS
    assert all(c["ok"] for c in cases)
    assert len(cases) >= 20


def test_suites_stay_self_contained_under_a_config_loading_the_same_files(cli: Cli) -> None:
    # The config loads examples/policies as a plugin folder and each suite loads
    # its own file again: no duplicate-id clash between the two.
    cases = _cases(cli, "--config", str(EXAMPLES / "config.yaml"), str(EXAMPLES))
    assert len(cases) == len(_cases(cli, str(EXAMPLES)))


def test_podgate_test_passes_over_the_builtin_fixtures(cli: Cli) -> None:
    cases = _cases(cli, str(REPO / "tests" / "policies"))
    assert {Path(c["suite"]).name for c in cases} >= {"require-resources", "default-resources"}


def test_junit_output_of_the_examples(cli: Cli) -> None:
    run = cli("test", "-o", "junit", str(EXAMPLES))
    assert run.code == 0
    suites = ET.fromstring(run.out)
    assert suites.tag == "testsuites"
    assert sum(int(s.get("tests", "0")) for s in suites) >= 20
    assert all(s.get("failures") == "0" for s in suites)


@pytest.fixture
def latest_suite(tmp_path: Path) -> Path:
    """A copy of the disallow-latest-tag example, to break its expectations."""
    folder = tmp_path / "disallow-latest-tag"
    shutil.copytree(EXAMPLES / "disallow-latest-tag", folder)
    return folder / "podgate-test.yaml"


def _edit(suite: Path, old: str, new: str) -> None:
    text = suite.read_text(encoding="utf-8")
    assert old in text
    suite.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_a_wrong_expected_result_fails_with_what_was_found(cli: Cli, latest_suite: Path) -> None:
    _edit(
        latest_suite,
        "resource: Deployment/shop/latest\n    result: fail",
        "resource: Deployment/shop/latest\n    result: pass",
    )
    run = cli("test", str(latest_suite.parent))
    assert run.code == 1
    lines = run.out.splitlines()
    failed = lines.index(
        "FAIL  disallow-latest-tag: disallow-latest-tag on Deployment/shop/latest  "
        f"({latest_suite})"
    )
    assert lines[failed + 1] == (
        "      Deployment/shop/latest: expected pass, got fail: "
        "container \"web\" image 'registry.example.com/shop/web:latest' uses the moving tag "
        "'latest'; pin a version (registry.example.com/shop/web:<version>) or a digest "
        "(registry.example.com/shop/web@sha256:<digest>)"
    )
    assert lines[-1] == "4 cases: 3 passed, 1 failed"


def test_a_wrong_expected_message_fails_showing_both(cli: Cli, latest_suite: Path) -> None:
    _edit(latest_suite, "uses the moving tag 'main'", "uses the tag 'main'")
    run = cli("test", str(latest_suite))
    assert run.code == 1
    lines = run.out.splitlines()
    at = lines.index("      Pod/shop/debugged: the message does not contain the expected text")
    assert lines[at + 1 : at + 3] == [
        "        expected: ephemeral container \"debugger\" image 'nicolaka/netshoot:main' "
        "uses the tag 'main'",
        "        message:  ephemeral container \"debugger\" image 'nicolaka/netshoot:main' "
        "uses the moving tag 'main'; pin a version (nicolaka/netshoot:<version>) or a digest "
        "(nicolaka/netshoot@sha256:<digest>)",
    ]


def test_a_wrong_patched_file_fails_with_the_missing_change(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "default-env"
    shutil.copytree(EXAMPLES / "default-env", folder)
    patched = folder / "resources.patched.yaml"
    patched.write_text(
        patched.read_text(encoding="utf-8").replace("prod-eu-1", "prod-us-1", 1), encoding="utf-8"
    )
    run = cli("test", str(folder))
    assert run.code == 1
    assert (
        "      Deployment/shop/web: the mutated object differs from the expected one; to get "
        'the expected one it would still need [{"op": "replace", "path": '
        '"/spec/template/spec/initContainers/0/env/0/value", "value": "prod-us-1"}]'
    ) in run.out.splitlines()


def test_a_mutation_that_is_not_idempotent_fails(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "default-env"
    shutil.copytree(EXAMPLES / "default-env", folder)
    module = folder / "default_env.py"
    # The classic bug: append without looking at what is there.
    source = module.read_text(encoding="utf-8")
    broken = source.replace("if n not in present]", "]")
    assert broken != source
    module.write_text(broken, encoding="utf-8")
    run = cli("test", str(folder))
    assert run.code == 1
    assert "      Deployment/shop/web: the mutated object differs from the expected one" in run.out


def _env_config(tmp_path: Path) -> Path:
    config = tmp_path / "podgate.yaml"
    config.write_text(
        f"plugins: [{EXAMPLES / 'default-env' / 'default_env.py'}]\n"
        "entry_points: false\n"
        "mutations:\n"
        "  default-resources: {enabled: false}\n"
        "  default-security-context: {enabled: false}\n"
        "  default-env: {env: {CLUSTER_NAME: prod-eu-1}}\n",
        encoding="utf-8",
    )
    return config


def test_the_user_mutation_patch_is_minimal_and_idempotent(tmp_path: Path) -> None:
    config = load_config(_env_config(tmp_path))
    original = yaml.safe_load((EXAMPLES / "default-env" / "resources.yaml").read_text())
    decision = evaluate(original, StaticContext(), config, validate=False)
    assert decision.mutations_applied == ("default-env",)
    # Only what the mutation changed: the init container gets an env list, the
    # web container's list (a different length: lists are replaced whole) gains
    # the variable; the exporter (sets it itself) and worker (envFrom) are not touched.
    assert list(decision.patch) == [
        {
            "op": "add",
            "path": "/spec/template/spec/initContainers/0/env",
            "value": [{"name": "CLUSTER_NAME", "value": "prod-eu-1"}],
        },
        {
            "op": "replace",
            "path": "/spec/template/spec/containers/0/env",
            "value": [
                {"name": "LOG_LEVEL", "value": "info"},
                {"name": "CLUSTER_NAME", "value": "prod-eu-1"},
            ],
        },
    ]
    assert jsonpatch.apply_patch(original, list(decision.patch)) == decision.mutated
    assert original == yaml.safe_load((EXAMPLES / "default-env" / "resources.yaml").read_text())
    again = evaluate(decision.mutated or {}, StaticContext(), config, validate=False)
    assert again.patch == ()


def test_check_and_policies_with_the_examples_config(cli: Cli) -> None:
    config = str(EXAMPLES / "config.yaml")
    listed = cli("policies", "-c", config, "-o", "json")
    assert listed.code == 0, listed.err
    origins = {r["id"]: r["origin"] for r in json.loads(listed.out)["policies"]}
    for pid in EXAMPLE_IDS:
        assert origins[pid].startswith(f"file:{EXAMPLES}/"), origins[pid]
        assert origins[pid].endswith(f"/{pid.replace('-', '_')}.py")

    run = cli("check", "-c", config, str(REPO / "examples" / "manifests"))
    assert run.code == 1
    lines = run.out.splitlines()
    assert (
        '  FAIL  deny  disallow-latest-tag: container "worker" image '
        "'registry.example.com/shop/worker:latest' uses the moving tag 'latest'; pin a version "
        "(registry.example.com/shop/worker:<version>) or a digest "
        "(registry.example.com/shop/worker@sha256:<digest>)"
    ) in lines
    assert (
        "  FAIL  warn  require-labels: the pod template has no 'team', 'owner' labels; "
        "set 'team', 'owner' under spec.template.metadata.labels"
    ) in lines


def test_allowed_registries_skips_until_configured(tmp_path: Path) -> None:
    config = tmp_path / "podgate.yaml"
    config.write_text(
        f"plugins: [{EXAMPLES / 'allowed-registries'}]\nentry_points: false\n", encoding="utf-8"
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web"},
        "spec": {"containers": [{"name": "web", "image": "quay.io/x/web:1"}]},
    }
    decision = evaluate(pod, StaticContext(), load_config(config), mutate=False)
    (result,) = [r for r in decision.results if r.policy == "allowed-registries"]
    assert result.outcome is Outcome.SKIP
    assert result.reason == (
        "no allowed registries configured (set policies.allowed-registries.registries)"
    )


POD = "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: NS}\n" + (
    "spec: {containers: [{name: web, image: nginx}]}\n"
)


@pytest.mark.parametrize(
    ("name", "content", "error"),
    [
        (
            "fail-cluster.yaml",
            b"# cluster: online\n" + POD.encode(),
            "the cluster header must be one of synced, unsynced, offline",
        ),
        ("fail-latin1.yaml", b"# caf\xe9\n" + POD.encode(), "cannot read: 'utf-8' codec"),
        ("fail-params.yaml", b"# params: [1, 2]\n" + POD.encode(), "must be a JSON object"),
        (
            "fail-typo.yaml",
            b'# params: {"requires": ["limits.cpu"]}\n' + POD.encode(),
            "policies.require-resources.requires: Extra inputs are not permitted",
        ),
    ],
)
def test_a_bad_fixture_is_one_line_naming_it(
    cli: Cli, tmp_path: Path, name: str, content: bytes, error: str
) -> None:
    folder = tmp_path / "require-resources"
    folder.mkdir()
    (folder / name).write_bytes(content)
    run = cli("test", str(tmp_path))
    assert run.code == 2
    (line,) = run.err.splitlines()
    assert line.startswith(f"podgate test: {folder / name}: ")
    assert error in line
    assert "pydantic" not in line


def test_a_mutation_fixture_that_is_never_evaluated_says_why(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "default-resources"
    folder.mkdir()
    (folder / "exempt.yaml").write_text(POD.replace("NS", "kube-system"))
    patched = POD.replace("NS", "kube-system").replace(
        "image: nginx", "image: nginx, resources: {requests: {cpu: 100m, memory: 128Mi}}"
    )
    (folder / "exempt.patched.yaml").write_text(patched)
    run = cli("test", str(tmp_path))
    assert run.code == 1
    assert (
        "Pod/kube-system/web: expected a mutation, but none ran: namespace kube-system is exempt"
    ) in run.out
    (folder / "exempt.patched.yaml").unlink()  # expecting no change: it holds
    assert cli("test", str(tmp_path)).code == 0


def test_a_package_fixture_folder_runs_with_its_suites_plugins_before_install(
    cli: Cli,
) -> None:
    # The suite loads the package from source; the fixture folder beside it
    # must use that registry, not be skipped until the package is installed.
    cases = _cases(cli, str(PACKAGE_TESTS))
    fixtures = {c["name"] for c in cases if c["suite"].endswith("disallow-host-namespaces")}
    assert fixtures == {p.stem for p in (PACKAGE_TESTS / "disallow-host-namespaces").glob("*.yaml")}


def test_fixtures_of_a_policy_nothing_defines_are_an_error(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "no-such-policy"
    folder.mkdir()
    (folder / "pass-one.yaml").write_text("apiVersion: v1\nkind: Pod\n", encoding="utf-8")
    run = cli("test", str(tmp_path))
    assert run.code == 2
    assert run.err == (
        f"podgate test: {folder}: fixtures for 'no-such-policy', which no suite above it "
        "and no installed package defines; pass --config with the plugin that does\n"
    )


def test_a_folder_of_manifests_named_like_fixtures_is_left_alone(cli: Cli, tmp_path: Path) -> None:
    # `error-pages.yaml` beside other manifests is not a fixture folder
    shutil.copytree(EXAMPLES / "disallow-latest-tag", tmp_path / "disallow-latest-tag")
    deploy = tmp_path / "deploy"
    deploy.mkdir()
    (deploy / "error-pages.yaml").write_text("apiVersion: v1\nkind: Pod\n", encoding="utf-8")
    (deploy / "web.yaml").write_text("apiVersion: v1\nkind: Pod\n", encoding="utf-8")
    run = cli("test", str(tmp_path))
    assert (run.code, run.err) == (0, "")
