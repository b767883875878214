"""require-resources: every container declares the resources the scheduler needs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Literal, get_args

from pydantic import Field

from policies.model import Violation
from policies.quantity import InvalidQuantity, parse_quantity
from policies.registry import Example, Params, policy
from policies.views import ContainerList, PodView, as_mapping

ResourceField = Literal["requests.cpu", "requests.memory", "limits.cpu", "limits.memory"]

_SAMPLE = {"cpu": "100m", "memory": "256Mi"}
_SECTION_AND_NAME = {f: tuple(f.split(".")) for f in get_args(ResourceField)}


ContainerField = Literal["containers", "initContainers", "ephemeralContainers"]
_LISTS = {
    "containers": ContainerList.CONTAINERS,
    "initContainers": ContainerList.INIT,
    "ephemeralContainers": ContainerList.EPHEMERAL,
}


class RequireResources(Params):
    require: list[ResourceField] = Field(
        default=["requests.cpu", "requests.memory", "limits.memory"],
        description="Which resource fields every checked container must set.",
    )
    containers: list[ContainerField] = Field(
        default=["containers", "initContainers"],
        min_length=1,
        description="Which container lists are checked (initContainers includes native "
        "sidecars). ephemeralContainers cannot carry resources: listing it refuses every "
        "Pod written with one.",
    )
    limit_counts_as_request: bool = Field(
        default=True,
        description="A request left out while its limit is set counts as set, as the API "
        "server copies the limit into it. false: the request must be written out.",
    )


_EXAMPLE_POD = """apiVersion: v1
kind: Pod
metadata: {{name: web}}
spec:
  containers:
  - name: web
    image: nginx@sha256:{digest}
{resources}"""
_DIGEST = "0" * 64
_EXAMPLE = Example(
    fails=_EXAMPLE_POD.format(digest=_DIGEST, resources=""),
    passes=_EXAMPLE_POD.format(
        digest=_DIGEST,
        resources="    resources:\n      requests: {cpu: 100m, memory: 256Mi}\n"
        "      limits: {memory: 256Mi}\n",
    ),
)


@policy(
    "require-resources",
    title="Containers declare resource requests and limits",
    category="resources",
    severity="medium",
    params=RequireResources,
    example=_EXAMPLE,
    # ephemeral containers cannot carry resources: on `kubectl debug` it would
    # only repeat what the other containers lacked
    concerns_ephemeral=False,
)
def require_resources(pod: PodView, params: RequireResources) -> Iterator[Violation]:
    """Containers and init containers (native sidecars included) must set the
    configured requests and limits, so the scheduler can place them and a
    noisy neighbour cannot starve the node. A request left out while its limit
    is set counts as set (unless `limit_counts_as_request` is false):
    Kubernetes defaults the request to the limit. A field the pod sets for
    all its containers (pod-level `spec.resources`, Kubernetes 1.32+) counts
    as set for each of them: the pod's value takes precedence. Ephemeral
    containers cannot carry resources and are skipped unless listed."""
    required = [_SECTION_AND_NAME[field] for field in params.require]
    from_limit = params.limit_counts_as_request
    pod_declared: dict[str, dict[str, Any]] | None = None
    if "resources" in pod.spec:  # rare, so its handling stays off the common path
        pod_declared = _declared(pod.resources)
        yield from _invalid_quantities(pod_declared, "the pod", None, pod.spec_field)
    for container in pod.containers(*(_LISTS[name] for name in params.containers)):
        declared = _declared(container.resources)
        if declared["requests"] or declared["limits"]:
            yield from _invalid_quantities(
                declared, container.label, container.name, container.field
            )
        for section, name in required:
            # A request left out is the limit: the API server copies it over.
            implied = from_limit and section == "requests"
            if name in declared[section] or (implied and name in declared["limits"]):
                continue
            if pod_declared and (
                name in pod_declared[section] or (implied and name in pod_declared["limits"])
            ):
                continue
            what = "request" if section == "requests" else "limit"
            yield Violation(
                f"{container.label} has no {name} {what}",
                container=container.name,
                field=container.field("resources", section, name),
                fix=f"set resources.{section}.{name} (e.g. {_SAMPLE[name]})",
            )


def _declared(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        "requests": as_mapping(resources.get("requests")),
        "limits": as_mapping(resources.get("limits")),
    }


def _invalid_quantities(
    declared: dict[str, dict[str, Any]],
    label: str,
    container: str | None,
    field: Callable[..., str],
) -> Iterator[Violation]:
    for section, values in declared.items():
        for name, value in values.items():
            try:
                parse_quantity(value)
            except InvalidQuantity as exc:
                yield Violation(
                    f"{label} has an invalid {section}.{name}: {exc}",
                    container=container,
                    field=field("resources", section, str(name)),
                    fix=f"write it as a quantity such as {_SAMPLE.get(str(name), '1')}",
                )
