"""require-network-policy: every pod is selected by a NetworkPolicy of its namespace.

Without one, a pod accepts traffic from anywhere in the cluster: the default
of Kubernetes networking is allow-all.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal

from pydantic import Field

from policies.model import Context, NetworkPolicyInfo, Violation
from policies.registry import Params, policy
from policies.selectors import InvalidSelector
from policies.views import PodView, as_list, as_mapping, format_path

PolicyType = Literal["Ingress", "Egress"]


def network_policy_info(obj: Mapping[str, Any], default_namespace: str) -> NetworkPolicyInfo:
    """The selector and effective policyTypes of a NetworkPolicy object.

    When policyTypes is omitted, Kubernetes treats the policy as Ingress, plus
    Egress if it has egress rules.
    """
    metadata = as_mapping(obj.get("metadata"))
    spec = as_mapping(obj.get("spec"))
    declared = spec.get("policyTypes")
    if isinstance(declared, list) and declared:
        types = frozenset(str(t) for t in declared)
    else:
        types = frozenset({"Ingress", "Egress"} if as_list(spec.get("egress")) else {"Ingress"})
    selector = spec.get("podSelector")
    return NetworkPolicyInfo(
        namespace=str(metadata.get("namespace") or default_namespace),
        name=str(metadata.get("name") or "<unnamed>"),
        # a missing podSelector is refused by the API server; {} selects all pods
        pod_selector=selector if isinstance(selector, dict) else {},
        policy_types=types,
    )


class RequireNetworkPolicy(Params):
    policy_types: list[PolicyType] = Field(
        default=["Ingress"],
        min_length=1,
        description="Which policyTypes must each be covered by a NetworkPolicy selecting the pod.",
    )


@policy(
    "require-network-policy",
    title="Pods are selected by a NetworkPolicy",
    category="network",
    severity="medium",
    params=RequireNetworkPolicy,
    default_action="warn",
    concerns_ephemeral=False,
    requires_cluster=True,
)
def require_network_policy(
    pod: PodView, params: RequireNetworkPolicy, ctx: Context
) -> Iterator[Violation]:
    """A NetworkPolicy in the pod's namespace must select the pod's labels
    (the template's labels for a workload) for each of the configured
    policyTypes. Label selectors are matched with full Kubernetes semantics;
    the empty podSelector selects every pod of the namespace."""
    candidates = ctx.network_policies(pod.namespace)
    wanted_types = set(params.policy_types)
    invalid: list[str] = []
    covered: set[str] = set()
    for netpol in candidates:
        if covered >= wanted_types:
            return
        selector = netpol.selector
        if isinstance(selector, InvalidSelector):
            invalid.append(f"NetworkPolicy {netpol.name} was ignored: podSelector {selector}")
        elif selector.matches(pod.labels):
            covered |= netpol.policy_types
    for wanted in params.policy_types:
        if wanted in covered:
            continue
        labels = ",".join(f"{k}={v}" for k, v in sorted(pod.labels.items())) or "no labels"
        note = f" ({'; '.join(invalid)})" if invalid else ""
        yield Violation(
            f"no NetworkPolicy with policyType {wanted} in namespace {pod.namespace!r} "
            f"selects these pods ({labels}){note}",
            field=format_path((*pod.spec_path[:-1], "metadata", "labels")),
            fix=f"add a NetworkPolicy with policyTypes [{wanted}] whose podSelector "
            "matches these labels",
        )
