"""`podgate cleanup`: what the chart's pre-delete hook runs on `helm uninstall`.

Helm deletes what it installed; podgate itself creates a few objects at run
time that Helm does not know: the managed certificate Secret, the audit's
Lease and its PolicyReports. Left behind, they outlive the release (stale
reports in every namespace). The order matters:

1. the webhook configurations go first, so no request waits on (or, with
   `failurePolicy: Fail`, is refused by) a webhook whose pods are going away;
2. the Deployments are scaled to zero and their pods awaited, so nothing
   re-creates what comes next (a certificate sync, a Lease renewal);
3. then the Secret, the Lease and the PolicyReports.

The cluster sits behind `Leftovers` (webhook/cluster/leftovers.py), so tests
use a fake.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from webhook.cluster.webhook_configs import WebhookConfigs
from webhook.server.certs import remove_webhooks


class Leftovers(Protocol):
    def scale_to_zero(self, namespace: str, deployment: str) -> bool:
        """False when the Deployment does not exist."""
        ...

    def pods_left(self, namespace: str, deployment: str) -> int: ...

    def delete_secret(self, namespace: str, name: str) -> bool: ...

    def delete_lease(self, namespace: str, name: str) -> bool: ...

    def delete_policy_reports(self, name: str) -> list[str] | None:
        """The namespaces whose report `name` was deleted; None without the kind."""
        ...


@dataclass(frozen=True)
class Plan:
    validating: str | None
    mutating: str | None
    namespace: str
    stop: Sequence[str] = ()
    secret: str | None = None
    lease: str | None = None
    policy_reports: str | None = None
    timeout_s: float = 60.0


@dataclass
class Cleanup:
    webhooks: WebhookConfigs
    leftovers: Leftovers
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    done: list[str] = field(default_factory=list)

    def run(self, plan: Plan) -> list[str]:
        """Each step, as a line; raises on an API error or a pod that stays."""
        self.done += remove_webhooks(self.webhooks, plan.validating, plan.mutating)
        for deployment in plan.stop:
            if self.leftovers.scale_to_zero(plan.namespace, deployment):
                self._wait_for_no_pods(plan, deployment)
                self.done.append(f"deployment/{deployment} scaled to 0, its pods gone")
            else:
                self.done.append(f"deployment/{deployment} not found")
        if plan.secret:
            gone = self.leftovers.delete_secret(plan.namespace, plan.secret)
            self.done.append(f"secret/{plan.secret} {'deleted' if gone else 'not found'}")
        if plan.lease:
            gone = self.leftovers.delete_lease(plan.namespace, plan.lease)
            self.done.append(f"lease/{plan.lease} {'deleted' if gone else 'not found'}")
        if plan.policy_reports:
            namespaces = self.leftovers.delete_policy_reports(plan.policy_reports)
            if namespaces is None:
                self.done.append("policyreports: the kind is not installed")
            else:
                self.done.append(
                    f"policyreport/{plan.policy_reports} deleted in {len(namespaces)} namespaces"
                )
        return self.done

    def _wait_for_no_pods(self, plan: Plan, deployment: str) -> None:
        deadline = self.clock() + plan.timeout_s
        while (left := self.leftovers.pods_left(plan.namespace, deployment)) > 0:
            if self.clock() >= deadline:
                raise TimeoutError(
                    f"{left} pods of deployment/{deployment} still running after "
                    f"{plan.timeout_s:.0f}s"
                )
            self.sleep(1.0)
