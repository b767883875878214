"""require-network-policy: every pod is selected by a NetworkPolicy of its namespace.

Without one, a pod accepts traffic from anywhere in the cluster: the default
of Kubernetes networking is allow-all.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

from pydantic import Field

from policies.model import Context, NetworkPolicyInfo, Violation
from policies.registry import Example, Params, policy
from policies.selectors import InvalidSelector, Selector
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
    rules = {kind for kind, key in _RULES if as_list(spec.get(key))}
    return NetworkPolicyInfo(
        namespace=str(metadata.get("namespace") or default_namespace),
        name=str(metadata.get("name") or "<unnamed>"),
        # a missing podSelector is refused by the API server; {} selects all pods
        pod_selector=selector if isinstance(selector, dict) else {},
        policy_types=types,
        rule_types=types & rules,
    )


_RULES = (("Ingress", "ingress"), ("Egress", "egress"))


class PolicyIndex:
    """The NetworkPolicies of a namespace, found by the labels that can select a pod.

    A selector with matchLabels selects only pods that carry its first
    label, so it is filed under that label; the others (the empty selector,
    matchExpressions only, invalid ones) are candidates for every pod. A pod
    then meets a handful of candidates rather than every NetworkPolicy of
    its namespace (hundreds, where each app has its own), and each candidate
    is still matched in full. The others come first and in the namespace's
    order, so the invalid ones are reported in it; what the candidates
    cover does not depend on their order.
    """

    __slots__ = ("_by_label", "_others", "policies")

    def __init__(self, policies: tuple[NetworkPolicyInfo, ...]) -> None:
        self.policies = policies  # held, so that the id the cache files it under stays its own
        self._by_label: dict[tuple[str, str], list[NetworkPolicyInfo]] = {}
        self._others: list[NetworkPolicyInfo] = []
        for netpol in policies:
            selector = netpol.selector
            first = selector.first_label if isinstance(selector, Selector) else None
            if first is None:
                self._others.append(netpol)
            else:
                self._by_label.setdefault(first, []).append(netpol)

    def candidates(self, labels: Mapping[str, str]) -> list[NetworkPolicyInfo]:
        found = list(self._others)
        for pair in labels.items():
            found += self._by_label.get(pair, ())
        return found


_INDEXES: dict[int, PolicyIndex] = {}
_INDEXES_MAX = 1024  # namespaces with NetworkPolicies; past it, rebuilt as needed


def candidates_for(
    policies: Sequence[NetworkPolicyInfo], labels: Mapping[str, str]
) -> Sequence[NetworkPolicyInfo]:
    """The NetworkPolicies that may select a pod with these labels, in order.

    The Contexts hand out a namespace's NetworkPolicies as a tuple, replaced
    whole when one changes: its index is built once and found by identity.
    Anything else (a list could change in place) is scanned whole.
    """
    if type(policies) is not tuple or not policies:
        return policies
    index = _INDEXES.get(id(policies))
    if index is None or index.policies is not policies:
        if len(_INDEXES) >= _INDEXES_MAX:
            _INDEXES.clear()
        index = _INDEXES[id(policies)] = PolicyIndex(policies)
    return index.candidates(labels)


class RequireNetworkPolicy(Params):
    policy_types: list[PolicyType] = Field(
        default=["Ingress"],
        min_length=1,
        description="Which policyTypes must each be covered by a NetworkPolicy selecting the pod.",
    )
    require_rules: bool = Field(
        default=False,
        description="A NetworkPolicy covers a policyType only when it has at least one rule "
        "for it (Polaris). false: a policyType without rules (a default deny) covers it too.",
    )
    match_labels_only: bool = Field(
        default=False,
        description="Only NetworkPolicies whose podSelector names labels in matchLabels "
        "count (Polaris); false: any selector, the empty one (all pods) included.",
    )


_EXAMPLE_POD = """apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec:
  containers:
  - name: web
    image: nginx
"""
_EXAMPLE = Example(
    fails=_EXAMPLE_POD,
    passes=_EXAMPLE_POD
    + """---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
  ingress:
  - from: [{podSelector: {matchLabels: {app: shop-frontend}}}]
""",
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
    example=_EXAMPLE,
)
def require_network_policy(
    pod: PodView, params: RequireNetworkPolicy, ctx: Context
) -> Iterator[Violation]:
    """A NetworkPolicy in the pod's namespace must select the pod's labels
    (the template's labels for a workload) for each of the configured
    policyTypes. Label selectors are matched with full Kubernetes semantics;
    the empty podSelector selects every pod of the namespace. `require_rules`
    and `match_labels_only` narrow what counts, as Polaris does."""
    candidates = candidates_for(ctx.network_policies(pod.namespace), pod.labels)
    wanted_types = set(params.policy_types)
    invalid: list[str] = []
    covered: set[str] = set()
    for netpol in candidates:
        if covered >= wanted_types:
            return
        selector = netpol.selector
        if isinstance(selector, InvalidSelector):
            invalid.append(f"NetworkPolicy {netpol.name} was ignored: podSelector {selector}")
        elif params.match_labels_only and not as_mapping(netpol.pod_selector.get("matchLabels")):
            continue
        elif selector.matches(pod.labels):
            covered |= netpol.rule_types if params.require_rules else netpol.policy_types
    for wanted in params.policy_types:
        if wanted in covered:
            continue
        labels = ",".join(f"{k}={v}" for k, v in sorted(pod.labels.items())) or "no labels"
        note = f" ({'; '.join(invalid)})" if invalid else ""
        which = (
            f"with {wanted.lower()} rules" if params.require_rules else f"with policyType {wanted}"
        )
        by = " by matchLabels" if params.match_labels_only else ""
        yield Violation(
            f"no NetworkPolicy {which} in namespace {pod.namespace!r} "
            f"selects these pods{by} ({labels}){note}",
            field=format_path((*pod.spec_path[:-1], "metadata", "labels")),
            fix=f"add a NetworkPolicy with policyTypes [{wanted}] whose podSelector "
            + (
                "names these labels in matchLabels"
                if params.match_labels_only
                else "matches these labels"
            )
            + (f", with at least one {wanted.lower()} rule" if params.require_rules else ""),
        )
