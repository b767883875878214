"""The built-in mutations: safe defaults filled in where the user left a gap.

Both only add what is missing. They never overwrite or lower a value the user
set, so applying them to an already-mutated object changes nothing.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal, Self

from pydantic import Field, WithJsonSchema, field_validator, model_validator

from policies.quantity import QUANTITY_PATTERN, InvalidQuantity, parse_quantity
from policies.registry import Params, mutation
from policies.views import ContainerList, ContainerView, PodView, as_mapping

ResourceName = Literal["cpu", "memory", "ephemeral-storage"]
# numbers are written as quantities (below): `cpu: 1` is fine
QuantityText = Annotated[
    str, WithJsonSchema({"type": ["string", "number"], "pattern": QUANTITY_PATTERN})
]

_UNPRIVILEGED_CAPS = frozenset({"SYS_ADMIN", "CAP_SYS_ADMIN"})


def _numbers_as_quantities(values: object) -> object:
    """`cpu: 1` or `cpu: 0.5` in the config, as Kubernetes accepts them in a
    manifest: written into the patch as the strings `"1"` and `"0.5"`."""
    if not isinstance(values, dict):
        return values
    numbers = (int, float)
    return {
        name: str(value) if isinstance(value, numbers) and not isinstance(value, bool) else value
        for name, value in values.items()
    }


def _quantity_map(values: dict[ResourceName, QuantityText]) -> dict[ResourceName, QuantityText]:
    for name, value in values.items():
        try:
            parse_quantity(value)
        except InvalidQuantity as exc:
            raise ValueError(f"{name}: {exc}") from exc
    return values


class DefaultResources(Params):
    requests: dict[ResourceName, QuantityText] = Field(
        default={"cpu": "100m", "memory": "128Mi"},
        description="Requests filled in where a container sets neither request nor limit.",
    )
    limits: dict[ResourceName, QuantityText] = Field(
        default={"memory": "512Mi"},
        description="Limits filled in where missing, never below the container's request "
        "(a request above it becomes the limit). A memory limit keeps a leak to its own "
        "container, restarted where everyone sees it, instead of the node's OOM killer "
        "picking other pods; 512Mi is four times the default request. No CPU limit: "
        "one only throttles.",
    )

    _numbers_requests = field_validator("requests", mode="before")(_numbers_as_quantities)
    _numbers_limits = field_validator("limits", mode="before")(_numbers_as_quantities)
    _check_requests = field_validator("requests")(_quantity_map)
    _check_limits = field_validator("limits")(_quantity_map)

    @model_validator(mode="after")
    def _requests_within_limits(self) -> Self:
        for name, limit in self.limits.items():
            request = self.requests.get(name)
            if request is not None and parse_quantity(request) > parse_quantity(limit):
                raise ValueError(f"requests.{name} ({request}) exceeds limits.{name} ({limit})")
        return self


def _quantity(value: object) -> Decimal | None:
    try:
        return parse_quantity(value)
    except InvalidQuantity:
        return None


def _fill_resources(
    container: ContainerView,
    params: DefaultResources,
    pod_names: frozenset[str],
    copy_limits: bool = True,
) -> None:
    resources = container.raw.get("resources")
    if resources is None:
        resources = {}
    elif not isinstance(resources, dict):
        return  # malformed; require-resources reports it
    requests = resources.get("requests")
    limits = resources.get("limits")
    if requests is not None and not isinstance(requests, dict):
        return
    if limits is not None and not isinstance(limits, dict):
        return
    new_requests: dict[str, Any] = dict(requests or {})
    new_limits: dict[str, Any] = dict(limits or {})
    for name, default in params.requests.items():
        if name in new_requests or name in pod_names:
            continue
        if name in new_limits:
            if not copy_limits:
                # A workload's template: the API server makes the request the
                # limit in each Pod it creates. Written into the template, the
                # copy would outlive the limit and refuse a later lower one.
                continue
            # As the API server does: a request left out while its limit is set is the limit.
            new_requests[name] = new_limits[name]
            continue
        new_requests[name] = default
    for name, default in params.limits.items():
        if name in new_limits or name in pod_names:
            continue
        request = _quantity(new_requests.get(name))
        # Never produce a limit below the request: that object would be refused.
        too_low = request is not None and request > parse_quantity(default)
        new_limits[name] = new_requests[name] if too_low else default
    if new_requests:
        resources["requests"] = new_requests
    if new_limits:
        resources["limits"] = new_limits
    if resources:
        container.raw["resources"] = resources


@mutation(
    "default-resources",
    title="Fill missing resource requests and limits",
    params=DefaultResources,
)
def default_resources(pod: PodView, params: DefaultResources) -> None:
    """Fills, in containers and init containers, the requests and limits the
    config gives where the container has none. A value the user set is never
    changed; a missing request takes the value of its limit (as Kubernetes
    does); a filled limit is never below the container's request. A
    resource the pod sets at pod level (`spec.resources`, Kubernetes 1.32+)
    is left to it: a container default could exceed the pod's own value,
    which the API server refuses."""
    pod_names: frozenset[str] = frozenset()
    if "resources" in pod.spec:
        resources = pod.resources
        pod_names = frozenset(
            str(name)
            for section in ("requests", "limits")
            for name in as_mapping(resources.get(section))
        )
    for container in pod.containers(ContainerList.CONTAINERS, ContainerList.INIT):
        _fill_resources(container, params, pod_names, copy_limits=pod.kind == "Pod")


class DefaultSecurityContext(Params):
    run_as_non_root: bool = Field(
        default=True,
        description="Set runAsNonRoot: true where it is unset and the container's "
        "effective runAsUser is a non-root UID (never on privileged containers).",
    )
    assume_images_run_as_non_root: bool = Field(
        default=False,
        description="Also set runAsNonRoot: true where runAsUser is unset, trusting "
        "every image to declare a non-root USER. The kubelet then refuses to start a "
        "container whose image runs as root (CreateContainerConfigError), after the "
        "object was admitted; left false, require-non-root refuses it at apply instead.",
    )
    disallow_privilege_escalation: bool = Field(
        default=True,
        description="Set allowPrivilegeEscalation: false where unset (not on privileged "
        "or CAP_SYS_ADMIN containers, where the API server forbids it).",
    )
    seccomp_runtime_default: bool = Field(
        default=True,
        description="Set the pod's seccompProfile to RuntimeDefault where no profile is set.",
    )


def _is_non_root_uid(user: object) -> bool:
    return isinstance(user, int) and not isinstance(user, bool) and user >= 1


def _may_escalate(container: ContainerView) -> bool:
    context = container.security_context
    added = context.get("capabilities", {}) if isinstance(context, dict) else {}
    caps = added.get("add", []) if isinstance(added, dict) else []
    return context.get("privileged") is True or bool(
        _UNPRIVILEGED_CAPS & {str(c) for c in caps or []}
    )


@mutation(
    "default-security-context",
    title="Fill missing securityContext hardening",
    params=DefaultSecurityContext,
)
def default_security_context(pod: PodView, params: DefaultSecurityContext) -> None:
    """Fills only what is missing: `runAsNonRoot: true` where the container's
    effective `runAsUser` is a non-root UID (the image's USER decides
    otherwise, and podgate cannot see it: injected blindly, the assertion
    would stop a root image from starting; never on a privileged container),
    `allowPrivilegeEscalation: false` (never on privileged containers) and the
    pod's `seccompProfile: RuntimeDefault` (a container's own profile still wins).
    A value the user set is never flipped. Windows pods are left alone."""
    if pod.os_name == "windows":
        return
    containers = list(pod.containers(ContainerList.CONTAINERS, ContainerList.INIT))
    for container in containers:
        if not isinstance(container.raw.get("securityContext", {}), dict):
            continue
        changes: dict[str, Any] = {}
        if params.run_as_non_root:
            non_root = pod.effective(container, "runAsNonRoot")
            user = pod.effective(container, "runAsUser")
            privileged = container.security_context.get("privileged") is True
            satisfiable = _is_non_root_uid(user) or (
                user is None and params.assume_images_run_as_non_root
            )
            if non_root is None and satisfiable and not privileged:
                changes["runAsNonRoot"] = True
        if (
            params.disallow_privilege_escalation
            and "allowPrivilegeEscalation" not in container.security_context
            and not _may_escalate(container)
        ):
            changes["allowPrivilegeEscalation"] = False
        if changes:
            container.raw.setdefault("securityContext", {}).update(changes)
    if params.seccomp_runtime_default and containers:
        pod_context = pod.spec.get("securityContext")
        if pod_context is None:
            pod_context = pod.spec["securityContext"] = {}
        if isinstance(pod_context, dict) and "seccompProfile" not in pod_context:
            pod_context["seccompProfile"] = {"type": "RuntimeDefault"}
