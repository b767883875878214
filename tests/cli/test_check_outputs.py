"""The output formats and --fix of `podgate check`."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree as ET

import yaml

from tests.cli.conftest import Runner

DEPLOYMENT = """# the web tier
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web  # keep me
  namespace: shop
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: "nginx:1.27"
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {ports: [{port: 80}]}
"""


def test_json_shape_matches_the_contract(podgate: Runner, tmp_path: Path) -> None:
    (tmp_path / "d.yaml").write_text(DEPLOYMENT)
    run = podgate("check", str(tmp_path / "d.yaml"), "-o", "json")
    data = run.json()
    assert set(data) == {"results", "errors", "skipped", "summary"}
    first = data["results"][0]
    assert {"policy", "result", "action", "message", "resource", "source"} <= set(first)
    assert first["resource"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "namespace": "shop",
        "name": "web",
    }
    # line 2: the document's first key, below its comment
    assert first["source"] == {"file": str(tmp_path / "d.yaml"), "document": 0, "line": 2}
    by_policy = {r["policy"]: r for r in data["results"]}
    assert by_policy["require-network-policy"]["action"] == "warn"
    assert by_policy["require-probes"]["result"] == "fail"
    assert by_policy["require-probes"]["violations"][0]["field"] == (
        "spec.template.spec.containers[0].livenessProbe"
    )
    assert data["summary"]["failures"]["deny"] == 4


def test_sarif_is_valid_and_levels_follow_actions(podgate: Runner, tmp_path: Path) -> None:
    (tmp_path / "d.yaml").write_text(DEPLOYMENT)
    run = podgate("check", str(tmp_path / "d.yaml"), "-o", "sarif")
    sarif = json.loads(run.out)
    assert sarif["version"] == "2.1.0"
    driver = sarif["runs"][0]["tool"]["driver"]
    assert {r["id"] for r in driver["rules"]} >= {"require-probes", "require-network-policy"}
    levels = {r["ruleId"]: r["level"] for r in sarif["runs"][0]["results"]}
    assert levels["require-probes"] == "error"
    assert levels["require-network-policy"] == "warning"
    assert "invalid-manifest" in {r["id"] for r in driver["rules"]}


def test_sarif_has_a_result_per_violation_pointing_at_its_field(
    podgate: Runner, tmp_path: Path
) -> None:
    (tmp_path / "d.yaml").write_text(DEPLOYMENT)
    results = json.loads(podgate("check", str(tmp_path / "d.yaml"), "-o", "sarif").out)["runs"][0][
        "results"
    ]

    def region(rule: str, text: str) -> tuple[int, int]:
        (found,) = [r for r in results if r["ruleId"] == rule and text in r["message"]["text"]]
        place = found["locations"][0]["physicalLocation"]["region"]
        return place["startLine"], place["startColumn"]

    # 3 resources, 2 probes, 1 non-root, 1 digest, 1 network policy: one each
    assert len(results) == 8
    assert region("require-image-digest", "uses tag") == (15, 9)  # the image key
    assert region("require-probes", "no livenessProbe") == (14, 9)  # missing: the container
    assert region("require-network-policy", "no NetworkPolicy") == (11, 7)  # the labels
    assert region("require-non-root", "runAsNonRoot") == (14, 9)


def test_junit_counts(podgate: Runner, tmp_path: Path) -> None:
    (tmp_path / "d.yaml").write_text(DEPLOYMENT)
    run = podgate("check", str(tmp_path / "d.yaml"), "-o", "junit")
    root = ET.fromstring(run.out.split("\n", 1)[1])
    suite = root.find("testsuite")
    assert suite is not None
    assert suite.get("tests") == "5"
    assert suite.get("failures") == "5"


def test_text_has_no_colour_when_not_a_tty(podgate: Runner, tmp_path: Path) -> None:
    (tmp_path / "d.yaml").write_text(DEPLOYMENT)
    run = podgate("check", str(tmp_path / "d.yaml"))
    assert "\033[" not in run.out
    assert 'FAIL  deny  require-probes: container "web" has no livenessProbe' in run.out


def test_fix_keeps_comments_and_other_documents(podgate: Runner, tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text(DEPLOYMENT)
    run = podgate("check", "--fix", str(path))
    assert run.code == 1  # the manifest as written is still refused
    assert run.out.startswith("# the web tier\n")
    assert "name: web  # keep me" in run.out
    assert 'image: "nginx:1.27"' in run.out
    assert run.out.endswith("spec: {ports: [{port: 80}]}\n"), "the Service is copied verbatim"
    docs = list(yaml.safe_load_all(run.out))
    container = docs[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"memory": "512Mi"},
    }
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert path.read_text() == DEPLOYMENT, "without --write the file is untouched"


def test_fix_write_in_place_is_idempotent(podgate: Runner, tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text(DEPLOYMENT)
    podgate("check", "--fix", "--write", str(path))
    once = path.read_text()
    assert once != DEPLOYMENT
    again = podgate("check", "--fix", "--write", str(path))
    assert "nothing to change" in again.err
    assert path.read_text() == once


def test_fix_from_stdin(podgate: Runner) -> None:
    run = podgate("check", "--fix", "-", stdin=DEPLOYMENT.encode())
    assert "seccompProfile" in run.out


NETWORK_POLICY = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: shop}
spec: {podSelector: {}}"""


def test_fix_of_several_files_is_one_stream_with_every_document(
    podgate: Runner, tmp_path: Path
) -> None:
    """kubectl must read back what it would have read from the inputs: files
    joined by `---`, an unchanged file included (here one without a final
    newline, which must not run into the next file)."""
    (tmp_path / "a.yaml").write_text(DEPLOYMENT)
    (tmp_path / "b.yaml").write_text(NETWORK_POLICY)
    (tmp_path / "c.yaml").write_text("---\n" + DEPLOYMENT.replace("name: web ", "name: api "))
    run = podgate("check", "--fix", str(tmp_path))
    docs = [d for d in yaml.safe_load_all(run.out) if d is not None]
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("Deployment", "web"),
        ("Service", "web"),
        ("NetworkPolicy", "default-deny"),
        ("Deployment", "api"),
        ("Service", "web"),
    ]
    assert "seccompProfile" in docs[3]["spec"]["template"]["spec"]["securityContext"]
    assert "2 objects fixed in 2 files" in run.err


def test_fix_prints_an_unchanged_input_as_it_is(podgate: Runner, tmp_path: Path) -> None:
    path = tmp_path / "np.yaml"
    path.write_text(NETWORK_POLICY + "\n")
    run = podgate("check", "--fix", str(path))
    assert run.out == NETWORK_POLICY + "\n"
    assert "nothing to change" in run.err


def test_fix_names_a_document_it_could_not_read(podgate: Runner, tmp_path: Path) -> None:
    broken = "apiVersion: v1\nkind: Pod\nmetadata: {name: [unclosed\n"
    path = tmp_path / "mixed.yaml"
    path.write_text(broken + "---\n" + DEPLOYMENT)
    run = podgate("check", "--fix", str(path))
    assert f"{path}: document 1 (line 1): invalid YAML" in run.err
    assert "left as written" in run.err
    assert run.out.startswith(broken + "---\n# the web tier\n")
    assert "seccompProfile" in run.out


def test_fix_keeps_crlf_line_endings(podgate: Runner, tmp_path: Path) -> None:
    path = tmp_path / "crlf.yaml"
    path.write_bytes(DEPLOYMENT.replace("\n", "\r\n").encode())
    podgate("check", "--fix", "--write", str(path))
    fixed = path.read_bytes().decode()
    assert "seccompProfile" in fixed
    assert fixed.count("\n") == fixed.count("\r\n"), "every line ends in CRLF"
    assert fixed.count("# the web tier") == 1
    assert "name: web  # keep me\r\n" in fixed


def test_write_needs_fix(podgate: Runner, tmp_path: Path) -> None:
    (tmp_path / "d.yaml").write_text(DEPLOYMENT)
    run = podgate("check", "--write", str(tmp_path / "d.yaml"))
    assert run.code == 2
    assert "--write needs --fix" in run.err


def test_namespace_manifest_label_sets_mode(podgate: Runner, tmp_path: Path) -> None:
    ns = (
        "apiVersion: v1\nkind: Namespace\n"
        "metadata: {name: shop, labels: {podgate.dev/mode: audit}}\n---\n"
    )
    (tmp_path / "d.yaml").write_text(ns + DEPLOYMENT)
    run = podgate("check", str(tmp_path / "d.yaml"), "-o", "json")
    assert run.code == 0
    assert run.json()["summary"]["failures"]["deny"] == 0


def test_bad_config_is_exit_2(podgate: Runner, tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("policies: {require-probes: {mode: sometimes}}\n")
    (tmp_path / "d.yaml").write_text(DEPLOYMENT)
    run = podgate("check", "--config", str(tmp_path / "c.yaml"), str(tmp_path / "d.yaml"))
    assert run.code == 2
    assert "policies.require-probes.mode" in run.err


def test_policies_command_lists_everything(podgate: Runner) -> None:
    run = podgate("policies", "-o", "json")
    rows = {row["id"]: row for row in run.json()["policies"]}
    assert rows["require-probes"]["params"] == {
        "require": ["liveness", "readiness"],
        "mode": "all",
        "skip_jobs": True,
        "include_sidecars": True,
    }
    assert rows["default-resources"]["type"] == "mutating"
    assert all(row["origin"] == "builtin" for row in rows.values())


def test_policies_command_says_when_enforcement_is_audit(podgate: Runner, tmp_path: Path) -> None:
    assert podgate("policies", "-o", "json").json()["enforcement"] == "enforce"
    (tmp_path / "c.yaml").write_text("enforcement: audit\n")
    run = podgate("policies", "-c", str(tmp_path / "c.yaml"))
    assert run.out.splitlines()[-1] == (
        "enforcement: audit (dry run): every deny above is answered as a warning"
    )
    assert podgate("policies", "-c", str(tmp_path / "c.yaml"), "-o", "json").json()[
        "enforcement"
    ] == ("audit")


def test_verbose_text_gives_the_reason_of_a_skip(podgate: Runner, tmp_path: Path) -> None:
    windows = DEPLOYMENT.replace("    spec:\n", "    spec:\n      os: {name: windows}\n", 1)
    (tmp_path / "w.yaml").write_text(windows)
    run = podgate("check", "-v", str(tmp_path / "w.yaml"))
    assert (
        "  SKIP        require-non-root: Windows pods do not use runAsNonRoot/runAsUser"
        in run.out.splitlines()
    )


def test_the_summary_counts_objects_and_results_apart(podgate: Runner, tmp_path: Path) -> None:
    (tmp_path / "d.yaml").write_text(DEPLOYMENT + "---\n" + NETWORK_POLICY + "\n")
    run = podgate("check", str(tmp_path / "d.yaml"))
    # 3 objects (Deployment, Service, NetworkPolicy); only the Deployment is
    # evaluated, by the 5 policies, of which 4 fail: objects and results differ
    assert run.out.splitlines()[-1] == (
        "3 objects, 1 evaluated, 1 failed; 5 results: 1 passed, 4 failed, 0 errors, "
        "0 skipped; 4 deny, 0 warn, 0 audit"
    )
    summary = podgate("check", "-o", "json", str(tmp_path / "d.yaml")).json()["summary"]
    assert (summary["objects"], summary["failed_objects"]) == (3, 1)
