"""`podgate audit`: what already runs in the cluster, judged by the same engine.

One-shot (default): list every Pod and workload in pages, evaluate each with
the cluster's NetworkPolicies and Namespaces as context, and report in the
formats of `podgate check`, with its exit codes. A Pod created by a workload
is reported once, at the workload that owns it (the Deployment, not its
ReplicaSet and Pods), which is what a person has to fix.

`--watch`: the audit Deployment of the chart. A kopf operator evaluates
workloads as they are created, changed or found at start-up, re-runs a full
pass periodically, exports gauges of the current violations and emits Events.
Only the holder of a Lease is active, so a second replica waits.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from policies.config import Config, load_config
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
from policies.subject import Write, controlling_workload, subject_of
from webhook.check import Checked, Report
from webhook.cluster.client import api_error
from webhook.cluster.reader import AUDITED, CONTEXT_KINDS, ClusterReader, KubeClusterReader
from webhook.manifests import Document, Unreadable

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
    return evaluate(subject_of(Write(obj), config), ctx, config, mutate=False)


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


def report_of(
    reader: ClusterReader, config: Config, *, namespace: str | None, page_size: int
) -> Report:
    """The one-shot audit as a Report, rendered like `podgate check`'s."""
    checked: list[Checked] = []

    def keep(obj: Mapping[str, Any], decision: Decision) -> None:
        if decision.results or decision.skipped_reason:
            # only the kind is kept of the object: enough to say a workload
            # is exempt (as `check` does), without holding the cluster in memory
            kind = {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind")}
            document = Document("cluster", len(checked), 0, kind)
            checked.append(Checked(document, decision.resource, decision))

    done = scan(reader, config, keep, namespace=namespace, page_size=page_size)
    unreadable = [Unreadable(f"cluster {plural}", why) for plural, why in done.unreadable.items()]
    return Report(checked, unreadable, unit="object")


def run(args: argparse.Namespace) -> int:
    from webhook.cli import colour_enabled
    from webhook.cluster.client import connect
    from webhook.report import render

    config = load_config(args.config)
    if args.watch and args.namespace:
        print("podgate audit: --namespace is not supported with --watch "
              "(the watch audits the whole cluster)", file=sys.stderr)  # fmt: skip
        return 2
    try:
        api_client = connect(args.kubeconfig, fallback_default=True)
    except Exception as exc:  # a missing or invalid kubeconfig: a usage error, not a finding
        where = args.kubeconfig or "the default kubeconfig"
        print(f"podgate audit: cannot load the kubeconfig ({where}): {exc}", file=sys.stderr)
        return 2
    if api_client is None:
        print("podgate audit: no cluster: give --kubeconfig or run in a cluster", file=sys.stderr)
        return 2
    if args.watch:
        from webhook.audit_watch import run_watch

        return run_watch(args, config, api_client)
    reader = KubeClusterReader(api_client)
    try:
        report = report_of(reader, config, namespace=args.namespace, page_size=args.page_size)
    except Exception as exc:  # the API server is unreachable or refuses us
        print(f"podgate audit: cannot read the cluster: {api_error(exc)}", file=sys.stderr)
        return 2
    print(render(report, config, args.output, colour=colour_enabled(sys.stdout, args.no_color),
                 verbose=args.verbose))  # fmt: skip
    return report.exit_code
