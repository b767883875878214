"""No read of the API server happens while a review is answered (ADR 5).

The server's only way to the cluster is the cluster double it is handed.
Once its caches have synced (the double's watches then stay open), every
read of the double fails and is counted; the server must still answer every
kind of review, those that read owners in earlier versions first.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from tests.integration import reviews as rv
from tests.integration.harness import default_cluster, sink, start_server

RS_CONTROLLER = "system:serviceaccount:kube-system:replicaset-controller"
GC = "system:serviceaccount:kube-system:generic-garbage-collector"
BAD = {"name": "web", "image": "nginx:1.27", "securityContext": {"runAsUser": 0}}


def _under(obj: dict[str, Any], kind: str, name: str) -> dict[str, Any]:
    owned = copy.deepcopy(obj)
    owned["metadata"]["ownerReferences"] = [
        {"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": "u", "controller": True}
    ]
    return owned


def _reviews() -> list[tuple[str, dict[str, Any], bool]]:
    """(route, review, allowed): every shape of request the feature has."""
    legacy = rv.persisted(rv.deployment("legacy", "shop", BAD))
    restarted = copy.deepcopy(legacy)
    restarted["spec"]["template"]["metadata"]["annotations"] = {"restartedAt": "now"}
    new_image = copy.deepcopy(legacy)
    new_image["spec"]["template"]["spec"]["containers"][0]["image"] = "miner.example.com/x:1"
    pod = _under(rv.pod("legacy-1", "shop", BAD, labels={"app": "web"}), "ReplicaSet", "legacy-1")
    replica_set = _under(rv.persisted(rv.deployment("legacy-1", "shop", BAD)), "Deployment", "x")
    replica_set["kind"] = "ReplicaSet"
    replica_set["spec"]["template"]["metadata"]["labels"] = {"app": "web"}  # a NetworkPolicy's
    orphan = copy.deepcopy(replica_set)
    del orphan["metadata"]["ownerReferences"]
    return [
        ("/validate", rv.review(rv.deployment()), True),
        ("/mutate", rv.review(rv.pod("web", "shop")), True),
        ("/validate", rv.review(pod, user=RS_CONTROLLER), True),  # a controller's Pod
        ("/mutate", rv.review(pod, user=RS_CONTROLLER), True),
        ("/validate", rv.review(pod), False),  # the same Pod, a copied reference
        ("/validate", rv.review(replica_set, user="system:kube-controller-manager"), True),
        ("/validate", rv.review(orphan, operation="UPDATE", old=replica_set, user=GC), True),
        ("/validate", rv.review(restarted, operation="UPDATE", old=legacy), True),
        ("/validate", rv.review(new_image, operation="UPDATE", old=legacy), False),
        ("/validate", rv.review(new_image, operation="UPDATE", old=legacy, dry_run=True), False),
    ]


def test_no_api_read_while_answering_a_review(tmp_path: Path) -> None:
    fake = default_cluster(watch_idle_s=None)  # a watch, once open, stays open
    srv = start_server(tmp_path, cluster=fake, sink=sink())
    try:
        synced = fake.reads
        assert synced == 4, "each cache lists once and opens one watch"
        fake.forbid_reads()
        for index, (route, body, allowed) in enumerate(_reviews()):
            answer = srv.review(route, body)
            assert answer["allowed"] is allowed, (index, answer)
        assert srv.client.get("/policies").json()["cluster_state"] == "synced"
        assert (fake.reads, fake.refused_reads) == (synced, 0)
    finally:
        srv.stop()
