"""`podgate check` on shapes found in real manifests (a run over the 3,400
manifests of the Kubernetes source): each test failed before its fix."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from tests.cli.conftest import Runner

POD = """apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  containers:
  - name: a
    image: nginx
"""


def test_json_stream_is_read_as_kubectl_reads_it(podgate: Runner, tmp_path: Path) -> None:
    # k8s hack/testdata/multi-resource-json.json: `kubectl apply -f` creates both.
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {}}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "a", "image": "nginx"}]}}  # fmt: skip
    path = tmp_path / "stream.json"
    path.write_text(json.dumps(svc, indent=2) + "\n" + json.dumps(pod, indent=2) + "\n")
    run = podgate("check", "-o", "json", str(path))
    data = run.json()
    assert data["summary"]["documents"] == 2
    assert not [r for r in data["results"] if r["policy"] == "invalid-manifest"]
    assert {r["resource"]["name"] for r in data["results"]} == {"p"}


def test_fix_keeps_a_comment_after_a_blank_line_once(podgate: Runner, tmp_path: Path) -> None:
    # helm testcharts/object-order/templates/01-a.yml: `---`, blank line, `# 4 ...`
    path = tmp_path / "a.yaml"
    path.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n\n# the pod\n"
                    + POD.format(name="p"))  # fmt: skip
    run = podgate("check", "--fix", str(path))
    assert run.out.count("# the pod") == 1, run.out


def test_fix_does_not_reindent_another_documents_style(podgate: Runner, tmp_path: Path) -> None:
    # k8s test/fixtures/doc-yaml/user-guide/multi-pod.yaml: first doc indents `- `, second not
    first = POD.format(name="a").replace("  - name: a\n    image", "    - name: a\n      image")
    second = POD.format(name="b") + "    args:\n    - x\n"
    path = tmp_path / "m.yaml"
    path.write_text(first + "---\n" + second)
    run = podgate("check", "--fix", str(path))
    out = run.out.split("---\n")[1]
    assert "  - name: a\n    image: nginx\n    args:\n    - x\n" in out, out


def test_fix_of_json_keeps_non_ascii_text(podgate: Runner, tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps(yaml.safe_load(POD.format(name="café")), ensure_ascii=False))
    run = podgate("check", "--fix", str(path))
    assert "café" in run.out, run.out


def test_fix_through_a_merge_key_never_sets_run_as_non_root_on_uid_0(
    podgate: Runner, tmp_path: Path
) -> None:
    path = tmp_path / "anchors.yaml"
    path.write_text(
        POD.format(name="p")
        + "    securityContext: &sc\n      readOnlyRootFilesystem: true\n      runAsUser: 10001\n"
        + "  - name: root\n    image: nginx\n"
        + "    securityContext:\n      <<: *sc\n      runAsUser: 0\n"
    )
    run = podgate("check", "--fix", str(path))
    assert "its YAML anchors or merge keys share what the fix would change" in run.err
    root = yaml.safe_load(run.out)["spec"]["containers"][1]["securityContext"]
    assert root.get("runAsUser") == 0
    assert "runAsNonRoot" not in root, root  # the mutation never touches a UID-0 container


OWNED = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  ownerReferences: [{apiVersion: %s, kind: %s, name: x, uid: u, controller: true}]
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx}]}
"""


@pytest.mark.parametrize(
    ("api_version", "kind"),
    [
        ("example.com/v1", "Anything"),  # k8s.io/api testdata/*/apps.v1.Deployment.yaml
        ("serving.knative.dev/v1", "Revision"),
        ("apps/v1", "Deployment"),  # a manifest is a person's write: references count for nothing
    ],
)
def test_check_and_podgate_test_judge_an_owned_workload_alike(
    podgate: Runner, tmp_path: Path, api_version: str, kind: str
) -> None:
    """One subject rule for every entry point: what `check` refuses, a
    `podgate test` case expecting a failure finds failing (not skipped)."""
    (tmp_path / "d.yaml").write_text(OWNED % (api_version, kind))
    run = podgate("check", str(tmp_path / "d.yaml"))
    assert run.code == 1, run.out
    (tmp_path / "podgate-test.yaml").write_text(
        "resources: [d.yaml]\n"
        "results: [{policy: require-probes, resource: Deployment/web, result: fail}]\n"
    )
    suite = podgate("test", str(tmp_path / "podgate-test.yaml"))
    assert suite.code == 0, suite.out


def test_sarif_reports_an_unreadable_input(podgate: Runner, tmp_path: Path) -> None:
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"\xff\xfe junk")
    run = podgate("check", "-o", "sarif", str(path))
    assert run.code == 2
    (invocation,) = run.json()["runs"][0]["invocations"]
    assert invocation["executionSuccessful"] is False, "exit 2, yet SARIF says all went well"
    (notification,) = invocation["toolExecutionNotifications"]
    assert notification["message"]["text"].startswith(f"{path}: cannot read: ")


def test_junit_is_well_formed_with_control_characters(podgate: Runner, tmp_path: Path) -> None:
    path = tmp_path / "ctrl.yaml"
    path.write_text(POD.format(name="p").replace("- name: a", '- name: "a\\x01b"'))
    run = podgate("check", "-o", "junit", str(path))
    ET.fromstring(run.out)


def test_sarif_message_of_an_unreadable_document_has_no_blank_resource(
    podgate: Runner, tmp_path: Path
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("metadata: {name: [broken\n")
    run = podgate("check", "-o", "sarif", str(path))
    text = run.json()["runs"][0]["results"][0]["message"]["text"]
    assert not text.startswith(" "), repr(text)


def test_non_root_message_speaks_yaml(podgate: Runner, tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(POD.format(name="p") + "    securityContext: {runAsNonRoot: false}\n")
    run = podgate("check", str(path))
    assert "runAsNonRoot is false" in run.out, run.out


def test_fix_through_a_plain_alias_leaves_the_document_alone(
    podgate: Runner, tmp_path: Path
) -> None:
    # the pod's securityContext is also the container's: a default for the
    # container would land in the pod's too (not even a pod field)
    path = tmp_path / "alias.yaml"
    path.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n"
        "  securityContext: &sc\n    runAsUser: 1000\n"
        "  containers:\n  - name: a\n    image: nginx\n    securityContext: *sc\n"
    )
    run = podgate("check", "--fix", str(path))
    assert "its YAML anchors or merge keys share what the fix would change" in run.err
    assert run.out == path.read_text()


def test_fix_of_json_keeps_tab_indentation(podgate: Runner, tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps(yaml.safe_load(POD.format(name="p")), indent="\t") + "\n")
    run = podgate("check", "--fix", str(path))
    assert run.out.splitlines()[1].startswith('\t"'), run.out


def test_json_values_apart_only_by_json_whitespace_are_a_stream(
    podgate: Runner, tmp_path: Path
) -> None:
    pod = json.dumps(yaml.safe_load(POD.format(name="p")))
    path = tmp_path / "nbsp.json"
    path.write_text(pod + "\u00a0" + pod)  # kubectl refuses it: not two objects
    run = podgate("check", "-o", "json", str(path))
    assert [r["policy"] for r in run.json()["results"]] == ["invalid-manifest"]


def test_fix_keeps_a_documents_leading_blank_lines(podgate: Runner, tmp_path: Path) -> None:
    path = tmp_path / "b.yaml"
    path.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n\n\n"
                    + POD.format(name="p"))  # fmt: skip
    run = podgate("check", "--fix", str(path))
    assert "---\n\n\napiVersion: v1\nkind: Pod" in run.out, run.out


def test_a_lone_surrogate_neither_breaks_junit_nor_the_text_report(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "s.json"
    path.write_text(json.dumps(yaml.safe_load(POD.format(name="p"))).replace('"a"', '"a\\ud800"'))
    for output in ("junit", "text", "sarif"):
        run = subprocess.run(
            [sys.executable, "-m", "webhook.cli", "check", "-o", output, str(path)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert run.returncode == 1, (output, run.stderr)
        if output == "junit":
            ET.fromstring(run.stdout)


def test_an_unquoted_equals_sign_is_read_as_kubectl_reads_it(
    podgate: Runner, tmp_path: Path
) -> None:
    # kube-prometheus' AlertmanagerConfig CRD lists matcher operators as `- =`
    crd = (
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
        "metadata: {name: alertmanagerconfigs.monitoring.coreos.com}\n"
        "spec:\n  versions:\n  - schema:\n      openAPIV3Schema:\n        properties:\n"
        "          matchType:\n            enum:\n            - '!='\n            - =\n"
    )
    path = tmp_path / "crd.yaml"
    path.write_text(crd + "---\n" + POD.format(name="p"))
    run = podgate("check", "-o", "json", str(path))
    assert "invalid-manifest" not in {r["policy"] for r in run.json()["results"]}, run.out
