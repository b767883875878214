"""require-resources: every container declares the resources the scheduler needs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal, get_args

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
)
def require_resources(pod: PodView, params: RequireResources) -> Iterator[Violation]:
    """Containers and init containers (native sidecars included) must set the
    configured requests and limits, so the scheduler can place them and a
    noisy neighbour cannot starve the node. A request left out while its limit
    is set counts as set: Kubernetes defaults the request to the limit.
    Ephemeral containers cannot carry resources and are skipped."""
    required = [_SECTION_AND_NAME[field] for field in params.require]
    for container in pod.containers(ContainerList.CONTAINERS, ContainerList.INIT):
        resources = container.resources
        declared = {
            "requests": as_mapping(resources.get("requests")),
            "limits": as_mapping(resources.get("limits")),
        }
        for section, values in declared.items():
            for name, value in values.items():
                try:
                    parse_quantity(value)
                except InvalidQuantity as exc:
                    yield Violation(
                        f"{container.label} has an invalid {section}.{name}: {exc}",
                        container=container.name,
                        field=container.field("resources", section, str(name)),
                        fix=f"write it as a quantity such as {_EXAMPLE.get(str(name), '1')}",
                    )
        for section, name in required:
            if name in declared[section]:
                continue
            if section == "requests" and name in declared["limits"]:
                continue  # defaulted to the limit by the API server
            what = "request" if section == "requests" else "limit"
            yield Violation(
                f"{container.label} has no {name} {what}",
                container=container.name,
                field=container.field("resources", section, name),
                fix=f"set resources.{section}.{name} (e.g. {_EXAMPLE[name]})",
            )
