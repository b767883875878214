"""Bad plugins, and exactly what their author sees.

Each is loaded the way a user loads it (`plugins:` in the config given to
`podgate check`), and the assertion is on the whole stderr line or result
message. A plugin that fails to load fails the whole load (exit 2): no policy
of it, nor of any other plugin, is half-loaded.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from policies import StaticContext, evaluate
from policies.config import load_config
from policies.plugins import PluginError, builtin_registry, load_registry
from tests.plugins.conftest import Cli

POD = """\
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop}
spec:
  containers: [{name: web, image: registry.example.com/web:1.0}]
"""


def _write(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


def _config(folder: Path, body: str) -> str:
    path = folder / "podgate.yaml"
    path.write_text("entry_points: false\n" + textwrap.dedent(body), encoding="utf-8")
    return str(path)


def _check_fails(cli: Cli, config: str, folder: Path) -> str:
    """`podgate check` with this config: exit 2, nothing on stdout; its stderr."""
    (folder / "pod.yaml").write_text(POD, encoding="utf-8")
    run = cli("check", "--config", config, str(folder / "pod.yaml"))
    assert (run.code, run.out) == (2, ""), run.out + run.err
    return run.err


def test_syntax_error_names_file_and_line(cli: Cli, tmp_path: Path) -> None:
    plugin = _write(
        tmp_path,
        "broken.py",
        """\
        from policies import policy

        @policy("broken", title="Broken", category="test")
        def broken(pod)
            return []
        """,
    )
    err = _check_fails(cli, _config(tmp_path, "plugins: [broken.py]\n"), tmp_path)
    assert err == f"podgate check: file:{plugin}: syntax error at {plugin}:4: expected ':'\n"


def test_import_error_names_file_and_line(cli: Cli, tmp_path: Path) -> None:
    plugin = _write(
        tmp_path,
        "needs.py",
        """\
        '''A plugin whose dependency is not installed in podgate's environment.'''
        import acme_cmdb_client
        """,
    )
    err = _check_fails(cli, _config(tmp_path, "plugins: [needs.py]\n"), tmp_path)
    assert err == (
        f"podgate check: file:{plugin}: import failed at {plugin}:2: "
        "ModuleNotFoundError: No module named 'acme_cmdb_client'\n"
    )


def test_duplicate_id_names_both_origins(cli: Cli, tmp_path: Path) -> None:
    source = """\
        from policies import PodView, policy

        @policy("team-label", title="Pods carry a team label", category="ownership")
        def team_label(pod: PodView) -> None:
            return None
        """
    first = _write(tmp_path, "a.py", source)
    second = _write(tmp_path, "b.py", source)
    err = _check_fails(cli, _config(tmp_path, "plugins: [a.py, b.py]\n"), tmp_path)
    assert err == (
        f"podgate check: duplicate policy id 'team-label': defined by file:{first} "
        f"and by file:{second}\n"
    )


def test_reusing_a_builtin_id_names_builtin(cli: Cli, tmp_path: Path) -> None:
    plugin = _write(
        tmp_path,
        "mine.py",
        """\
        from policies import PodView, policy

        @policy("require-probes", title="My probes", category="reliability")
        def my_probes(pod: PodView) -> None:
            return None
        """,
    )
    err = _check_fails(cli, _config(tmp_path, "plugins: [mine.py]\n"), tmp_path)
    assert err == (
        f"podgate check: duplicate policy id 'require-probes': defined by builtin "
        f"and by file:{plugin}\n"
    )


def test_a_mutation_reusing_an_id_is_named_a_mutation_by_its_plain_path(
    cli: Cli, tmp_path: Path
) -> None:
    (tmp_path / "plugins").mkdir()
    plugin = _write(
        tmp_path / "plugins",
        "mine.py",
        """\
        from policies import PodView, mutation

        @mutation("default-resources", title="My defaults")
        def my_defaults(pod: PodView) -> None:
            return None
        """,
    )
    config = _config(tmp_path, "plugins: [elsewhere/../plugins/mine.py]\n")
    err = _check_fails(cli, config, tmp_path)
    assert err == (
        f"podgate check: duplicate mutation id 'default-resources': defined by builtin "
        f"and by file:{plugin}\n"
    )


@pytest.mark.parametrize(
    ("decorator", "problem"),
    [
        ('@policy("no-title", category="ownership")', "policy 'no-title' needs a title"),
        ('@policy("no-category", title="T")', "policy 'no-category' needs a category"),
        (
            '@policy(title="No id", category="ownership")',
            "id None must be a lowercase DNS label such as 'require-team-label'",
        ),
        (
            '@policy("Team_Label", title="T", category="ownership")',
            "id 'Team_Label' must be a lowercase DNS label such as 'require-team-label'",
        ),
        (
            '@policy("kinds", title="T", category="c", kinds=["Deployment", "Service"])',
            "policy 'kinds' kinds must be among CronJob, DaemonSet, Deployment, Job, Pod, "
            "PodTemplate, ReplicaSet, ReplicationController, StatefulSet; got Service",
        ),
        (
            '@policy("kinds", title="T", category="c", kinds="Pod")',
            "policy 'kinds' kinds must be a list of kinds, e.g. kinds=['Pod'], "
            "not the string 'Pod'",
        ),
        (
            "@policy",
            '@policy needs its id and title: write @policy("my-id", title="...", ...), '
            "not a bare @policy",
        ),
        (
            '@policy("severity", title="T", category="c", severity="urgent")',
            "policy 'severity': 'urgent' is not a valid Severity "
            "(one of: low, medium, high, critical)",
        ),
        (
            '@policy("params", title="T", category="c", params=dict)',
            "policy 'params' params must be a subclass of policies.Params",
        ),
    ],
)
def test_bad_metadata_names_the_function_and_line(
    cli: Cli, tmp_path: Path, decorator: str, problem: str
) -> None:
    plugin = _write(
        tmp_path,
        "meta.py",
        f"from policies import PodView, policy\n\n\n{decorator}\n"
        "def team_label(pod: PodView) -> None:\n    return None\n",
    )
    err = _check_fails(cli, _config(tmp_path, "plugins: [meta.py]\n"), tmp_path)
    assert err == f"podgate check: file:{plugin}: team_label ({plugin}:4): {problem}\n"


def test_params_without_defaults_are_refused_at_definition(cli: Cli, tmp_path: Path) -> None:
    plugin = _write(
        tmp_path,
        "needs_params.py",
        """\
        from policies import Params, PodView, policy

        class Teams(Params):
            teams: list[str]

        @policy("teams", title="T", category="c", params=Teams)
        def teams(pod: PodView, params: Teams) -> None:
            return None
        """,
    )
    err = _check_fails(cli, _config(tmp_path, "plugins: [needs_params.py]\n"), tmp_path)
    assert err == (
        f"podgate check: file:{plugin}: teams ({plugin}:6): policy 'teams' params must have "
        "a default for every field (none for: teams)\n"
    )


def test_unknown_argument_name(cli: Cli, tmp_path: Path) -> None:
    plugin = _write(
        tmp_path,
        "args.py",
        """\
        from policies import PodView, policy

        @policy("args", title="T", category="c")
        def args(pod: PodView, request: object) -> None:
            return None
        """,
    )
    err = _check_fails(cli, _config(tmp_path, "plugins: [args.py]\n"), tmp_path)
    assert err == (
        f"podgate check: file:{plugin}: args ({plugin}:3): unknown argument(s) request; "
        "a policy or mutation may take any of: pod, params, ctx\n"
    )


def test_a_module_without_policies(cli: Cli, tmp_path: Path) -> None:
    plugin = _write(tmp_path, "helpers.py", "def helper() -> int:\n    return 1\n")
    err = _check_fails(cli, _config(tmp_path, "plugins: [helpers.py]\n"), tmp_path)
    assert err == f"podgate check: file:{plugin}: defines no @policy or @mutation\n"


def test_a_missing_plugin_file(cli: Cli, tmp_path: Path) -> None:
    err = _check_fails(cli, _config(tmp_path, "plugins: [nowhere.py]\n"), tmp_path)
    assert err == (
        f"podgate check: nowhere.py: no such file or folder (looked in {tmp_path}/nowhere.py)\n"
    )


def test_a_missing_plugin_module(cli: Cli, tmp_path: Path) -> None:
    err = _check_fails(cli, _config(tmp_path, "plugins: [acme_policies_typo]\n"), tmp_path)
    assert err == (
        "podgate check: module:acme_policies_typo: import failed: ModuleNotFoundError: "
        "No module named 'acme_policies_typo'\n"
    )


EXAMPLE_REGISTRIES = (
    Path(__file__).resolve().parents[2]
    / "examples"
    / "policies"
    / "allowed-registries"
    / "allowed_registries.py"
)


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        (
            '{registries: [ghcr.io/acme, "https://quay.io"]}',
            "policies.allowed-registries.registries[1]: 'https://quay.io' is not "
            "a registry host or host/path prefix (write `ghcr.io/acme`: no scheme, no wildcard)",
        ),
        (
            "{registry: [ghcr.io/acme]}",
            "policies.allowed-registries.registry: Extra inputs are not permitted "
            "(it takes action, budget_ms, failure_action, registries)",
        ),
        (
            "{registries: ghcr.io/acme}",
            "policies.allowed-registries.registries: Input should be a valid list",
        ),
        (
            "{action: block}",
            "policies.allowed-registries.action: Input should be 'deny', 'warn', 'audit' or 'off'",
        ),
    ],
)
def test_parameters_failing_validation_name_the_field(
    cli: Cli, tmp_path: Path, section: str, problem: str
) -> None:
    config = _config(
        tmp_path,
        f"plugins: [{EXAMPLE_REGISTRIES}]\npolicies:\n  allowed-registries: {section}\n",
    )
    err = _check_fails(cli, config, tmp_path)
    assert err == f"podgate check: {config}: {problem}\n"


RAISES = """\
from collections.abc import Iterator

from policies import PodView, Violation, policy


@policy("cmdb-owner", title="The owner exists in the CMDB", category="ownership")
def cmdb_owner(pod: PodView) -> Iterator[Violation]:
    raise ConnectionError("cmdb.example.com: connection refused")
"""


def _results(run_out: str) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = json.loads(run_out)["results"]
    return results


def test_a_policy_that_raises_is_an_error_decided_by_its_failure_action(
    cli: Cli, tmp_path: Path
) -> None:
    _write(tmp_path, "cmdb.py", RAISES)
    (tmp_path / "pod.yaml").write_text(POD, encoding="utf-8")
    # The built-ins switched off, so that only the plugin decides the exit code.
    builtins_off = "".join(f"  {pid}: {{action: 'off'}}\n" for pid in builtin_registry().policies)
    only_it = f"plugins: [cmdb.py]\npolicies:\n{builtins_off}"
    # The failure action is the policy's action by default: a deny policy refuses
    # what it could not evaluate, saying why; the text output shows the same line.
    run = cli("check", "-c", _config(tmp_path, only_it), str(tmp_path / "pod.yaml"))
    assert run.code == 1
    assert (
        "  ERROR deny  cmdb-owner: podgate could not evaluate it: the policy raised "
        "ConnectionError: cmdb.example.com: connection refused (failure_action: deny)"
    ) in run.out.splitlines()

    # failure_action: warn admits, with the exception in the message.
    lenient = only_it.replace("policies:\n", "policies:\n  cmdb-owner: {failure_action: warn}\n")
    run = cli("check", "-o", "json", "-c", _config(tmp_path, lenient), str(tmp_path / "pod.yaml"))
    assert run.code == 0, run.err
    (result,) = _results(run.out)
    assert (result["policy"], result["result"], result["action"]) == ("cmdb-owner", "error", "warn")
    assert result["message"] == (
        "podgate could not evaluate it: the policy raised ConnectionError: cmdb.example.com: "
        "connection refused (failure_action: warn)"
    )


def test_a_policy_yielding_strings_is_an_error(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "strings.py",
        """\
        from collections.abc import Iterator

        from policies import PodView, policy

        @policy("strings", title="T", category="c")
        def strings(pod: PodView) -> Iterator[str]:
            yield "no team label"
        """,
    )
    config = load_config(_config(tmp_path, "plugins: [strings.py]\n"))
    decision = evaluate(_pod(), StaticContext(), config, mutate=False)
    (result,) = [r for r in decision.results if r.policy == "strings"]
    assert result.reason == (
        "podgate could not evaluate it: the policy raised TypeError: policy strings yielded "
        "str, expected Violation (failure_action: deny)"
    )


@pytest.mark.parametrize(
    ("returned", "type_name"),
    [
        ('Violation("no team label")', "Violation"),
        ('"no team label"', "str"),
        ("False", "bool"),
        ('{"message": "no team label"}', "dict"),
    ],
)
def test_a_policy_returning_something_else_says_what_it_returned(
    tmp_path: Path, returned: str, type_name: str
) -> None:
    """Not "yielded str" for a single Violation (a NamedTuple, iterated into its
    fields), nor a silent pass for an empty string."""
    _write(
        tmp_path,
        "returns.py",
        f"""\
        from policies import PodView, Violation, policy

        @policy("returns", title="T", category="c")
        def returns(pod: PodView) -> object:
            return {returned}
        """,
    )
    config = load_config(_config(tmp_path, "plugins: [returns.py]\n"))
    decision = evaluate(_pod(), StaticContext(), config, mutate=False)
    (result,) = [r for r in decision.results if r.policy == "returns"]
    assert result.reason == (
        f"podgate could not evaluate it: the policy raised TypeError: policy returns returned "
        f"{type_name}, expected Violations: yield each one, or return a list of them "
        "(failure_action: deny)"
    )


def test_a_suite_naming_a_policy_as_a_mutation_or_back_cannot_run(cli: Cli, tmp_path: Path) -> None:
    """`mutation: <a policy>` compared nothing and passed; `policy: <a mutation>`
    failed with "got skip" and no reason."""
    _write(
        tmp_path,
        "both.py",
        """\
        from policies import PodView, Violation, mutation, policy

        @policy("team-label", title="T", category="c")
        def team_label(pod: PodView) -> list[Violation]:
            return [Violation("no team label")]

        @mutation("team-env", title="T")
        def team_env(pod: PodView) -> None:
            pass
        """,
    )
    (tmp_path / "pod.yaml").write_text(POD, encoding="utf-8")
    suite = tmp_path / "podgate-test.yaml"
    suite.write_text(
        "plugins: [both.py]\nresources: [pod.yaml]\n"
        "results: [{mutation: team-label, resource: Pod/web, patched: pod.yaml}]\n",
        encoding="utf-8",
    )
    run = cli("test", str(tmp_path))
    assert (run.code, run.out) == (2, "")
    assert run.err == (
        f"podgate test: {suite}: results[0]: 'team-label' is a validating policy: "
        "write `policy:` with `result:` (pass, fail, skip or error)\n"
    )
    suite.write_text(
        "plugins: [both.py]\nresources: [pod.yaml]\n"
        "results: [{policy: team-env, resource: Pod/web, result: pass}]\n",
        encoding="utf-8",
    )
    run = cli("test", str(tmp_path))
    assert (run.code, run.out) == (2, "")
    assert run.err == (
        f"podgate test: {suite}: results[0]: 'team-env' is a mutation: "
        "write `mutation:` with `patched:`, the expected object\n"
    )


@pytest.mark.parametrize(
    ("result", "error"),
    [
        (
            "{policy: require-probes, resource: Pod/web, result: fail, action: block}",
            "results[0].action must be one of ('deny', 'warn', 'audit', 'off')",
        ),
        (
            "{policy: require-probes, resource: Pod/web, result: fail, patched: pod.yaml}",
            "results[0]: `patched` is for a mutation; 'require-probes' is a validating "
            "policy (expect a `result`)",
        ),
        (
            "{mutation: default-resources, resource: Pod/web, patched: gone.yaml}",
            "results[0].patched: {folder}/gone.yaml: cannot read: ",
        ),
    ],
)
def test_a_suite_key_that_cannot_hold_is_refused_naming_the_suite(
    cli: Cli, tmp_path: Path, result: str, error: str
) -> None:
    (tmp_path / "pod.yaml").write_text(POD, encoding="utf-8")
    suite = tmp_path / "podgate-test.yaml"
    suite.write_text(f"resources: [pod.yaml]\nresults: [{result}]\n", encoding="utf-8")
    run = cli("test", str(tmp_path))
    assert (run.code, run.out) == (2, "")
    assert run.err.startswith(f"podgate test: {suite}: " + error.format(folder=tmp_path))


def test_a_suite_giving_a_key_twice_is_refused_as_a_config_is(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "pod.yaml").write_text(POD, encoding="utf-8")
    suite = tmp_path / "podgate-test.yaml"
    suite.write_text(
        "resources: [pod.yaml]\nresults: [{policy: require-probes, resource: Pod/web}]\n"
        "results: []\n",
        encoding="utf-8",
    )
    run = cli("test", str(tmp_path))
    assert (run.code, run.out) == (2, "")
    assert run.err.startswith(
        f"podgate test: {suite}: invalid YAML at line 3, column 1: found duplicate key 'results'"
    )


def test_a_missing_resources_file_names_the_suite(cli: Cli, tmp_path: Path) -> None:
    suite = tmp_path / "podgate-test.yaml"
    suite.write_text(
        "resources: [nowhere.yaml]\nresults: [{policy: require-probes, resource: Pod/web}]\n",
        encoding="utf-8",
    )
    run = cli("test", str(tmp_path))
    assert run.code == 2
    assert run.err.startswith(f"podgate test: {suite}: resources: {tmp_path}/nowhere.yaml: ")


def _pod(name: str = "web") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"containers": [{"name": "web", "image": "registry.example.com/web:1.0"}]},
    }


SLOW = """\
import time
from collections.abc import Iterator

from policies import PodView, Violation, policy


@policy("slow-lookup", title="Looks something up, slowly", category="ownership")
def slow_lookup(pod: PodView) -> Iterator[Violation]:
    time.sleep(0.2)
    yield from ()
"""

BUSY = """\
import time
from collections.abc import Iterator

from policies import PodView, Violation, policy


@policy("busy-lookup", title="Works hard on one pod", category="ownership")
def busy_lookup(pod: PodView) -> Iterator[Violation]:
    if pod.name == "first":
        end = time.thread_time() + 0.2
        while time.thread_time() < end:
            pass
    yield from ()
"""


def test_a_policy_over_its_budget_is_an_error_for_that_object_only(
    cli: Cli, tmp_path: Path
) -> None:
    _write(tmp_path, "busy.py", BUSY)
    _write(tmp_path, "slow.py", SLOW)
    manifests = tmp_path / "pods.yaml"
    manifests.write_text(
        "---\n".join(json.dumps(_pod(name)) + "\n" for name in ("first", "second")),
        encoding="utf-8",
    )
    config = _config(
        tmp_path,
        "plugins: [busy.py, slow.py]\npolicies:\n  busy-lookup: {budget_ms: 50}\n"
        "  slow-lookup: {budget_ms: 50}\n",
    )
    run = cli("check", "-o", "json", "-c", config, str(manifests))
    assert run.code == 1, run.err
    first, second = [r for r in _results(run.out) if r["policy"] == "busy-lookup"]
    assert (first["resource"]["name"], first["result"], first["action"]) == (
        "first",
        "error",
        "deny",
    )
    spent = first["message"]
    prefix = "podgate could not evaluate it: the policy used "
    assert spent.startswith(prefix), spent
    assert spent.endswith(" ms of CPU time on this object, over its 50 ms budget "
                          "(failure_action: deny)"), spent  # fmt: skip
    assert int(spent.removeprefix(prefix).split()[0]) >= 200
    # The next object gets its own verdict: nothing carries over.
    assert (second["resource"]["name"], second["result"]) == ("second", "pass")
    # Waiting is no work: the policy that sleeps 200 ms stays within 50 ms of CPU.
    assert {r["result"] for r in _results(run.out) if r["policy"] == "slow-lookup"} == {"pass"}


HALF = """\
from policies import PodView, policy


@policy("half-loaded", title="Defined before the error", category="test")
def half_loaded(pod: PodView) -> None:
    return None


TEAMS = {"payments": "alice"}["billing"]
"""


def test_a_failing_file_adds_nothing_even_what_it_defined_first(cli: Cli, tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    good = _write(plugins, "good.py", SLOW.replace("time.sleep(0.2)", "pass"))
    bad = _write(plugins, "half.py", HALF)
    config = _config(tmp_path, "plugins: [plugins]\n")
    err = _check_fails(cli, config, tmp_path)
    assert err == f"podgate check: file:{bad}: import failed at {bad}:9: KeyError: 'billing'\n"
    listed = cli("policies", "-c", config)
    assert (listed.code, listed.out) == (2, "")

    with pytest.raises(PluginError):
        load_registry(["plugins"], base=tmp_path, entry_points=False)
    # Neither the half-run module nor its policy is kept anywhere.
    assert not [m for m in sys.modules if m.startswith("podgate_plugin_half_")]

    # Fixed in place (a ConfigMap edit), the same folder loads, fixed content included.
    bad.write_text(HALF.replace('["billing"]', '["payments"]'), encoding="utf-8")
    registry = load_registry(["plugins"], base=tmp_path, entry_points=False)
    assert {"half-loaded", "slow-lookup"} <= registry.ids()
    assert registry.policies["slow-lookup"].meta.origin == f"file:{good}"


def test_an_edited_plugin_file_is_imported_afresh(tmp_path: Path) -> None:
    plugin = _write(tmp_path, "edited.py", SLOW.replace("time.sleep(0.2)", "pass"))
    first = load_registry([str(plugin)], entry_points=False)
    assert first.policies["slow-lookup"].meta.title == "Looks something up, slowly"
    plugin.write_text(
        plugin.read_text(encoding="utf-8").replace("slowly", "quickly"), encoding="utf-8"
    )
    second = load_registry([str(plugin)], entry_points=False)
    assert second.policies["slow-lookup"].meta.title == "Looks something up, quickly"


def test_a_broken_plugin_in_a_suite_stops_podgate_test(cli: Cli, tmp_path: Path) -> None:
    plugin = _write(tmp_path, "broken.py", "from policies import policy\n\ndef broken(:\n")
    (tmp_path / "pod.yaml").write_text(POD, encoding="utf-8")
    suite = tmp_path / "podgate-test.yaml"
    suite.write_text(
        "plugins: [broken.py]\nresources: [pod.yaml]\n"
        "results: [{policy: broken, resource: Pod/web, result: pass}]\n",
        encoding="utf-8",
    )
    run = cli("test", str(tmp_path))
    assert (run.code, run.out) == (2, "")
    assert run.err == (
        f"podgate test: {suite}: file:{plugin}: syntax error at {plugin}:3: invalid syntax\n"
    )


def test_sys_exit_in_a_policy_or_a_mutation_is_an_error_not_the_end(tmp_path: Path) -> None:
    """SystemExit is not an Exception: without its own clause, a policy calling
    sys.exit(0) would end `podgate check` with exit 0 and no report, or a
    webhook worker."""
    _write(
        tmp_path,
        "quits.py",
        """\
        import sys

        from policies import PodView, mutation, policy

        @policy("quits", title="T", category="c")
        def quits(pod: PodView) -> None:
            sys.exit(0)

        @mutation("quits-too", title="T")
        def quits_too(pod: PodView) -> None:
            pod.spec["priorityClassName"] = "half-done"
            sys.exit("cmdb down")
        """,
    )
    config = load_config(_config(tmp_path, "plugins: [quits.py]\n"))
    decision = evaluate(_pod(), StaticContext(), config)
    (result,) = [r for r in decision.results if r.policy == "quits"]
    assert (str(result.outcome), result.reason) == (
        "error",
        "podgate could not evaluate it: the policy raised SystemExit: 0 (failure_action: deny)",
    )
    assert decision.mutation_errors == ("quits-too raised SystemExit: cmdb down",)
    assert "priorityClassName" not in json.dumps(decision.patch), "its half-done change is dropped"


def test_sys_exit_while_importing_a_plugin_is_a_load_error(cli: Cli, tmp_path: Path) -> None:
    _write(tmp_path, "exits.py", "import sys\nsys.exit(0)\n")
    err = _check_fails(cli, _config(tmp_path, "plugins: [exits.py]\n"), tmp_path)
    exits = tmp_path / "exits.py"
    assert err == f"podgate check: file:{exits}: import failed at {exits}:2: SystemExit: 0\n"


def test_check_fix_says_which_mutation_failed_on_which_object(cli: Cli, tmp_path: Path) -> None:
    _write(
        tmp_path,
        "flaky.py",
        """\
        from policies import PodView, mutation

        @mutation("flaky", title="T")
        def flaky(pod: PodView) -> None:
            raise RuntimeError("cmdb down")
        """,
    )
    (tmp_path / "pod.yaml").write_text(POD, encoding="utf-8")
    config = _config(tmp_path, "plugins: [flaky.py]\n")
    run = cli("check", "--fix", "-c", config, str(tmp_path / "pod.yaml"))
    assert (
        f"podgate check --fix: {tmp_path / 'pod.yaml'}: document 1 (line 1): Pod shop/web: "
        "mutation flaky raised RuntimeError: cmdb down; its changes are left out"
    ) in run.err.splitlines()
    assert "seccompProfile" in run.out, "the other mutations still fix the pod"


def test_check_fix_refuses_a_report_format(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "pod.yaml").write_text(POD, encoding="utf-8")
    run = cli("check", "--fix", "-o", "json", str(tmp_path / "pod.yaml"))
    assert (run.code, run.out) == (2, "")
    assert "--fix prints manifests, not a report" in run.err
