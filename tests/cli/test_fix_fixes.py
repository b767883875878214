"""`check --fix` with the built-in config fixes what has a safe default, and
says what is left for a person."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import Runner

TYPICAL = """apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers:
      - name: api
        image: registry.example.com/api:2.1
        ports: [{containerPort: 8080}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: api, namespace: shop}
spec:
  podSelector: {matchLabels: {app: api}}
  ingress: [{from: [{podSelector: {}}]}]
"""


def test_fix_leaves_only_what_needs_a_person(podgate: Runner, tmp_path: Path) -> None:
    path = tmp_path / "api.yaml"
    path.write_text(TYPICAL)
    fixed = podgate("check", "--fix", str(path))
    assert fixed.code == 1, "the exit code is the manifests' as given"
    assert (
        "4 findings remain that --fix cannot fix: require-probes (2), require-non-root (1), "
        "require-image-digest (1); podgate check on the fixed output lists them"
    ) in fixed.err
    after = podgate("check", "-o", "json", "-", stdin=fixed.out.encode()).json()
    failing = sorted(r["policy"] for r in after["results"] if r["result"] == "fail")
    # resources were filled, memory limit included; what is left needs a
    # person: probes, a digest, a UID the image agrees with
    assert failing == ["require-image-digest", "require-non-root", "require-probes"]


def test_fix_says_when_nothing_remains(podgate: Runner, tmp_path: Path) -> None:
    path = tmp_path / "api.yaml"
    path.write_text(TYPICAL)
    args = ("--skip", "require-probes", "--skip", "require-non-root", "--skip",
            "require-image-digest")  # fmt: skip
    run = podgate("check", "--fix", *args, str(path))
    assert run.code == 1, "as given, the Deployment has no resources"
    assert "podgate check --fix: no findings remain" in run.err
