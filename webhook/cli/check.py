"""`podgate check`: the engine over manifests on disk, with no cluster.

The offline Context is built from the manifests themselves: a NetworkPolicy
in the same input covers pods of its namespace, and a Namespace's
`podgate.dev/mode` label applies to the objects in it, as in a cluster.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from policies.config import Config
from policies.engine import INVALID_MANIFEST, evaluate, resource_ref
from policies.model import (
    Action,
    ClusterState,
    Decision,
    NetworkPolicyInfo,
    Outcome,
    PolicyResult,
    ResourceRef,
    StaticContext,
    namespace_entry,
)
from policies.network_policy import network_policy_info
from policies.subject import subject_of
from policies.workloads import api_group, workload_kind
from webhook.cli.manifests import Document, Skipped, Unreadable


@dataclass(frozen=True, slots=True)
class InCluster:
    """Where a finding of `podgate audit` comes from: an object of the cluster.
    Only its kind is kept, not the object: the cluster is not held in memory."""

    api_version: str
    kind: str
    uid: str


Source = Document | InCluster


@dataclass(frozen=True, slots=True)
class Checked:
    """What was judged, where it comes from, and what the engine decided."""

    source: Source
    resource: ResourceRef | None
    decision: Decision | None  # None: a document that could not be read

    @property
    def exempt_reason(self) -> str | None:
        """Why a workload was not evaluated (its namespace is exempt, or its
        mode is off); None for everything else, other kinds included."""
        decision = self.decision
        if decision is None or decision.results or not decision.skipped_reason:
            return None
        source = self.source
        kind = (
            source.obj
            if isinstance(source, Document)
            else {"apiVersion": source.api_version, "kind": source.kind}
        )
        return decision.skipped_reason if kind and workload_kind(kind) is not None else None

    @property
    def results(self) -> tuple[PolicyResult, ...]:
        if self.decision is not None:
            return self.decision.results
        error = self.source.error if isinstance(self.source, Document) else None
        return (
            PolicyResult(
                INVALID_MANIFEST,
                Outcome.ERROR,
                Action.DENY,
                Action.DENY,
                reason=error or "unreadable document",
            ),
        )


@contextlib.contextmanager
def bulk_gc(threshold: tuple[int, int, int] = (5000, 10, 100)) -> Iterator[None]:
    """Fewer garbage collections while a batch of manifests is read and checked.

    Parsing thousands of manifests keeps millions of objects alive, all of
    them acyclic (dicts, lists, strings): at the default thresholds the
    collector's full passes walk the whole, growing heap and find nothing.
    Rarer passes keep the collector for the few cycles there are.
    """
    previous = gc.get_threshold()
    gc.set_threshold(*threshold)
    try:
        yield
    finally:
        gc.set_threshold(*previous)


def offline_context(documents: Sequence[Document], namespace: str) -> StaticContext:
    netpols: list[NetworkPolicyInfo] = []
    namespaces: dict[str, dict[str, str]] = {}
    for doc in documents:
        obj = doc.obj
        if obj is None:
            continue
        kind, group = obj.get("kind"), api_group(str(obj.get("apiVersion", "")))
        if kind == "NetworkPolicy" and group == "networking.k8s.io":
            netpols.append(network_policy_info(obj, namespace))
        elif kind == "Namespace" and group == "" and (entry := namespace_entry(obj)):
            namespaces[entry[0]] = entry[1]
    return StaticContext(tuple(netpols), namespaces, ClusterState.SYNCED)


def check_documents(
    documents: Sequence[Document],
    config: Config,
    *,
    namespace: str = "default",
    fix: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
) -> list[Checked]:
    ctx = offline_context(documents, namespace)
    checked: list[Checked] = []
    total = len(documents)
    for position, doc in enumerate(documents):
        if progress is not None and not position & 255:
            progress(position, total, "checking objects")
        if doc.obj is None:
            checked.append(Checked(doc, None, None))
            continue
        subject = subject_of(doc.obj, config)
        decision = evaluate(subject, ctx, config, mutate=fix, default_namespace=namespace)
        checked.append(Checked(doc, decision.resource, decision))
    return checked


@dataclass(frozen=True)
class Report:
    checked: list[Checked]
    unreadable: list[Unreadable]
    skipped: list[Skipped] = field(default_factory=list)  # files left out on purpose
    texts: dict[str, str] = field(default_factory=dict)  # each file's text: where fields are

    def rows(self) -> list[tuple[Checked, PolicyResult]]:
        return [(c, r) for c in self.checked for r in c.results]

    def summary(self) -> dict[str, Any]:
        """Objects and results counted apart: an object has a result per policy."""
        counts = {str(o): 0 for o in Outcome}
        actions = {"deny": 0, "warn": 0, "audit": 0}
        failed_objects = 0
        for checked in self.checked:
            failed = False
            for result in checked.results:
                counts[str(result.outcome)] += 1
                if result.failed and str(result.effective_action) in actions:
                    actions[str(result.effective_action)] += 1
                    failed = True
            failed_objects += failed
        evaluated = sum(1 for c in self.checked if c.decision is None or c.decision.results)
        return {
            "documents": len(self.checked),  # the objects: kept under its first name
            "objects": len(self.checked),
            "evaluated": evaluated,
            "failed_objects": failed_objects,
            "exempt": sum(1 for c in self.checked if c.exempt_reason),
            "results": counts,
            "failures": actions,
            "unreadable_inputs": len(self.unreadable),
            "skipped_paths": len(self.skipped),
        }

    @property
    def exit_code(self) -> int:
        """2: an input could not be read; 1: something would be refused; else 0."""
        return self.exit_code_at(Action.DENY)

    def exit_code_at(self, fail_on: Action) -> int:
        """As `exit_code`, with 1 for any failure whose action is `fail_on` or
        stronger (`warn`: warnings fail the build too, as conftest's --fail-on-warn)."""
        if self.unreadable:
            return 2
        least = _STRENGTH[fail_on]
        failing = any(
            r.failed and _STRENGTH.get(r.effective_action, 0) >= least for _, r in self.rows()
        )
        return 1 if failing else 0


_STRENGTH = {Action.AUDIT: 1, Action.WARN: 2, Action.DENY: 3}


def resource_of(checked: Checked) -> ResourceRef:
    if checked.resource is not None:
        return checked.resource
    source = checked.source
    return resource_ref(source.obj or {} if isinstance(source, Document) else {})
