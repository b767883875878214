"""`podgate cleanup`, the pre-delete hook: the order of its steps and its bounds.
On a real cluster: e2e/node/test_6_uninstall.py."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from tests.webhook.fakes import FakeWebhooks
from webhook.cli.cleanup import Cleanup, Plan


@dataclass
class FakeLeftovers:
    webhooks: FakeWebhooks
    deployments: dict[str, int] = field(default_factory=dict)  # name -> pods running
    objects: set[str] = field(default_factory=set)  # "secret/x", "lease/y", "report/ns"
    reports_installed: bool = True
    steps: list[str] = field(default_factory=list)
    stubborn: bool = False  # pods that never go

    def scale_to_zero(self, namespace: str, deployment: str) -> bool:
        # what must already be gone when the pods start to go
        assert not self.webhooks.configs, "pods stopped while a webhook still calls them"
        self.steps.append(f"scale {deployment}")
        return deployment in self.deployments

    def pods_left(self, namespace: str, deployment: str) -> int:
        left = self.deployments[deployment]
        if not self.stubborn:
            self.deployments[deployment] = max(0, left - 1)
        return left

    def _delete(self, key: str) -> bool:
        assert not any(self.deployments.values()), f"{key} deleted while pods still run"
        self.steps.append(f"delete {key}")
        if key in self.objects:
            self.objects.remove(key)
            return True
        return False

    def delete_secret(self, namespace: str, name: str) -> bool:
        return self._delete(f"secret/{name}")

    def delete_lease(self, namespace: str, name: str) -> bool:
        return self._delete(f"lease/{name}")

    def delete_policy_reports(self, name: str) -> list[str] | None:
        if not self.reports_installed:
            return None
        reports = sorted(o for o in self.objects if o.startswith("report/"))
        for report in reports:
            self._delete(report)
        return [r.removeprefix("report/") for r in reports]


PLAN = Plan(
    validating="podgate", mutating="podgate", namespace="podgate-system",
    stop=("podgate", "podgate-audit"), secret="podgate-tls", lease="podgate-audit",
    policy_reports="podgate-audit", timeout_s=5,
)  # fmt: skip


def _cleanup(leftovers: FakeLeftovers) -> Cleanup:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    return Cleanup(leftovers.webhooks, leftovers, clock=lambda: now[0], sleep=sleep)


def test_webhooks_go_first_then_the_pods_then_what_they_made() -> None:
    webhooks = FakeWebhooks({("validating", "podgate"): 1, ("mutating", "podgate"): 1})
    leftovers = FakeLeftovers(
        webhooks,
        deployments={"podgate": 2, "podgate-audit": 1},
        objects={"secret/podgate-tls", "lease/podgate-audit", "report/shop", "report/web"},
    )
    done = _cleanup(leftovers).run(PLAN)
    assert webhooks.deleted == [("validating", "podgate"), ("mutating", "podgate")]
    assert leftovers.objects == set()
    assert leftovers.steps[:2] == ["scale podgate", "scale podgate-audit"]
    assert done == [
        "validatingwebhookconfiguration/podgate deleted",
        "mutatingwebhookconfiguration/podgate deleted",
        "deployment/podgate scaled to 0, its pods gone",
        "deployment/podgate-audit scaled to 0, its pods gone",
        "secret/podgate-tls deleted",
        "lease/podgate-audit deleted",
        "policyreport/podgate-audit deleted in 2 namespaces",
    ]


def test_run_again_everything_is_already_gone() -> None:
    leftovers = FakeLeftovers(FakeWebhooks(), reports_installed=False)
    done = _cleanup(leftovers).run(PLAN)
    assert done == [
        "validatingwebhookconfiguration/podgate not found",
        "mutatingwebhookconfiguration/podgate not found",
        "deployment/podgate not found",
        "deployment/podgate-audit not found",
        "secret/podgate-tls not found",
        "lease/podgate-audit not found",
        "policyreports: the kind is not installed",
    ]


def test_pods_that_never_go_fail_the_hook_before_anything_else_is_deleted() -> None:
    leftovers = FakeLeftovers(
        FakeWebhooks(), deployments={"podgate": 1}, objects={"secret/podgate-tls"}, stubborn=True
    )
    cleanup = _cleanup(leftovers)
    with pytest.raises(TimeoutError, match="1 pods of deployment/podgate still running after 5s"):
        cleanup.run(Plan(validating="podgate", mutating=None, namespace="ns",
                         stop=("podgate",), secret="podgate-tls", timeout_s=5))  # fmt: skip
    assert leftovers.objects == {"secret/podgate-tls"}
