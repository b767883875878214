"""require-resources: every container declares the resources the scheduler needs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Literal, get_args

from pydantic import Field

from policies.model import Violation
from policies.quantity import InvalidQuantity, parse_quantity
from policies.registry import Params, policy
from policies.views import ContainerList, PodView, as_mapping

ResourceField = Literal["requests.cpu", "requests.memory", "limits.cpu", "limits.memory"]

_EXAMPLE = {"cpu": "100m", "memory": "256Mi"}
_SECTION_AND_NAME = {f: tuple(f.split(".")) for f in get_args(ResourceField)}


class RequireResources(Params):
    require: list[ResourceField] = Field(
        default=["requests.cpu", "requests.memory", "limits.memory"],
        description="Which resource fields every container and init container must set.",
    )


@policy(
    "require-resources",
    title="Containers declare resource requests and limits",
    category="resources",
    severity="medium",
    params=RequireResources,
    # ephemeral containers cannot carry resources: on `kubectl debug` it would
    # only repeat what the other containers lacked
    concerns_ephemeral=False,
)
def require_resources(pod: PodView, params: RequireResources) -> Iterator[Violation]:
    """Containers and init containers (native sidecars included) must set the
    configured requests and limits, so the scheduler can place them and a
    noisy neighbour cannot starve the node. A request left out while its limit
    is set counts as set: Kubernetes defaults the request to the limit. A
    field the pod sets for all its containers (pod-level `spec.resources`,
    Kubernetes 1.32+) counts as set for each of them: the pod's value takes
    precedence. Ephemeral containers cannot carry resources and are skipped."""
    required = [_SECTION_AND_NAME[field] for field in params.require]
    pod_declared: dict[str, dict[str, Any]] | None = None
    if "resources" in pod.spec:  # rare, so its handling stays off the common path
        pod_declared = _declared(pod.resources)
        yield from _invalid_quantities(pod_declared, "the pod", None, pod.spec_field)
    for container in pod.containers(ContainerList.CONTAINERS, ContainerList.INIT):
        declared = _declared(container.resources)
        if declared["requests"] or declared["limits"]:
            yield from _invalid_quantities(
                declared, container.label, container.name, container.field
            )
        for section, name in required:
            # A request left out is the limit: the API server copies it over.
            if name in declared[section] or (section == "requests" and name in declared["limits"]):
                continue
            if pod_declared and (
                name in pod_declared[section]
                or (section == "requests" and name in pod_declared["limits"])
            ):
                continue
            what = "request" if section == "requests" else "limit"
            yield Violation(
                f"{container.label} has no {name} {what}",
                container=container.name,
                field=container.field("resources", section, name),
                fix=f"set resources.{section}.{name} (e.g. {_EXAMPLE[name]})",
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
                    fix=f"write it as a quantity such as {_EXAMPLE.get(str(name), '1')}",
                )
