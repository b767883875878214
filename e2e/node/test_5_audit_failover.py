"""Two audit replicas: one leads (the Lease), another takes over when it goes."""

from __future__ import annotations

import time
from typing import Any

from e2e.conftest import eventually, kubectl
from e2e.node.release import NAMESPACE, NodeRelease, lease_holder, names

# The leader hands the Lease back on SIGTERM and a standby asks for it every
# 5 s (a third of the 15 s Lease): the stated bound, with room for the pod's
# own shutdown. A leader that dies without handing it back is replaced once
# the Lease runs out: within 15 + 5 s.
FAILOVER_BOUND_S = 15.0


def test_a_standby_takes_the_lease_when_the_leader_pod_is_deleted(
    release: NodeRelease, figures: list[dict[str, Any]]
) -> None:
    release.upgrade({"audit": {"replicas": 2}})
    eventually(lambda: len(release.ready_pods("audit")) == 2, timeout=120)
    pods = names(release.ready_pods("audit"))
    leader = str(eventually(lambda: (holder := lease_holder()) in pods and holder, timeout=30))

    start = time.monotonic()
    kubectl("delete", "pod", leader, "-n", NAMESPACE, "--wait=false")
    # The standby, or the replica that replaces the deleted pod, whichever asks first.
    successor = str(
        eventually(
            lambda: (holder := lease_holder()) not in (None, "", leader) and holder,
            timeout=FAILOVER_BOUND_S + 30,
            step=0.2,
        )
    )
    took = round(time.monotonic() - start, 1)
    figures.append(
        {
            "scenario": "audit leader pod deleted",
            "takeover_seconds": took,
            "bound_seconds": FAILOVER_BOUND_S,
            "new_leader_was_standby": successor in pods,
        }
    )
    assert took <= FAILOVER_BOUND_S
    # The new leader audits (its leader gauge), and two replicas run again.
    eventually(lambda: "podgate_audit_leader 1.0" in release.metrics(successor), timeout=30)
    eventually(lambda: len(release.ready_pods("audit")) == 2, timeout=120)
    assert lease_holder() == successor
