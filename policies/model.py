"""The values that flow through the engine: violations, results, decisions, context.

Everything here is immutable so that a Decision can be shared between the
webhook response, the metrics, the event recorder and the logs without any of
them changing what the others see.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from policies.selectors import InvalidSelector, Selector


class Action(enum.StrEnum):
    """What happens when a policy fails."""

    DENY = "deny"  # refuse the request
    WARN = "warn"  # admit; kubectl prints a warning
    AUDIT = "audit"  # admit silently; recorded in metrics, events and logs
    OFF = "off"  # not evaluated


class Outcome(enum.StrEnum):
    """What a policy found."""

    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"
    ERROR = "error"


class Mode(enum.StrEnum):
    """Enforcement mode, global or per namespace (label `podgate.dev/mode`)."""

    ENFORCE = "enforce"
    AUDIT = "audit"  # the dry-run audit mode: nothing refused, denials become warnings
    OFF = "off"  # nothing evaluated, nothing mutated


class ClusterState(enum.StrEnum):
    """How much a Context knows about the cluster."""

    SYNCED = "synced"  # the cache (or the offline manifests) are complete
    UNSYNCED = "unsynced"  # a cache exists but has not synced or is stale
    OFFLINE = "offline"  # no cluster at all: cluster-dependent policies skip


EXEMPT_ANNOTATION = "podgate.dev/exempt"
MODE_LABEL = "podgate.dev/mode"
AUDIT_WARNING_PREFIX = "[audit mode, would be denied]"


class Skip(Exception):
    """Raised by a policy that does not apply to this object; the message says why."""


class Violation(NamedTuple):
    """One thing wrong with an object, and how to fix it.

    `container` names the container (None for pod-level findings), `field` is
    the path inside the object (`spec.containers[0].resources.limits.memory`),
    `fix` tells the user what to do. A NamedTuple rather than a dataclass:
    immutable all the same, and cheaper to create on the admission path.
    """

    message: str
    container: str | None = None
    field: str | None = None
    fix: str | None = None

    def __str__(self) -> str:
        text = self.message
        if self.fix:
            text = f"{text}; {self.fix}"
        return text


class ResourceRef(NamedTuple):
    """Which object a decision is about. A NamedTuple: one is made per
    evaluation, and a frozen dataclass is slower to create."""

    api_version: str
    kind: str
    namespace: str | None
    name: str | None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
        }

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name or '<unnamed>'}"


_FAILED = frozenset({Outcome.FAIL, Outcome.ERROR})


class PolicyResult(NamedTuple):
    """The outcome of one policy on one object (immutable; cheap to create).

    `action` is the configured action; `effective_action` is what the engine
    did with it after the enforcement mode, exemptions and failure handling.
    """

    policy: str
    outcome: Outcome
    action: Action
    effective_action: Action
    violations: tuple[Violation, ...] = ()
    reason: str = ""  # why it skipped or errored
    duration_s: float = 0.0
    raised_at: str = ""  # where a policy that raised raised: `plugin.py:12 in team_label`

    @property
    def failed(self) -> bool:
        return self.outcome in _FAILED

    @property
    def message(self) -> str:
        if self.violations:
            return "; ".join(str(v) for v in self.violations)
        return self.reason

    def lines(self) -> list[str]:
        """One line per violation, each prefixed with the policy id."""
        if self.violations:
            return [f"{self.policy}: {v}" for v in self.violations]
        return [f"{self.policy}: {self.reason}"] if self.reason else [self.policy]


class Decision(NamedTuple):
    """The engine's answer for one object. A NamedTuple, like the results
    it holds: one is made per evaluation, and a frozen dataclass is slower
    to create."""

    resource: ResourceRef
    mode: Mode
    results: tuple[PolicyResult, ...] = ()
    patch: tuple[Mapping[str, Any], ...] = ()
    mutated: Mapping[str, Any] | None = None
    mutations_applied: tuple[str, ...] = ()
    skipped_reason: str = ""  # set when the object was not evaluated at all
    mutation_errors: tuple[str, ...] = ()

    def failing(self, *actions: Action) -> list[PolicyResult]:
        # asked several times per admission: the property is inlined
        return [r for r in self.results if r.outcome in _FAILED and r.effective_action in actions]

    @property
    def allowed(self) -> bool:
        return not self.failing(Action.DENY)

    @property
    def denial_lines(self) -> list[str]:
        return [line for r in self.failing(Action.DENY) for line in r.lines()]

    @property
    def warning_lines(self) -> list[str]:
        """Warnings for the user, in the order the policies ran.

        In audit mode, a result that would have denied is shown as a warning
        with a prefix, so the user sees what enforcement would do.
        """
        lines: list[str] = []
        for r in self.failing(Action.WARN):
            would_deny = r.action is Action.DENY and self.mode is Mode.AUDIT
            prefix = f"{AUDIT_WARNING_PREFIX} " if would_deny else ""
            lines.extend(prefix + line for line in r.lines())
        lines.extend(f"mutation failed: {m}" for m in self.mutation_errors)
        return lines

    @property
    def recorded(self) -> list[PolicyResult]:
        """Results worth an Event / metric: any failure not switched off."""
        return self.failing(Action.DENY, Action.WARN, Action.AUDIT)


@dataclass(frozen=True)
class NetworkPolicyInfo:
    """The parts of a NetworkPolicy the engine needs, its selector compiled once."""

    namespace: str
    name: str
    pod_selector: Mapping[str, Any]
    policy_types: frozenset[str]
    # the policyTypes it has at least one rule for (an empty one denies all)
    rule_types: frozenset[str] = frozenset()

    @functools.cached_property
    def selector(self) -> Selector | InvalidSelector:
        """The compiled podSelector, or why it is invalid (reported by the policy)."""
        try:
            return Selector(self.pod_selector)
        except InvalidSelector as exc:
            return exc


def namespace_entry(obj: Mapping[str, Any]) -> tuple[str, dict[str, str]] | None:
    """A Namespace object's name and labels, as a Context keeps them; None
    without a name."""
    metadata = obj.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    if not isinstance(name, str) or not name:
        return None
    labels = metadata.get("labels") if isinstance(metadata, Mapping) else None
    return name, {str(k): str(v) for k, v in labels.items()} if isinstance(labels, Mapping) else {}


class Context(Protocol):
    """What the engine may know about the cluster. The only seam to it.

    The webhook backs it with watch caches, `podgate check` with the
    manifests it was given, unit tests with a fake.
    """

    @property
    def cluster_state(self) -> ClusterState: ...

    def network_policies(self, namespace: str) -> Sequence[NetworkPolicyInfo]: ...

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None: ...


@dataclass(frozen=True)
class StaticContext:
    """A Context from a fixed set of objects: offline checks and tests."""

    policies: tuple[NetworkPolicyInfo, ...] = ()
    namespaces: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    state: ClusterState = ClusterState.SYNCED

    @property
    def cluster_state(self) -> ClusterState:
        return self.state

    def network_policies(self, namespace: str) -> Sequence[NetworkPolicyInfo]:
        return self._by_namespace.get(namespace, ())

    @functools.cached_property
    def _by_namespace(self) -> dict[str, tuple[NetworkPolicyInfo, ...]]:
        grouped: dict[str, list[NetworkPolicyInfo]] = {}
        for p in self.policies:
            grouped.setdefault(p.namespace, []).append(p)
        return {ns: tuple(ps) for ns, ps in grouped.items()}

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        return self.namespaces.get(namespace)


OFFLINE = StaticContext(state=ClusterState.OFFLINE)
