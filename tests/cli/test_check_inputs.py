"""`podgate check` on bad input: nothing crashes, nothing is lost, errors say where."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from tests.cli.conftest import Runner
from webhook.cli.check import bulk_gc

DIGEST = "sha256:" + "ab" * 32
GOOD_POD = f"""apiVersion: v1
kind: Pod
metadata: {{name: good, namespace: shop}}
spec:
  securityContext: {{runAsNonRoot: true}}
  containers:
    - name: web
      image: nginx@{DIGEST}
      resources: {{requests: {{cpu: 10m, memory: 10Mi}}, limits: {{memory: 10Mi}}}}
      livenessProbe: {{tcpSocket: {{port: 80}}}}
      readinessProbe: {{tcpSocket: {{port: 80}}}}
"""
BAD_POD = """apiVersion: v1
kind: Pod
metadata: {name: bad}
spec:
  containers: [{name: web, image: nginx}]
"""


def results_for(run: object, name: str) -> list[dict[str, object]]:
    data = run.json()  # type: ignore[attr-defined]
    return [r for r in data["results"] if r["resource"]["name"] == name]


def test_good_manifest_exits_zero(podgate: Runner, tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD_POD)
    run = podgate("check", str(tmp_path / "good.yaml"))
    assert run.code == 0, run.out
    assert "0 deny" in run.out


def test_invalid_yaml_names_file_document_and_line_and_others_are_checked(
    podgate: Runner, tmp_path: Path
) -> None:
    path = tmp_path / "mixed.yaml"
    path.write_text(GOOD_POD + "---\nmetadata: {name: [broken\n---\n" + BAD_POD)
    run = podgate("check", str(path), "-o", "json")
    assert run.code == 1
    data = run.json()
    invalid = [r for r in data["results"] if r["policy"] == "invalid-manifest"]
    assert len(invalid) == 1
    assert invalid[0]["source"]["file"] == str(path)
    assert invalid[0]["source"]["document"] == 1
    assert "invalid YAML at line 14, column 1" in invalid[0]["message"]
    assert "while parsing a flow sequence started at line 13, column 18" in invalid[0]["message"]
    assert all(
        r["result"] == "pass"
        for r in results_for(run, "good")
        if r["policy"] != "require-network-policy"
    )
    assert any(r["result"] == "fail" for r in results_for(run, "bad"))


def test_text_output_names_the_document(podgate: Runner, tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("- just\n- a list\n---\n" + BAD_POD)
    run = podgate("check", str(path))
    assert f"{path}: document 1 (line 1)" in run.out
    assert "the document is a list, not a Kubernetes object" in run.out
    assert f"{path}: document 2 (line 4): Pod default/bad" in run.out


def test_pod_without_spec_and_null_containers(podgate: Runner, tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: nospec}\n---\n"
        "apiVersion: v1\nkind: Pod\nmetadata: {name: nulls}\nspec: {containers: null}\n"
    )
    run = podgate("check", str(path), "-o", "json")
    assert run.code == 1
    messages = {r["resource"]["name"]: r["message"] for r in run.json()["results"]}
    assert messages == {
        "nospec": "spec is missing or not a mapping",
        "nulls": "spec.containers is empty",
    }


def test_numbers_where_strings_are_expected(podgate: Runner, tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: 42}\n"
        "spec: {containers: [{name: 7, image: 3.14, securityContext: {runAsUser: '0'}}]}\n"
    )
    run = podgate("check", str(path), "-o", "json")
    assert run.code == 1
    by_policy = {r["policy"]: r for r in run.json()["results"]}
    assert "image 3.14 is not a string" in str(by_policy["require-image-digest"]["message"])
    assert "runAsUser '0' is not an integer UID" in str(by_policy["require-non-root"]["message"])


def test_empty_files_are_nothing_to_check(podgate: Runner, tmp_path: Path) -> None:
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "comments.yaml").write_text("# nothing here\n---\n---\n")
    run = podgate("check", str(tmp_path))
    assert run.code == 2, "an empty input must not pass a pipeline without pipefail"
    assert "nothing to check: no Kubernetes object in the input" in run.err


def test_binary_stdin_is_unreadable_exit_2(podgate: Runner) -> None:
    run = podgate("check", "-", stdin=b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    assert run.code == 2
    assert "<stdin>: binary data" in run.err


def test_undecodable_bytes_are_unreadable(podgate: Runner) -> None:
    run = podgate("check", "-", stdin=b"kind: Pod\nname: \xff\xfe\n")
    assert run.code == 2
    assert "not UTF-8" in run.err


def test_missing_path_is_exit_2_but_others_still_reported(podgate: Runner, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(BAD_POD)
    run = podgate("check", str(tmp_path / "nope.yaml"), str(tmp_path / "bad.yaml"), "-o", "json")
    assert run.code == 2
    data = run.json()
    assert data["errors"] == [
        {"file": str(tmp_path / "nope.yaml"), "reason": "no such file or folder"}
    ]
    assert results_for(run, "bad"), "the readable file was still checked"


def test_stdin_and_kind_list(podgate: Runner) -> None:
    listing = (
        "apiVersion: v1\nkind: List\nitems:\n"
        "  - {apiVersion: v1, kind: Pod, metadata: {name: one},\n"
        "     spec: {containers: [{name: a, image: x}]}}\n"
        "  - 17\n"
    )
    run = podgate("check", "-", "-o", "json", stdin=listing.encode())
    assert run.code == 1
    data = run.json()
    sources = {(r["resource"]["name"], r["source"].get("item")) for r in data["results"]}
    assert ("one", 0) in sources
    errors = [r for r in data["results"] if r["policy"] == "invalid-manifest"]
    assert errors[0]["source"]["item"] == 1
    assert "items[1] of the List is not a mapping" in errors[0]["message"]


def test_json_file_and_helm_template_output(podgate: Runner, tmp_path: Path) -> None:
    (tmp_path / "pod.json").write_text(
        '{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "j"},'
        ' "spec": {"containers": [{"name": "a", "image": "x"}]}}'
    )
    (tmp_path / "rendered.yaml").write_text(
        "---\n# Source: app/templates/svc.yaml\n"
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n"
        "---\n# Source: app/templates/deploy.yaml\n" + BAD_POD.replace("bad", "helmpod")
    )
    run = podgate("check", str(tmp_path), "-o", "json")
    names = {r["resource"]["name"] for r in run.json()["results"]}
    assert names == {"j", "helmpod"}


def test_twenty_megabyte_file(podgate: Runner, tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    padding = "# " + "x" * 1000 + "\n"
    with path.open("w") as f:
        f.write(BAD_POD)
        f.write("---\n")
        f.write("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata:\n  blob: |\n")
        for _ in range(20_000):
            f.write("    " + "y" * 1000 + "\n")
        f.write("---\n" + padding + GOOD_POD)
    assert path.stat().st_size > 20_000_000
    run = podgate("check", str(path), "-o", "json")
    assert run.code == 1
    names = {r["resource"]["name"] for r in run.json()["results"]}
    assert names == {"bad", "good"}


def test_document_separator_rules_match_kubectl(podgate: Runner, tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    # `--- # comment` separates; a block scalar line `---x` inside a document does not.
    path.write_text(
        BAD_POD
        + "--- # next\n"
        + BAD_POD.replace("bad", "second")
        + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  a: |\n    ---x\n"
    )
    run = podgate("check", str(path), "-o", "json")
    names = {r["resource"]["name"] for r in run.json()["results"]}
    assert names == {"bad", "second"}
    assert run.json()["summary"]["documents"] == 3


def test_dates_stay_strings(podgate: Runner, tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(
        BAD_POD.replace(
            "metadata: {name: bad}", "metadata: {name: bad, annotations: {since: 2024-01-01}}"
        )
    )
    run = podgate("check", str(path), "-o", "json")
    assert run.code == 1  # would crash on json.dumps(datetime.date) if dates were parsed


def test_bulk_gc_restores_the_collector_thresholds() -> None:
    before = gc.get_threshold()
    seen: list[tuple[int, int, int]] = []

    def failing_check() -> None:
        with bulk_gc((9999, 7, 77)):
            seen.append(gc.get_threshold())
            raise RuntimeError("a failing check")

    with pytest.raises(RuntimeError):
        failing_check()
    assert seen == [(9999, 7, 77)]
    assert gc.get_threshold() == before


def test_documents_are_counted_as_a_reader_counts_them(podgate: Runner, tmp_path: Path) -> None:
    """A leading `---` or a comment header is not a document of its own, and
    a document's line is its first key's, past the comments above it."""
    (tmp_path / "a.yaml").write_text("---\n" + BAD_POD)
    (tmp_path / "b.yaml").write_text(
        "# Copyright\n# header\n\n" + BAD_POD + "---\n# two\n" + BAD_POD
    )
    run = podgate("check", str(tmp_path))
    assert f"{tmp_path / 'a.yaml'}: document 1 (line 2): Pod default/bad" in run.out
    assert f"{tmp_path / 'b.yaml'}: document 1 (line 4): Pod default/bad" in run.out
    assert f"{tmp_path / 'b.yaml'}: document 2 (line 11): Pod default/bad" in run.out
    sources = [r["source"] for r in podgate("check", str(tmp_path), "-o", "json").json()["results"]]
    assert {"file": str(tmp_path / "a.yaml"), "document": 0, "line": 2} in sources


def test_list_items_are_named_as_in_the_list(podgate: Runner) -> None:
    listing = (
        "apiVersion: v1\nkind: PodList\nitems:\n"
        "  - {apiVersion: v1, kind: Pod, metadata: {name: one}, spec: {containers: []}}\n"
        "  - {apiVersion: v1, kind: Pod, metadata: {name: two},\n"
        "     spec: {containers: [{name: a, image: x}]}}\n"
    )
    run = podgate("check", "-", stdin=listing.encode())
    assert "<stdin>: document 1, items[1] (line 1): Pod default/two" in run.out


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ("apiVersion: v1\nind: Pod\nmetadata: {name: p}\n", "kind is missing"),
        ("kind: Pod\nmetadata: {name: p}\n", "apiVersion is missing"),
        ("apiVersion: v1\nkind: 3\n", "kind is a number, not a string"),
        ("just a line of text\n", "the document is a string, not a Kubernetes object"),
    ],
)
def test_not_an_object_says_which_field(podgate: Runner, document: str, problem: str) -> None:
    run = podgate("check", "-", stdin=document.encode())
    if problem.startswith(("kind is missing", "the document is")):  # no manifest at all: exit 2
        assert run.code == 2
        assert "not a Kubernetes manifest: none of its documents has a kind (document 1 " in run.err
    else:
        assert run.code == 1
    assert problem in run.out


def test_workloads_of_exempt_namespaces_are_counted_and_explained(
    podgate: Runner, tmp_path: Path
) -> None:
    path = tmp_path / "ks.yaml"
    path.write_text(BAD_POD.replace("{name: bad}", "{name: agent, namespace: kube-system}"))
    run = podgate("check", str(path))
    assert run.code == 0
    assert run.out.strip().endswith("1 workload exempt (-v says why)")
    assert run.out.startswith("1 object, 0 evaluated, 0 failed; 0 results")
    verbose = podgate("check", "-v", str(path))
    assert "EXEMPT      not evaluated: namespace kube-system is exempt" in verbose.out
    assert podgate("check", "-o", "json", str(path)).json()["summary"]["exempt"] == 1


@pytest.mark.parametrize("namespace", ["", "Bad_NS", "-x", "a" * 64])
def test_namespace_option_must_be_a_namespace_name(
    podgate: Runner, tmp_path: Path, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "p.yaml").write_text(BAD_POD)
    with pytest.raises(SystemExit) as exit_info:
        podgate("check", f"--namespace={namespace}", str(tmp_path / "p.yaml"))
    assert exit_info.value.code == 2
    assert "is not a namespace name" in capsys.readouterr().err
