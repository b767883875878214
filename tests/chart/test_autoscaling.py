"""The webhook's HorizontalPodAutoscaler: off by default, consistent with the
PodDisruptionBudget and `replicas`, and slow to scale down."""

from __future__ import annotations

import pytest

from tests.chart.exported import exported_names
from tests.chart.helm import NAME, Obj, render, scenario, template

ON = "webhook.autoscaling.enabled=true"


def _hpa(*sets: str) -> Obj:
    return render(sets=[ON, *sets]).get("HorizontalPodAutoscaler", NAME)


def test_off_by_default() -> None:
    rendered = render()
    assert not rendered.of_kind("HorizontalPodAutoscaler")
    assert rendered.by_component("Deployment", "webhook")["spec"]["replicas"] == 2


def test_scales_the_webhook_deployment_on_cpu() -> None:
    rendered = render(sets=[ON])
    hpa = rendered.get("HorizontalPodAutoscaler", NAME)
    assert hpa["apiVersion"] == "autoscaling/v2"
    deployment = rendered.by_component("Deployment", "webhook")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"]) == ("apps/v1", "Deployment")
    assert target["name"] == deployment["metadata"]["name"]
    assert hpa["metadata"]["labels"]["app.kubernetes.io/component"] == "webhook"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 5)
    assert hpa["spec"]["metrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 70},
            },
        }
    ]
    # a first install (and `helm template`, which cannot look up) starts at `replicas`
    assert deployment["spec"]["replicas"] == 2
    # the PDB stays, checked against the autoscaler's floor
    assert rendered.get("PodDisruptionBudget")["spec"]["minAvailable"] == 1


def test_scale_down_is_slow_and_one_pod_at_a_time() -> None:
    behavior = _hpa()["spec"]["behavior"]
    down = behavior["scaleDown"]
    # the highest recommendation of the last 10 minutes wins: a lull between
    # two bursts of writes does not shrink the webhook
    assert down["stabilizationWindowSeconds"] >= 300
    assert down["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 120}]
    assert down["selectPolicy"] == "Min"
    up = behavior["scaleUp"]
    assert up["stabilizationWindowSeconds"] == 0
    assert up["selectPolicy"] == "Max"


def test_requests_in_flight_target_names_the_gauge_podgate_exports() -> None:
    hpa = _hpa("webhook.autoscaling.requestsInFlightAverageValue=4")
    pods = [m for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    assert len(pods) == 1
    name = pods[0]["pods"]["metric"]["name"]
    assert name == "podgate_admission_requests_in_flight"
    assert name in exported_names()
    assert pods[0]["pods"]["target"] == {"type": "AverageValue", "averageValue": "4"}
    only = _hpa(
        "webhook.autoscaling.requestsInFlightAverageValue=500m",
        "webhook.autoscaling.targetCPUUtilizationPercentage=0",
    )
    assert [m["type"] for m in only["spec"]["metrics"]] == ["Pods"]


def test_behavior_is_configurable() -> None:
    hpa = _hpa("webhook.autoscaling.behavior.scaleDown.stabilizationWindowSeconds=900")
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 900


def test_everything_optional_scenario_autoscales_above_its_pdb() -> None:
    rendered = render([scenario("everything-optional-enabled")])
    hpa = rendered.get("HorizontalPodAutoscaler", NAME)
    pdb = rendered.get("PodDisruptionBudget")
    assert hpa["spec"]["minReplicas"] > pdb["spec"]["minAvailable"]
    deployment = rendered.by_component("Deployment", "webhook")
    assert hpa["spec"]["minReplicas"] <= deployment["spec"]["replicas"]
    assert deployment["spec"]["replicas"] <= hpa["spec"]["maxReplicas"]


REFUSED = [
    # (--set items besides enabling it, what the error must say)
    (["webhook.autoscaling.minReplicas=1"], "/webhook/autoscaling/minReplicas"),
    (["webhook.autoscaling.maxReplicas=1"], "/webhook/autoscaling/maxReplicas"),
    (
        [
            "webhook.autoscaling.minReplicas=4",
            "webhook.replicas=4",
            "webhook.autoscaling.maxReplicas=3",
        ],
        "maxReplicas (3) must be at least webhook.autoscaling.minReplicas (4)",
    ),
    (["webhook.autoscaling.minReplicas=3"], "webhook.replicas (2) must lie within"),
    (["webhook.replicas=6"], "webhook.replicas (6) must lie within"),
    (
        ["webhook.podDisruptionBudget.minAvailable=2", "webhook.replicas=3"],
        "must be below webhook.autoscaling.minReplicas (2)",
    ),
    (
        ["webhook.podDisruptionBudget.minAvailable=60%", "webhook.replicas=3"],
        "no node could ever be drained",
    ),
    (["webhook.autoscaling.targetCPUUtilizationPercentage=0"], "needs a target"),
    (["webhook.resources.requests=null"], "requests.cpu, which is not set"),
    (["webhook.autoscaling.requestsInFlightAverageValue=four"], "requestsInFlightAverageValue"),
    (["webhook.autoscaling.behavior.scaleDown.policies[0].type=Nodes"], "type"),
    (
        ["webhook.deploy=false", "webhook.url=https://127.0.0.1:9443", "webhook.caBundle=Y2E="],
        "needs webhook.deploy=true",
    ),
]


@pytest.mark.parametrize(("sets", "message"), REFUSED, ids=[" ".join(s) for s, _ in REFUSED])
def test_contradictions_are_refused(sets: list[str], message: str) -> None:
    result = template(sets=[ON, *sets])
    assert result.returncode != 0, f"accepted {sets}"
    assert message in result.stderr, result.stderr


def test_pdb_is_checked_against_the_floor_not_the_start() -> None:
    # 3 replicas to start would allow minAvailable 2, but the autoscaler may go to 2
    sets = ["webhook.replicas=3", "webhook.podDisruptionBudget.minAvailable=2"]
    assert template(sets=sets).returncode == 0
    assert template(sets=[ON, *sets]).returncode != 0
    ok = render(sets=[ON, *sets, "webhook.autoscaling.minReplicas=3"])
    assert ok.get("HorizontalPodAutoscaler", NAME)["spec"]["minReplicas"] == 3
