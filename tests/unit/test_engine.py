"""The engine's decisions: modes, exemptions, failing policies, budgets, bad objects."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import pytest

from policies import (
    Action,
    ClusterState,
    Mode,
    Outcome,
    PodView,
    Registry,
    StaticContext,
    Violation,
    evaluate,
    policy,
)
from policies.config import ConfigError, ConfigFile, load_config, resolve
from policies.model import OFFLINE


def pod(**metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "shop", **metadata},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
    }


@policy("always-fails", title="Always fails", category="test")
def always_fails(pod: PodView) -> Iterator[Violation]:
    yield Violation(f"{pod.kind} is bad", fix="make it good")


@policy("raises", title="Raises", category="test")
def raises() -> None:
    raise RuntimeError("boom")


@policy("slow", title="Slow", category="test")
def slow() -> list[Violation]:
    time.sleep(0.05)  # waits, as a policy starved of CPU does: no CPU time spent
    return []


@policy("busy", title="Busy on some objects", category="test")
def busy(pod: PodView) -> list[Violation]:
    if "busy" in pod.annotations:
        end = time.thread_time() + 0.05
        while time.thread_time() < end:
            pass
    return [Violation("always fails")]


def config(registry: Registry, **raw: Any) -> Any:
    return resolve(ConfigFile.model_validate(raw), registry)


def test_deny_lists_every_violation() -> None:
    decision = evaluate(pod(), OFFLINE, load_config())
    assert not decision.allowed
    lines = decision.denial_lines
    assert any(
        line.startswith('require-probes: container "web" has no livenessProbe') for line in lines
    )
    assert any(line.startswith("require-image-digest:") for line in lines)
    assert any(line.startswith("require-non-root:") for line in lines)


def test_audit_mode_turns_denials_into_prefixed_warnings() -> None:
    cfg = config(Registry.of(always_fails), enforcement="audit")
    decision = evaluate(pod(), OFFLINE, cfg)
    assert decision.allowed
    assert decision.warning_lines == [
        "[audit mode, would be denied] always-fails: Pod is bad; make it good"
    ]
    assert decision.recorded[0].action is Action.DENY


def test_namespace_label_overrides_global_mode() -> None:
    cfg = config(Registry.of(always_fails))
    audit_ns = StaticContext(namespaces={"shop": {"podgate.dev/mode": "audit"}})
    assert evaluate(pod(), audit_ns, cfg).allowed
    off_ns = StaticContext(namespaces={"shop": {"podgate.dev/mode": "off"}})
    off = evaluate(pod(), off_ns, cfg)
    assert off.allowed
    assert off.mode is Mode.OFF
    assert off.results == ()
    typo = StaticContext(namespaces={"shop": {"podgate.dev/mode": "of"}})
    assert not evaluate(pod(), typo, cfg).allowed, "a typo must not switch podgate off"


def test_the_exempt_annotation_is_off_unless_configured_and_then_limited() -> None:
    exempt = pod(annotations={"podgate.dev/exempt": "always-fails, other"})
    star = pod(annotations={"podgate.dev/exempt": "*"})
    off = config(Registry.of(always_fails, raises))
    assert not evaluate(exempt, OFFLINE, off).allowed
    assert not evaluate(star, OFFLINE, off).allowed
    on = config(Registry.of(always_fails), exemptions={"allow_annotation": True})
    result = evaluate(exempt, OFFLINE, on).results[0]
    assert result.outcome is Outcome.SKIP
    assert "annotation" in result.reason
    assert evaluate(star, OFFLINE, on).allowed
    # limited to some policies: `*` means those, another id is ignored
    only_raises = config(
        Registry.of(always_fails, raises),
        exemptions={"allow_annotation": True, "annotation_policies": ["raises"]},
    )
    for obj in (exempt, star):
        outcomes = {r.policy: r.outcome for r in evaluate(obj, OFFLINE, only_raises).results}
        assert outcomes["always-fails"] is Outcome.FAIL
    assert {r.policy: r.outcome for r in evaluate(star, OFFLINE, only_raises).results}[
        "raises"
    ] is Outcome.SKIP
    # limited to some namespaces: elsewhere ignored
    elsewhere = config(
        Registry.of(always_fails),
        exemptions={"allow_annotation": True, "annotation_namespaces": ["dev-*"]},
    )
    assert not evaluate(star, OFFLINE, elsewhere).allowed
    assert evaluate({**star, "metadata": {**star["metadata"], "namespace": "dev-1"}}, OFFLINE,
                    elsewhere).allowed  # fmt: skip


def test_an_unknown_id_in_annotation_policies_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"exemptions.annotation_policies\[0\]: no such"):
        config(Registry.of(always_fails), exemptions={"annotation_policies": ["alwys-fails"]})


def test_exempt_namespace_globs() -> None:
    cfg = config(Registry.of(always_fails), exemptions={"namespaces": ["sh*"]})
    decision = evaluate(pod(), OFFLINE, cfg)
    assert decision.allowed
    assert "exempt" in decision.skipped_reason


def test_a_raising_policy_is_decided_by_its_failure_action_its_action_by_default() -> None:
    default = evaluate(pod(), OFFLINE, config(Registry.of(raises)))
    assert not default.allowed, "a deny policy refuses what it could not evaluate"
    (result,) = default.results
    assert result.outcome is Outcome.ERROR
    assert result.reason == (
        "podgate could not evaluate it: the policy raised RuntimeError: boom (failure_action: deny)"
    )
    lenient = config(Registry.of(raises), policies={"raises": {"failure_action": "warn"}})
    admitted = evaluate(pod(), OFFLINE, lenient)
    assert admitted.allowed
    assert admitted.warning_lines == [
        "raises: podgate could not evaluate it: the policy raised RuntimeError: boom "
        "(failure_action: warn)"
    ]
    globally = config(Registry.of(raises), failure_action="audit")
    assert evaluate(pod(), OFFLINE, globally).allowed
    warned = config(Registry.of(raises), policies={"raises": {"action": "warn"}})
    assert evaluate(pod(), OFFLINE, warned).warning_lines, "a warn policy warns of its errors"


def test_a_long_exception_message_is_cut() -> None:
    @policy("raises-long", title="Raises at length", category="test")
    def raises_long() -> None:
        raise ValueError("x" * 100_000)

    (result,) = evaluate(pod(), OFFLINE, config(Registry.of(raises_long))).results
    assert len(result.reason) < 300


def test_the_budget_counts_cpu_time_for_that_object_only() -> None:
    cfg = config(Registry.of(busy, slow), budget_ms=20)
    heavy = evaluate(pod(annotations={"busy": "1"}), OFFLINE, cfg)
    by_policy = {r.policy: r for r in heavy.results}
    assert by_policy["busy"].outcome is Outcome.ERROR
    assert "ms of CPU time on this object, over its 20 ms budget" in by_policy["busy"].reason
    assert not heavy.allowed  # decided by its failure action: its action, deny
    # waiting is no work: `slow` sleeps 50 ms and stays within its 20 ms of CPU
    assert by_policy["slow"].outcome is Outcome.PASS
    # the next object runs the policy again and gets its own verdict, at once
    light = evaluate(pod(), OFFLINE, cfg)
    assert {r.policy: r.outcome for r in light.results}["busy"] is Outcome.FAIL
    assert light.denial_lines == ["busy: always fails"]


def test_unsynced_cluster_caps_network_policy_at_warn() -> None:
    cfg = load_config()
    unsynced = StaticContext(state=ClusterState.UNSYNCED)
    denying = resolve(
        ConfigFile.model_validate({"policies": {"require-network-policy": {"action": "deny"}}}),
        cfg.registry,
    )
    result = next(
        r
        for r in evaluate(pod(), unsynced, denying).results
        if r.policy == "require-network-policy"
    )
    assert result.outcome is Outcome.FAIL
    assert result.effective_action is Action.WARN
    synced = next(
        r
        for r in evaluate(pod(), StaticContext(), denying).results
        if r.policy == "require-network-policy"
    )
    assert synced.effective_action is Action.DENY


def test_offline_skips_cluster_policies() -> None:
    result = next(
        r
        for r in evaluate(pod(), OFFLINE, load_config()).results
        if r.policy == "require-network-policy"
    )
    assert result.outcome is Outcome.SKIP
    assert "no cluster" in result.reason


def test_ephemeral_only_runs_only_policies_about_ephemeral_containers() -> None:
    decision = evaluate(pod(), StaticContext(), load_config(), ephemeral_only=True)
    ran = {r.policy for r in decision.results}
    # ephemeral containers carry no resources and no probes: those would only
    # repeat, on `kubectl debug`, what the other containers lack
    assert ran == {"require-non-root", "require-image-digest"}
    assert decision.patch == ()


@pytest.mark.parametrize(
    ("obj", "problem"),
    [
        ({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}}, "spec is missing"),
        (
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "x"},
                "spec": {"containers": None},
            },
            "spec.containers is empty",
        ),
        (
            {"apiVersion": "v1", "kind": "Pod", "spec": {"containers": "web"}},
            "spec.containers is not a list",
        ),
        (
            {"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [42]}},
            "spec.containers[0] is not a mapping",
        ),
        (
            {"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"template": "x"}},
            "spec.template is missing or not a mapping",
        ),
    ],
)
def test_malformed_objects_are_reported_not_raised(obj: dict[str, Any], problem: str) -> None:
    decision = evaluate(obj, OFFLINE, load_config())
    assert [r.outcome for r in decision.results] == [Outcome.ERROR]
    assert problem in decision.results[0].reason
    assert not decision.allowed


@pytest.mark.parametrize(
    "obj",
    [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}},
        {"apiVersion": "example.com/v1", "kind": "Deployment", "metadata": {"name": "crd"}},
        {"apiVersion": "v1"},
    ],
)
def test_other_kinds_are_skipped(obj: dict[str, Any]) -> None:
    decision = evaluate(obj, OFFLINE, load_config())
    assert decision.allowed
    assert decision.results == ()
    assert decision.skipped_reason


def test_image_exemption_leaves_containers_out() -> None:
    cfg = config(load_config().registry, exemptions={"images": ["nginx:*"]})
    decision = evaluate(pod(), StaticContext(), cfg)
    assert all(
        r.outcome is not Outcome.FAIL or r.policy == "require-network-policy"
        for r in decision.results
    )


def test_mutations_never_touch_the_callers_object_metadata() -> None:
    from policies import mutation

    @mutation("label-it", title="Label it")
    def label_it(pod: PodView) -> None:
        labels = pod.metadata.setdefault("labels", {})
        labels["managed-by"] = "podgate"

    deployment: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "x"}]}}},
    }
    decision = evaluate(deployment, OFFLINE, config(Registry.of(label_it)), validate=False)
    assert deployment["metadata"]["labels"] == {"app": "web"}
    assert decision.patch == (
        {"op": "add", "path": "/metadata/labels/managed-by", "value": "podgate"},
    )


def test_a_mutation_adding_a_container_is_seen_by_the_next() -> None:
    from policies import mutation

    @mutation("add-sidecar", title="Add a sidecar")
    def add_sidecar(pod: PodView) -> None:
        pod.spec["containers"].append({"name": "sidecar", "image": "proxy"})

    @mutation("tag-all", title="Tag every container")
    def tag_all(pod: PodView) -> None:
        for c in pod.containers():
            c.raw.setdefault("env", []).append({"name": "TAGGED", "value": "1"})

    decision = evaluate(pod(), OFFLINE, config(Registry.of(add_sidecar, tag_all)), validate=False)
    assert decision.mutated is not None
    names = [c["name"] for c in decision.mutated["spec"]["containers"] if "env" in c]
    assert names == ["web", "sidecar"]


def test_pod_views_made_without_init_have_every_field() -> None:
    # from_object and with_object fill the frozen dataclass's fields directly
    obj = pod()
    view = PodView.from_object(obj, default_namespace="shop")
    assert view is not None
    names = {f.name for f in dataclasses.fields(PodView)}
    assert names <= set(vars(view))
    moved = view.with_object(dict(obj), dict(view.spec))
    assert names <= set(vars(moved))
    assert moved.spec is not view.spec
    assert [c.name for c in moved.containers()] == [c.name for c in view.containers()]


def _nested(levels: int) -> Any:
    value: Any = "x"
    for _ in range(levels):
        value = {"a": value}
    return value


@pytest.mark.parametrize("where", ["labels", "env"])
def test_an_object_too_deep_for_the_stack_is_refused_not_admitted(where: str) -> None:
    """orjson reads up to 1024 levels, more than Python's recursion limit:
    such an object must come out as a refusal, never an exception that the
    webhook would answer by its failure action (admitted unchecked by default)."""
    deep = pod(labels={"app": _nested(1000)}) if where == "labels" else pod()
    if where == "env":
        deep["spec"]["containers"][0]["env"] = [_nested(1000)]
    decision = evaluate(deep, OFFLINE, load_config())
    assert not decision.allowed
    (result,) = decision.results
    assert (result.policy, result.reason) == (
        "invalid-manifest",
        "the object is nested too deeply to be checked (about a thousand levels)",
    )
    assert str(decision.resource) == "Pod shop/web"
    audit = evaluate(deep, OFFLINE, config(Registry(), enforcement="audit"))
    assert audit.allowed
    assert audit.results[0].effective_action is Action.WARN
