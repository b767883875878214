"""require-probes: long-running containers tell the kubelet when they are alive and ready."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal, get_args

from pydantic import Field

from policies.model import Skip, Violation
from policies.registry import Example, Params, policy
from policies.views import ContainerList, PodView

Probe = Literal["liveness", "readiness", "startup"]

_FIELD = {probe: f"{probe}Probe" for probe in get_args(Probe)}
_ADVICE = {
    "liveness": "so the kubelet restarts it when it hangs",
    "readiness": "so traffic only reaches it when it can serve",
    "startup": "so slow starts are not killed by the liveness probe",
}


class RequireProbes(Params):
    require: list[Probe] = Field(
        default=["liveness", "readiness"],
        min_length=1,
        description="Which probes a long-running container must define.",
    )
    mode: Literal["all", "any"] = Field(
        default="all",
        description="`all`: every probe listed in `require`; `any`: at least one of them.",
    )
    skip_jobs: bool = Field(
        default=True,
        description="Skip what runs to completion: pods of Jobs and CronJobs, and "
        "bare Pods with restartPolicy Never or OnFailure (a test or a one-off task).",
    )
    include_sidecars: bool = Field(
        default=True,
        description="Check native sidecars (init containers with restartPolicy: Always) "
        "too: they run beside the app, and a hung one is restarted only by its probe. "
        "false: regular containers only.",
    )


_EXAMPLE_POD = """apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: web
        image: nginx
{probes}"""
_EXAMPLE = Example(
    fails=_EXAMPLE_POD.format(probes=""),
    passes=_EXAMPLE_POD.format(
        probes="        livenessProbe: {httpGet: {path: /healthz, port: 8080}}\n"
        "        readinessProbe: {httpGet: {path: /ready, port: 8080}}\n"
    ),
)


@policy(
    "require-probes",
    title="Long-running containers define liveness and readiness probes",
    category="reliability",
    severity="medium",
    params=RequireProbes,
    concerns_ephemeral=False,
    example=_EXAMPLE,
)
def require_probes(pod: PodView, params: RequireProbes) -> Iterator[Violation]:
    """Regular containers and native sidecars (init containers with
    `restartPolicy: Always`, unless `include_sidecars` is false) must define
    the configured probes. Init containers
    run to completion and ephemeral containers cannot have probes, so neither
    is checked; nor, unless `skip_jobs` is false, what runs to completion: pods
    of Jobs and CronJobs, and bare Pods that are not restarted (probes decide
    restarts and Service traffic, neither of which such a Pod has)."""
    if params.skip_jobs and pod.runs_to_completion:
        raise Skip("pods of Jobs and CronJobs run to completion")
    restart = pod.spec.get("restartPolicy")
    if params.skip_jobs and pod.kind == "Pod" and restart in ("Never", "OnFailure"):
        raise Skip(f"a Pod with restartPolicy {restart} runs to completion")
    for container in pod.containers(ContainerList.CONTAINERS, ContainerList.INIT):
        if not container.is_long_running or (container.is_sidecar and not params.include_sidecars):
            continue
        raw = container.raw
        missing = [p for p in params.require if not raw.get(_FIELD[p])]
        if params.mode == "any" and len(missing) < len(params.require):
            continue
        if params.mode == "any":
            names = " or ".join(f"{p}Probe" for p in params.require)
            yield Violation(
                f"{container.label} has none of {names}",
                container=container.name,
                field=container.field(f"{params.require[0]}Probe"),
                fix=f"add a {params.require[0]}Probe {_ADVICE[params.require[0]]}",
            )
            continue
        for probe in missing:
            yield Violation(
                f"{container.label} has no {probe}Probe",
                container=container.name,
                field=container.field(f"{probe}Probe"),
                fix=f"add one (httpGet, tcpSocket, grpc or exec) {_ADVICE[probe]}",
            )
