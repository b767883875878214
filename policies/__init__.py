"""podgate's policy authoring API: everything a policy needs, from one place.

    from policies import PodView, Params, Violation, policy

    @policy("require-team-label", title="Pods carry a team label", category="ownership")
    def require_team_label(pod: PodView):
        if "team" not in pod.labels:
            yield Violation("pod has no team label", field="metadata.labels",
                            fix="add metadata.labels.team")

The names exported here are the stable API; anything else is internal.
`Field` is pydantic's, re-exported so that a policy with parameters needs no
other import; `Params` is a pydantic v2 model, so pydantic's validators work
on it as on any model.
"""

from pydantic import Field

from policies.engine import evaluate
from policies.images import ImageRef, InvalidImage, image_matches, parse_image
from policies.model import (
    Action,
    ClusterState,
    Context,
    Decision,
    Mode,
    NetworkPolicyInfo,
    Outcome,
    PolicyResult,
    ResourceRef,
    Skip,
    StaticContext,
    Violation,
)
from policies.quantity import InvalidQuantity, parse_quantity
from policies.registry import (
    Example,
    Metadata,
    Mutation,
    NoParams,
    Params,
    Policy,
    PolicyDefinitionError,
    Registry,
    Severity,
    mutation,
    policy,
)
from policies.selectors import InvalidSelector, selector_matches
from policies.views import ContainerList, ContainerView, PodView, format_path
from policies.workloads import POD_KINDS, WorkloadKind

__all__ = [
    "POD_KINDS",
    "Action",
    "ClusterState",
    "ContainerList",
    "ContainerView",
    "Context",
    "Decision",
    "Example",
    "Field",
    "ImageRef",
    "InvalidImage",
    "InvalidQuantity",
    "InvalidSelector",
    "Metadata",
    "Mode",
    "Mutation",
    "NetworkPolicyInfo",
    "NoParams",
    "Outcome",
    "Params",
    "PodView",
    "Policy",
    "PolicyDefinitionError",
    "PolicyResult",
    "Registry",
    "ResourceRef",
    "Severity",
    "Skip",
    "StaticContext",
    "Violation",
    "WorkloadKind",
    "evaluate",
    "format_path",
    "image_matches",
    "mutation",
    "parse_image",
    "parse_quantity",
    "policy",
    "selector_matches",
]
