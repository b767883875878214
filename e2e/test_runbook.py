"""docs/runbook.md and docs/troubleshooting.md, run against the real API server.

Each shell block marked `<!-- e2e: ID -->` is run here, as written, by bash,
in the situation its section describes (podgate paused, webhook
configurations deleted, a Deployment refused after switching to enforce...),
and what it did is checked on the cluster. The docs' names need no
substituting: the session's release is `podgate` in `podgate-system`, like
theirs; only the example namespace `shop` becomes a fresh one and `./chart`
the chart's path. Blocks marked `<!-- needs: ... -->` need podgate's pods on a
node (or cert-manager...), which this control plane has not: they are listed
as skipped with the reason, to be wired when it has.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from e2e.conftest import (
    CHART,
    RELEASE,
    RELEASE_NAMESPACE,
    Podgate,
    apply,
    bad_pod,
    container,
    deployment,
    eventually,
    good_pod,
    helm,
    helm_upgrade,
    kubectl,
    kubectl_json,
    kubectl_ok,
    new_namespace,
)
from e2e.test_audit import Watcher
from tests.docs.blocks import OPERATIONS_DOCS, SHELL, Block, blocks
from webhook.server import tls

F = TypeVar("F", bound=Callable[..., Any])

BLOCKS = [b for doc in OPERATIONS_DOCS for b in blocks(doc) if b.lang in SHELL]
BY_ID = {b.label: b for b in BLOCKS if b.marker == "e2e" and b.label}
NEEDS = [b for b in BLOCKS if b.marker == "needs"]
# The scenario ids each test runs, declared where it is defined.
RUN: set[str] = set()
REFUSED = "denied the request"


def runs(*ids: str) -> Callable[[F], F]:
    def mark(test: F) -> F:
        RUN.update(ids)
        return test

    return mark


def run_block(
    block_id: str, cwd: Path, *, shop: str | None = None, errexit: bool = True
) -> subprocess.CompletedProcess[str]:
    """The block as written, but for `shop` and `./chart`; stdout and stderr together."""
    block = BY_ID[block_id]
    text = block.text.replace("./chart", str(CHART))
    if shop is not None:
        text = re.sub(r"\bshop\b", shop, text)
    options = "set -euo pipefail" if errexit else "set -uo pipefail"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        ["bash", "-c", f"{options}\n{text}"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
        check=False,
    )
    if errexit:
        assert proc.returncode == 0, (
            f"{block.where} ({block_id}) exited {proc.returncode}:\n{proc.stdout}"
        )
    return proc


def _failure_policy() -> str:
    return kubectl_ok(
        "get",
        "validatingwebhookconfiguration",
        RELEASE,
        "-o",
        "jsonpath={.webhooks[0].failurePolicy}",
    )


def _configurations_exist() -> bool:
    return (
        kubectl(
            "get", "validatingwebhookconfiguration,mutatingwebhookconfiguration", RELEASE
        ).returncode
        == 0
    )


@pytest.fixture
def restored(installed: Podgate) -> Iterator[Podgate]:
    """After the test: podgate running, the release as the session installed it."""
    yield installed
    installed.resume()
    helm_upgrade(installed)
    eventually(lambda: REFUSED in apply(bad_pod("probe", "default"), "--dry-run=server").stderr, 60)


@pytest.fixture
def shop(installed: Podgate) -> Iterator[str]:
    name = new_namespace("rb-shop", labels={"podgate.dev/mode": "audit"}, network_policy=False)
    yield name
    kubectl("delete", "namespace", name, "--wait=false")


# ------------------------------------------------------------------ the runbook


@runs("first-look", "probe", "timeout-config")
def test_first_look_shows_the_configurations_and_a_refusal(
    installed: Podgate, tmp_path: Path
) -> None:
    out = run_block("first-look", tmp_path).stdout
    assert "validate.podgate.dev failurePolicy=Fail timeoutSeconds=5" in out
    assert "mutate.podgate.dev failurePolicy=Ignore timeoutSeconds=3" in out
    probe = run_block("probe", tmp_path, errexit=False)
    assert probe.returncode != 0
    assert f'admission webhook "validate.podgate.dev" {REFUSED}' in probe.stdout
    assert "require-image-digest" in probe.stdout
    timeouts = run_block("timeout-config", tmp_path).stdout
    assert "validate.podgate.dev timeoutSeconds=5 failurePolicy=Fail" in timeouts
    assert "mutate.podgate.dev timeoutSeconds=3 failurePolicy=Ignore" in timeouts


@runs(
    "emergency-confirm",
    "apiserver-fail-open",
    "emergency-ignore",
    "emergency-recover",
    "emergency-delete",
)
def test_emergency_when_podgate_hangs(restored: Podgate, tmp_path: Path) -> None:
    restored.pause()  # the port accepts connections, nothing answers
    confirmed = run_block("emergency-confirm", tmp_path, errexit=False).stdout
    assert 'failed calling webhook "validate.podgate.dev"' in confirmed
    assert "context deadline exceeded" in confirmed
    assert re.search(
        r'apiserver_admission_webhook_rejection_count\{error_type="calling_webhook_error",'
        r'name="validate.podgate.dev"',
        confirmed,
    ), confirmed
    assert 'apiserver_admission_webhook_fail_open_count{name="mutate.podgate.dev"' in confirmed
    assert (
        "mutate.podgate.dev failurePolicy=Ignore"
        in run_block("apiserver-fail-open", tmp_path).stdout
    )

    # way 1: Ignore. Writes get in, after the timeouts
    run_block("emergency-ignore", tmp_path)
    assert _failure_policy() == "Ignore"
    let_through = run_block("probe", tmp_path, errexit=False)
    assert let_through.returncode == 0, let_through.stdout
    assert "created (server dry run)" in let_through.stdout

    restored.resume()
    recovered = run_block("emergency-recover", tmp_path, errexit=False).stdout
    assert _failure_policy() == "Fail", "helm upgrade restores the failurePolicy a patch changed"
    assert REFUSED in recovered

    # way 2: delete. Nothing waits for the hung podgate any more
    restored.pause()
    run_block("emergency-delete", tmp_path)
    assert not _configurations_exist()
    saved = list(yaml.safe_load_all((tmp_path / "podgate-webhooks.yaml").read_text()))
    kinds = {i["kind"] for doc in saved for i in doc["items"]}
    assert kinds == {"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"}
    started = time.monotonic()
    through = run_block("probe", tmp_path, errexit=False)
    assert through.returncode == 0, through.stdout
    assert time.monotonic() - started < 3, "with no configuration, nothing waits for podgate"

    restored.resume()
    back = run_block("emergency-recover", tmp_path, errexit=False).stdout
    assert _configurations_exist(), "helm upgrade recreates deleted configurations"
    assert REFUSED in back


@runs("upgrade-preview", "upgrade", "rollback")
def test_upgrade_and_rollback(restored: Podgate, tmp_path: Path) -> None:
    def revision() -> int:
        history = yaml.safe_load(
            helm("history", RELEASE, "-n", RELEASE_NAMESPACE, "-o", "yaml").stdout
        )
        return int(history[-1]["revision"])

    before = revision()
    preview = run_block("upgrade-preview", tmp_path).stdout
    assert "deployed" in preview
    assert f"url: {restored.url}" in preview  # helm get values: the release's own
    rendered = (tmp_path / "podgate-upgrade.yaml").read_text()
    assert "kind: ValidatingWebhookConfiguration" in rendered
    assert revision() == before, "a server-side dry run changes nothing"

    upgraded = run_block("upgrade", tmp_path, errexit=False).stdout
    assert revision() == before + 1
    assert REFUSED in upgraded

    rolled = run_block("rollback", tmp_path, errexit=False).stdout
    assert revision() == before + 2
    assert f"Rollback to {before}" in rolled  # the revision before the upgrade
    assert REFUSED in rolled


@runs("apiserver-latency", "apiserver-ready")
def test_the_api_server_s_own_view(installed: Podgate, tmp_path: Path) -> None:
    apply(bad_pod("latency-probe", "default"), "--dry-run=server")
    latency = run_block("apiserver-latency", tmp_path).stdout
    for name in ("validate.podgate.dev", "mutate.podgate.dev"):
        assert re.search(
            rf"apiserver_admission_webhook_admission_duration_seconds_count\{{name=\"{name}\"",
            latency,
        ), latency
    assert "readyz check passed" in run_block("apiserver-ready", tmp_path).stdout


@runs("config-policies", "config-reload-invalid", "config-rollback")
def test_config_checks_and_a_config_that_does_not_load(restored: Podgate, tmp_path: Path) -> None:
    listed = run_block("config-policies", tmp_path).stdout
    assert re.search(r"require-resources\s+policy\s+deny", listed), listed
    # an upgrade whose config the schema lets through but podgate refuses: a
    # quantity out of range (the schema checks its syntax, podgate its size)
    bad = helm(
        "upgrade", RELEASE, str(CHART), "-n", RELEASE_NAMESPACE, "--reuse-values",
        "--set", "config.mutations.default-resources.requests.cpu=1e40",
    )  # fmt: skip
    assert bad.returncode == 0, bad.stderr
    refused = run_block("config-reload-invalid", tmp_path, errexit=False)
    assert refused.returncode == 2, refused.stdout
    assert "mutations.default-resources.requests" in refused.stdout, refused.stdout
    assert "out of range" in refused.stdout
    back = run_block("config-rollback", tmp_path).stdout
    assert "1e40" not in (tmp_path / "podgate-config.yaml").read_text()
    assert "require-probes" in back


@runs("events")
def test_policy_violation_events_are_listed(installed: Podgate, shop: str, tmp_path: Path) -> None:
    assert apply(bad_pod("warned", shop)).returncode == 0  # audit mode: admitted, warned

    def listed() -> str | None:
        out = run_block("events", tmp_path).stdout
        return out if shop in out else None

    assert "PolicyViolation" in eventually(listed, timeout=30)


@runs("audit-lease", "audit-once")
def test_the_audit_s_lease_and_a_one_shot_audit(installed: Podgate, tmp_path: Path) -> None:
    name = f"podgate-audit-rb-{uuid.uuid4().hex[:4]}"
    watcher = Watcher(RELEASE_NAMESPACE, name, tmp_path)
    try:
        eventually(lambda: watcher.leader() == 1, timeout=90)
        lease = run_block("audit-lease", tmp_path).stdout
        assert lease.startswith(f"{name} renewed 20"), lease
    finally:
        watcher.stop()
    once = run_block("audit-once", tmp_path, errexit=False)
    assert once.returncode in (0, 1), once.stdout  # 1: a deny violation in default
    assert "evaluated" in once.stdout


# ------------------------------------------------------------------ troubleshooting


@runs("refused-events", "refused-audit", "refused-back-to-audit", "refused-fix")
def test_deployment_refused_after_switching_to_enforce(
    restored: Podgate, shop: str, tmp_path: Path
) -> None:
    spec = {"containers": [container()]}  # passes all but require-network-policy
    created = apply(deployment("web", shop, spec))
    assert created.returncode == 0, created.stderr
    assert "[audit mode, would be denied] require-network-policy" in created.stderr
    eventually(lambda: len(_pods(shop)) == 2)
    kubectl_ok("label", "namespace", shop, "podgate.dev/mode=enforce", "--overwrite")
    eventually(lambda: REFUSED in apply(good_pod("check", shop), "--dry-run=server").stderr)
    kubectl_ok("-n", shop, "scale", "deployment", "web", "--replicas=3")

    def refused() -> str | None:
        out = run_block("refused-events", tmp_path, shop=shop).stdout
        return out if REFUSED in out else None

    events = eventually(refused, timeout=60)
    assert "require-network-policy" in events
    assert len(_pods(shop)) == 2

    # the chart's ConfigMap says what the session's podgate runs with
    upgraded = helm(
        "upgrade", RELEASE, str(CHART), "-n", RELEASE_NAMESPACE, "--reuse-values",
        "--set", "config.policies.require-network-policy.action=deny",
    )  # fmt: skip
    assert upgraded.returncode == 0, upgraded.stderr
    audited = run_block("refused-audit", tmp_path, shop=shop, errexit=False)
    assert audited.returncode == 1, audited.stdout
    assert re.search(r"FAIL\s+deny\s+require-network-policy", audited.stdout), audited.stdout

    run_block("refused-back-to-audit", tmp_path, shop=shop)
    eventually(lambda: len(_pods(shop)) == 3, timeout=60)

    run_block("refused-fix", tmp_path, shop=shop)
    labels = kubectl_json("get", "namespace", shop)["metadata"]["labels"]
    assert "podgate.dev/mode" not in labels
    kubectl_ok("-n", shop, "get", "networkpolicy", "web")

    def newest_has_pods() -> bool:
        sets = kubectl_json("-n", shop, "get", "replicasets")["items"]
        newest = max(sets, key=lambda rs: rs["metadata"]["creationTimestamp"])
        template_hash = newest["metadata"]["labels"]["pod-template-hash"]
        return any(
            p["metadata"]["labels"].get("pod-template-hash") == template_hash for p in _pods(shop)
        )

    eventually(newest_has_pods, timeout=60)


def _pods(namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = kubectl_json("-n", namespace, "get", "pods")["items"]
    return items


@runs("cert-ca-bundle", "cert-secret", "cert-compare")
def test_certificate_checks_see_a_wrong_ca_bundle(restored: Podgate, tmp_path: Path) -> None:
    bundle = run_block("cert-ca-bundle", tmp_path).stdout
    assert bundle.count("subject=CN = podgate-ca") == 2, bundle
    # The Secret as self-managed mode keeps it, from the files the session's
    # podgate serves (run on the host, it keeps them in its cert dir).
    certs = restored.cert_dir
    kubectl_ok(
        "-n", RELEASE_NAMESPACE, "create", "secret", "generic", f"{RELEASE}-tls",
        f"--from-file=ca.crt={certs / 'ca.crt'}", f"--from-file=tls.crt={certs / 'tls.crt'}",
        f"--from-file=tls.key={certs / 'tls.key'}",
    )  # fmt: skip
    try:
        served = run_block("cert-secret", tmp_path).stdout
        assert "issuer=CN = podgate-ca" in served
        assert "IP Address:127.0.0.1" in served
        assert "subject=CN = podgate-ca" in served
        assert "caBundle: the Secret's CA" in run_block("cert-compare", tmp_path).stdout

        other, _ = tls.make_ca("not-podgate")
        helm_upgrade(restored, caBundle=base64.b64encode(other).decode())

        def untrusted() -> str | None:
            error = apply(bad_pod("x509", "default"), "--dry-run=server").stderr
            return error if "x509" in error else None

        unknown = eventually(untrusted, timeout=30)
        assert "certificate signed by unknown authority" in unknown
        assert "caBundle: NOT the Secret's CA" in run_block("cert-compare", tmp_path).stdout
    finally:
        kubectl("-n", RELEASE_NAMESPACE, "delete", "secret", f"{RELEASE}-tls", "--ignore-not-found")


# ------------------------------------------------------------------ coverage


def test_every_e2e_block_is_run_by_a_test() -> None:
    assert set(BY_ID) == RUN, (
        f"in the docs but run by no test: {sorted(set(BY_ID) - RUN)}; "
        f"run but not in the docs: {sorted(RUN - set(BY_ID))}"
    )


@pytest.mark.parametrize("block", NEEDS, ids=lambda b: b.where)
def test_blocks_that_need_more_than_this_control_plane(block: Block) -> None:
    first = block.text.strip().splitlines()[0]
    pytest.skip(f"needs {block.label}: {first}")
