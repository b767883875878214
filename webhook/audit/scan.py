"""A full pass over what runs: every Pod and workload, in pages, judged by the
same engine with the cluster's NetworkPolicies and Namespaces as context.

A Pod created by a workload is reported once, at the workload that owns it
(the Deployment, not its ReplicaSet and Pods), which is what a person has
to fix.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from policies.config import Config
from policies.engine import evaluate
from policies.model import (
    ClusterState,
    Context,
    Decision,
    NetworkPolicyInfo,
    StaticContext,
    namespace_entry,
)
from policies.network_policy import network_policy_info
from policies.subject import controlling_workload, subject_of
from webhook.cluster.client import api_error
from webhook.cluster.reader import AUDITED, CONTEXT_KINDS, ClusterReader

log = logging.getLogger("podgate.audit")


def owned_by_workload(obj: Mapping[str, Any]) -> bool:
    """Whether a workload the audit also scans controls this object.

    The rule is transitive: a Pod of a ReplicaSet of a Deployment is skipped,
    and so is the ReplicaSet, so the finding lands on the Deployment. An
    object controlled by something else (a custom resource) is reported.
    """
    return controlling_workload(obj) is not None


def cluster_context(
    reader: ClusterReader,
    page_size: int,
    namespace: str | None = None,
    unreadable: dict[str, str] | None = None,
) -> StaticContext:
    """NetworkPolicies and Namespace labels; with `namespace`, only that
    namespace's (a team whose Role covers one namespace may read no more).

    Given `unreadable`, what cannot be read is named there instead of
    raised: without the NetworkPolicies, the policies that need the cluster
    are skipped (OFFLINE) rather than judged on nothing; without the
    Namespaces, no namespace label is known.
    """
    policies: list[NetworkPolicyInfo] = []
    namespaces: dict[str, dict[str, str]] = {}
    state = ClusterState.SYNCED
    netpol_kind, namespace_kind = CONTEXT_KINDS
    try:
        for page in reader.pages(netpol_kind, namespace, page_size):
            policies.extend(network_policy_info(obj, "default") for obj in page)
    except Exception as exc:
        if unreadable is None:
            raise
        unreadable[netpol_kind.plural] = api_error(exc)
        policies, state = [], ClusterState.OFFLINE
    try:
        for page in reader.pages(namespace_kind, namespace, page_size):
            namespaces.update(e for e in map(namespace_entry, page) if e is not None)
    except Exception as exc:
        if unreadable is None:
            raise
        unreadable[namespace_kind.plural] = api_error(exc)
    return StaticContext(tuple(policies), namespaces, state)


def audit_decision(obj: Mapping[str, Any], ctx: Context, config: Config) -> Decision:
    """The engine's decision on a cluster object, judged as written."""
    return evaluate(subject_of(obj, config), ctx, config, mutate=False)


OnDecision = Callable[[Mapping[str, Any], Decision], None]


@dataclass(frozen=True)
class Pass:
    """What one full pass saw: objects per kind, and what it could not read
    (by resource, the API server's reason)."""

    seen: dict[str, int]
    unreadable: dict[str, str]


def scan(
    reader: ClusterReader,
    config: Config,
    on_decision: OnDecision,
    *,
    namespace: str | None = None,
    page_size: int = 500,
    ctx: Context | None = None,
) -> Pass:
    """One full pass: every decision goes to `on_decision`, page by page.

    Nothing is kept here: the caller decides what to remember (the one-shot
    report keeps results, the watch keeps a few strings per failing object),
    so memory follows the findings, not the size of the cluster. A kind that
    cannot be listed (RBAC without CronJobs) is named in the Pass and the
    others are audited; when no kind can be read, the first error is raised.
    `ctx`, when given (the watch's caches), stands for the cluster's
    NetworkPolicies and Namespaces, which are then not listed.
    """
    unreadable: dict[str, str] = {}
    if ctx is None:
        ctx = cluster_context(reader, page_size, namespace, unreadable)
    seen: dict[str, int] = {}
    first: Exception | None = None
    for kind in AUDITED:
        count = 0
        try:
            for page in reader.pages(kind, namespace, page_size):
                count += len(page)
                for obj in page:
                    if not owned_by_workload(obj):
                        on_decision(obj, audit_decision(obj, ctx, config))
        except Exception as exc:
            first = first or exc
            unreadable[kind.plural] = api_error(exc)
        seen[kind.kind] = count
    if first is not None and all(kind.plural in unreadable for kind in AUDITED):
        raise first  # the cluster, not a kind: one error says it
    return Pass(seen, unreadable)
