"""Every decision, mode and operation, through the real server over TLS."""

from __future__ import annotations

import base64
import json
from typing import Any

import jsonpatch

from tests.integration import reviews as rv
from tests.integration.harness import Server, metric
from tests.webhook.fakes import wait_for

NONCOMPLIANT = rv.container(
    "web",
    image="nginx:1.25",
    resources={},
    livenessProbe=None,
    readinessProbe=None,
    securityContext={},
)


def _strip_none(c: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in c.items() if v is not None}


BAD = _strip_none(NONCOMPLIANT)


def test_compliant_deployment_is_allowed_without_warnings(server: Server) -> None:
    resp = server.review("/validate", rv.review(rv.deployment()))
    assert resp == {"uid": resp["uid"], "allowed": True}


def test_deny_lists_every_violation_with_403(server: Server) -> None:
    body = rv.review(rv.deployment("web", "shop", BAD))
    resp = server.review("/validate", body)
    assert resp["allowed"] is False
    status = resp["status"]
    assert status["code"] == 403
    assert status["reason"] == "Forbidden"
    message = status["message"]
    assert message.startswith("Deployment shop/web violates")
    lines = message.splitlines()[1:]
    # deny policies: every violation on its own line, with the container and the fix
    assert (
        '- require-resources: container "web" has no cpu request; set resources.requests.cpu'
        in (message)
    )
    assert any(line.startswith('- require-non-root: container "web"') for line in lines)
    assert sum(line.startswith("- require-resources:") for line in lines) == 3
    # warn policies are warnings, audit policies are silent
    assert not any("require-image-digest" in line for line in lines)
    assert not any("require-probes" in line for line in lines)
    assert any(w.startswith('require-image-digest: container "web"') for w in resp["warnings"])
    assert not any("require-probes" in w for w in resp["warnings"])


def test_warn_admits_with_warnings(server: Server) -> None:
    ok = rv.container("web", image="nginx:1.25")
    resp = server.review("/validate", rv.review(rv.deployment("web", "shop", ok)))
    assert resp["allowed"] is True
    assert "status" not in resp
    assert len(resp["warnings"]) == 1
    assert resp["warnings"][0].startswith('require-image-digest: container "web" image')
    assert all(len(w) <= 256 for w in resp["warnings"])


def test_audit_is_silent_but_recorded(server: Server) -> None:
    quiet = _strip_none(rv.container("web", livenessProbe=None, readinessProbe=None))
    before = server.metrics()
    sink = server.sink
    assert sink is not None
    sent = len(sink.created)
    resp = server.review(
        "/validate", rv.review(rv.deployment("audit-me", "shop", quiet, labels={"app": "web"}))
    )
    assert resp == {"uid": resp["uid"], "allowed": True}
    after = server.metrics()
    labels = {"policy": "require-probes", "action": "audit", "result": "fail"}
    assert metric(after, "podgate_policy_results_total", **labels) == (
        metric(before, "podgate_policy_results_total", **labels) + 1
    )
    wait_for(lambda: len(sink.created) > sent)
    event = sink.created[-1]
    assert event.action == "Audited"
    assert event.policies == ("require-probes",)
    assert event.involved.kind == "Namespace"
    assert event.involved.name == "shop"
    assert "audit-me" in event.message
    assert "readinessProbe" in event.message


def test_namespace_label_audit_mode_turns_denials_into_prefixed_warnings(server: Server) -> None:
    resp = server.review("/validate", rv.review(rv.deployment("web", "audited", BAD)))
    assert resp["allowed"] is True
    warnings = resp["warnings"]
    assert any(
        w.startswith('[audit mode, would be denied] require-resources: container "web"')
        for w in warnings
    )
    # a warn policy stays a plain warning
    assert any(w.startswith("require-image-digest:") for w in warnings)


def test_namespace_label_off_evaluates_nothing(server: Server) -> None:
    resp = server.review("/validate", rv.review(rv.deployment("web", "quiet", BAD)))
    assert resp == {"uid": resp["uid"], "allowed": True}


def test_the_exemption_annotation_is_ignored_unless_configured(server: Server) -> None:
    """Whoever may create a Pod could exempt it: the built-in config (which the
    harness's does not change here) honours no annotation."""
    annotations = {"podgate.dev/exempt": "require-resources, require-non-root,require-image-digest"}
    obj = rv.deployment("web", "shop", BAD, annotations=annotations)
    resp = server.review("/validate", rv.review(obj))
    assert resp["allowed"] is False
    assert "require-resources" in resp["status"]["message"]
    everything = rv.deployment("web", "shop", BAD, annotations={"podgate.dev/exempt": "*"})
    assert server.review("/validate", rv.review(everything))["allowed"] is False


def test_exempt_namespace(server: Server) -> None:
    resp = server.review("/validate", rv.review(rv.deployment("web", "kube-system", BAD)))
    assert resp == {"uid": resp["uid"], "allowed": True}


def _patch_of(resp: dict[str, Any]) -> list[dict[str, Any]]:
    assert resp["patchType"] == "JSONPatch"
    ops: list[dict[str, Any]] = json.loads(base64.b64decode(resp["patch"]))
    return ops


def test_mutate_patches_once_and_is_idempotent(server: Server) -> None:
    bare = rv.container("web", resources={}, securityContext={})
    obj = rv.deployment("web", "shop", bare)
    resp = server.review("/mutate", rv.review(obj))
    assert resp["allowed"] is True
    ops = _patch_of(resp)
    paths = {op["path"] for op in ops}
    assert "/spec/template/spec/containers/0/resources/requests" in paths or any(
        p.startswith("/spec/template/spec/containers/0/resources") for p in paths
    )
    patched = jsonpatch.apply_patch(obj, ops)
    assert patched["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]
    # reinvocation (reinvocationPolicy: IfNeeded) with the patched object: nothing to do
    again = server.review("/mutate", rv.review(patched))
    assert again == {"uid": again["uid"], "allowed": True}
    # and the validating webhook, which runs after, no longer sees missing resources
    valid = server.review("/validate", rv.review(patched))
    assert not any("require-resources" in w for w in valid.get("warnings", []))


def test_mutate_without_changes_sends_no_patch(server: Server) -> None:
    resp = server.review("/mutate", rv.review(rv.deployment()))
    assert resp == {"uid": resp["uid"], "allowed": True}


def test_running_pod_is_not_mutated_on_update(server: Server) -> None:
    bare = rv.pod("web", "shop", rv.container("web", resources={}))
    stored = rv.persisted(bare)
    resp = server.review("/mutate", rv.review(stored, operation="UPDATE", old=stored))
    assert resp == {"uid": resp["uid"], "allowed": True}


def test_v1beta1_is_answered_in_v1beta1(server: Server) -> None:
    body = rv.review(
        rv.deployment("web", "shop", BAD), api_version="admission.k8s.io/v1beta1", uid="b-1"
    )
    resp = server.review("/validate", body)  # checks apiVersion and uid echo
    assert resp["uid"] == "b-1"
    assert resp["allowed"] is False
    mutated = server.review("/mutate", {**body, "request": {**body["request"], "uid": "b-2"}})
    assert mutated["uid"] == "b-2"
    assert mutated["patchType"] == "JSONPatch"


def test_update_evaluates_the_new_object_and_events_land_on_the_object(server: Server) -> None:
    sink = server.sink
    assert sink is not None
    old = rv.persisted(rv.deployment())
    new = rv.persisted(rv.deployment("web", "shop", BAD))
    before = len(sink.created)
    resp = server.review("/validate", rv.review(new, operation="UPDATE", old=old))
    assert resp["allowed"] is False
    # the old object was compliant, the new one is not: the new one is what counts
    back = server.review("/validate", rv.review(old, operation="UPDATE", old=new))
    assert back["allowed"] is True
    wait_for(lambda: len(sink.created) >= before + 2)
    kinds = {(e.involved.kind, e.involved.name) for e in sink.created[before:]}
    assert kinds == {("Namespace", "shop"), ("Deployment", "web")}
    on_object = next(e for e in sink.created[before:] if e.involved.kind == "Deployment")
    assert on_object.involved.uid == new["metadata"]["uid"]
    assert on_object.action == "Denied"
    assert "require-resources" in on_object.policies


def test_an_update_that_leaves_the_template_alone_is_not_judged(server: Server) -> None:
    """A Deployment admitted before podgate (or in audit mode) must still scale
    and be relabelled: nothing new runs."""
    old = rv.persisted(rv.deployment("legacy", "shop", BAD))
    scaled = json.loads(json.dumps(old))
    scaled["spec"]["replicas"] = 1
    scaled["metadata"]["labels"]["team"] = "shop"
    resp = server.review("/validate", rv.review(scaled, operation="UPDATE", old=old))
    assert resp == {"uid": resp["uid"], "allowed": True}


def _restarted(obj: dict[str, Any]) -> dict[str, Any]:
    """`kubectl rollout restart`: a new pod template, the same software."""
    new: dict[str, Any] = json.loads(json.dumps(obj))
    new["spec"]["template"]["metadata"]["annotations"] = {"restartedAt": "2026-01-01T00:00:00Z"}
    return new


def test_an_update_that_adds_no_violation_is_allowed_with_warnings(server: Server) -> None:
    old = rv.persisted(rv.deployment("legacy", "shop", BAD))
    restarted = _restarted(old)
    resp = server.review("/validate", rv.review(restarted, operation="UPDATE", old=old))
    assert resp["allowed"] is True, resp
    before = 'require-resources: container "web" has no cpu request (as before this update)'
    assert any(w.startswith(before) for w in resp["warnings"]), resp["warnings"]
    worse = json.loads(json.dumps(restarted))
    worse["spec"]["template"]["spec"]["containers"].append({**BAD, "name": "sidecar"})
    resp = server.review("/validate", rv.review(worse, operation="UPDATE", old=old))
    assert resp["allowed"] is False
    assert 'container "sidecar" has no cpu request' in resp["status"]["message"]


def _made_by(obj: dict[str, Any], kind: str, name: str) -> dict[str, Any]:
    version = "v1" if kind == "ConfigMap" else "apps/v1"
    obj["metadata"]["ownerReferences"] = [
        {"apiVersion": version, "kind": kind, "name": name, "uid": f"{name}-uid",
         "controller": True}
    ]  # fmt: skip
    return obj


RS_CONTROLLER = "system:serviceaccount:kube-system:replicaset-controller"
GC = "system:serviceaccount:kube-system:generic-garbage-collector"


def _pod_of(owner: str, name: str, *containers: dict[str, Any]) -> dict[str, Any]:
    pod = rv.pod(name, "shop", *containers, labels={"app": "web"})  # selected by web-ingress
    return _made_by(pod, "ReplicaSet", owner)


def test_a_controllers_pod_is_judged_at_most_as_warnings(server: Server) -> None:
    """A Deployment admitted with violations (in audit mode, before podgate)
    must still get its Pods; a Pod whose creator only copied the reference
    (uids are not secret) is judged as written."""
    pod = _pod_of("legacy-5d9f", "legacy-5d9f-x1", BAD)
    resp = server.review("/validate", rv.review(pod, user=RS_CONTROLLER))
    assert resp["allowed"] is True, resp
    inherited = (
        'require-resources: container "web" has no cpu request '
        "(as in the template of ReplicaSet legacy-5d9f)"
    )
    assert any(w.startswith(inherited) for w in resp["warnings"]), resp["warnings"]
    assert server.review("/validate", rv.review(pod))["allowed"] is False
    # a controller that is no workload podgate judged (here a ConfigMap) vouches for nothing
    by_configmap = _made_by(rv.pod("cm-1", "shop", BAD, labels={"app": "web"}), "ConfigMap", "x")
    assert (
        server.review("/validate", rv.review(by_configmap, user=RS_CONTROLLER))["allowed"] is False
    )


def test_a_missing_network_policy_refuses_a_controllers_pod(server: Server) -> None:
    """The template was judged in the cluster of then: a NetworkPolicy deleted
    since is today's violation, not the template's."""
    pod = _pod_of("legacy-5d9f", "unselected", BAD)
    pod["metadata"]["labels"] = {"app": "nobody-selects-this"}
    resp = server.review("/validate", rv.review(pod, user=RS_CONTROLLER))
    assert resp["allowed"] is False
    lines = resp["status"]["message"].splitlines()[1:]
    assert lines
    assert all("require-network-policy" in line for line in lines), lines


def test_an_orphaned_workload_is_not_judged(server: Server) -> None:
    """`kubectl delete deployment --cascade=orphan`: the garbage collector
    removes the ReplicaSet's ownerReference; refused, the delete never ends."""
    owned = _made_by(rv.persisted(rv.deployment("web-1", "shop", BAD)), "Deployment", "web")
    owned["kind"] = "ReplicaSet"
    orphan = json.loads(json.dumps(owned))
    del orphan["metadata"]["ownerReferences"]
    resp = server.review("/validate", rv.review(orphan, operation="UPDATE", old=owned, user=GC))
    assert resp == {"uid": resp["uid"], "allowed": True}


def test_a_users_edit_of_a_controllers_replicaset_is_judged(server: Server) -> None:
    """A ReplicaSet under a Deployment is the controller's to write; a user who
    edits its template is judged as any writer is."""
    owned = _made_by(rv.persisted(rv.deployment("web-1", "shop", BAD)), "Deployment", "web")
    owned["kind"] = "ReplicaSet"
    edited = json.loads(json.dumps(owned))
    edited["spec"]["template"]["spec"]["containers"].append({**BAD, "name": "extra"})
    resp = server.review("/validate", rv.review(edited, operation="UPDATE", old=owned))
    assert resp["allowed"] is False
    assert 'container "extra"' in resp["status"]["message"]
    # the controller's own rewrite of it is its workload's template
    resp = server.review(
        "/validate", rv.review(edited, operation="UPDATE", old=owned, user=RS_CONTROLLER)
    )
    assert resp["allowed"] is True, resp


def test_an_update_that_changes_a_containers_image_inherits_nothing_for_it(
    server: Server,
) -> None:
    """A root container admitted before enforcement must not become any image
    at all: new software is judged anew."""
    old = rv.persisted(rv.deployment("legacy", "shop", BAD))
    resp = server.review("/validate", rv.review(_restarted(old), operation="UPDATE", old=old))
    assert resp["allowed"] is True, resp  # the same software: as before
    for key, value in (("image", "miner.example.com/x:1"), ("command", ["sh", "-c", "evil"])):
        swapped = json.loads(json.dumps(old))
        swapped["spec"]["template"]["spec"]["containers"][0][key] = value
        resp = server.review("/validate", rv.review(swapped, operation="UPDATE", old=old))
        assert resp["allowed"] is False, key
        denied = resp["status"]["message"].splitlines()[1:]
        assert 'require-non-root: container "web": runAsNonRoot is not set' in "\n".join(denied)


def test_update_of_an_object_being_deleted_is_allowed(server: Server) -> None:
    obj = rv.persisted(rv.pod("web", "shop", BAD))
    obj["metadata"]["deletionTimestamp"] = "2026-11-28T11:00:00Z"
    obj["metadata"]["finalizers"] = []
    resp = server.review("/validate", rv.review(obj, operation="UPDATE", old=obj))
    assert resp == {"uid": resp["uid"], "allowed": True}


def test_delete_and_connect_are_allowed_untouched(server: Server) -> None:
    stored = rv.persisted(rv.pod("web", "shop", BAD))
    for path in ("/validate", "/mutate"):
        resp = server.review(path, rv.review(None, operation="DELETE", old=stored))
        assert resp == {"uid": resp["uid"], "allowed": True}
    exec_options = {
        "kind": "PodExecOptions",
        "apiVersion": "v1",
        "stdin": True,
        "tty": True,
        "container": "web",
        "command": ["sh"],
    }
    connect = rv.review(
        exec_options, operation="CONNECT", kind="Pod", sub_resource="exec",
        namespace="shop", name="web",
    )  # fmt: skip
    resp = server.review("/validate", connect)
    assert resp == {"uid": resp["uid"], "allowed": True}


def test_ephemeral_containers_subresource(server: Server) -> None:
    stored = rv.persisted(rv.pod("web", "shop"))
    debug = {
        "name": "debugger",
        "image": "busybox:1.36",
        "command": ["sh"],
        "stdin": True,
        "tty": True,
        "targetContainerName": "web",
        "securityContext": {"runAsUser": 0},
    }
    new = json.loads(json.dumps(stored))
    new["spec"]["ephemeralContainers"] = [debug]
    body = rv.review(new, operation="UPDATE", old=stored, sub_resource="ephemeralcontainers")
    resp = server.review("/validate", body)
    assert resp["allowed"] is False
    message = resp["status"]["message"]
    assert 'ephemeral container "debugger"' in message
    assert "require-non-root" in message
    # policies that do not concern ephemeral containers did not run
    assert "require-probes" not in message
    assert "require-network-policy" not in message
    assert not any("require-network-policy" in w for w in resp.get("warnings", []))
    # nothing is mutated on this subresource
    mutated = server.review("/mutate", body)
    assert mutated == {"uid": mutated["uid"], "allowed": True}


def test_other_subresources_are_not_evaluated(server: Server) -> None:
    stored = rv.persisted(rv.pod("web", "shop", BAD))
    resp = server.review(
        "/validate", rv.review(stored, operation="UPDATE", old=stored, sub_resource="status")
    )
    assert resp == {"uid": resp["uid"], "allowed": True}


def test_dry_run_same_answer_no_event_and_labelled(server: Server) -> None:
    sink = server.sink
    assert sink is not None
    obj = rv.deployment("dry", "shop", BAD)
    before_events = len(sink.created)
    before = server.metrics()
    dry = server.review("/validate", rv.review(obj, dry_run=True))
    real = server.review("/validate", rv.review(obj))
    assert dry["allowed"] is real["allowed"] is False
    assert dry["status"] == real["status"]
    assert dry["warnings"] == real["warnings"]
    after = server.metrics()
    labels = {"webhook": "validate", "kind": "Deployment", "operation": "CREATE",
              "decision": "denied"}  # fmt: skip
    for flag in ("true", "false"):
        assert metric(after, "podgate_admission_requests_total", dry_run=flag, **labels) == (
            metric(before, "podgate_admission_requests_total", dry_run=flag, **labels) + 1
        )
    wait_for(lambda: len(sink.created) > before_events)
    new_events = [e for e in sink.created[before_events:] if "dry" in e.message]
    assert len(new_events) == 1  # only the real request's namespace event


def test_unknown_kind_is_allowed_and_counted_as_skipped(server: Server) -> None:
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": "shop"},
        "data": {"a": "b"},
    }
    before = server.metrics()
    resp = server.review("/validate", rv.review(config_map))
    assert resp == {"uid": resp["uid"], "allowed": True}
    labels = {"webhook": "validate", "kind": "other", "decision": "skipped"}
    assert metric(server.metrics(), "podgate_admission_requests_total", **labels) == (
        metric(before, "podgate_admission_requests_total", **labels) + 1
    )


def test_workload_kinds(server: Server) -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nightly", "namespace": "shop"},
        "spec": {
            "schedule": "0 3 * * *",
            "jobTemplate": {
                "spec": {"template": {"spec": {**rv.pod_spec(BAD), "restartPolicy": "Never"}}}
            },
        },
    }
    resp = server.review("/validate", rv.review(job))
    assert resp["allowed"] is False
    assert resp["status"]["message"].startswith("CronJob shop/nightly violates")


def test_get_policies(server: Server) -> None:
    resp = server.client.get("/policies")
    assert resp.status_code == 200
    body = resp.json()
    assert body["enforcement"] == "enforce"
    by_id = {p["id"]: p for p in body["policies"]}
    assert by_id["require-probes"]["action"] == "audit"
    assert by_id["require-image-digest"]["action"] == "warn"
    assert by_id["explode-strict"]["failure_action"] == "deny"
    assert by_id["default-resources"]["type"] == "mutating"
    assert "params" in by_id["require-resources"]
    assert body["cluster_state"] == "synced"


def test_one_structured_log_line_per_admission(server: Server) -> None:
    body = rv.review(rv.deployment("web", "shop", BAD), dry_run=True, uid="log-1")
    server.review("/validate", body)

    def lines() -> list[dict[str, Any]]:
        return [line for line in server.log_lines() if line.get("uid") == "log-1"]

    wait_for(lines)  # the log is written off the request path
    (fields,) = lines()
    assert (fields["msg"], fields["level"], fields["logger"]) == (
        "admission", "info", "podgate.admission",
    )  # fmt: skip
    assert fields["kind"] == "Deployment"
    assert (fields["namespace"], fields["name"]) == ("shop", "web")
    assert fields["user"] == "kubernetes-admin"
    assert fields["operation"] == "CREATE"
    assert fields["dry_run"] is True
    assert fields["decision"] == "denied"
    assert "require-resources:deny" in fields["failed"]
    assert "require-image-digest:warn" in fields["failed"]
    assert fields["duration_ms"] > 0
