"""`podgate audit`: what already runs in the cluster, judged by the same engine.

One-shot (default): a full pass (webhook/audit/), reported in the formats of
`podgate check`, with its exit codes. `--watch`: the continuous audit of the
chart's audit Deployment.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any

from policies.config import Config, load_config
from policies.model import Action, Decision
from policies.views import as_mapping
from webhook.audit.scan import scan
from webhook.cli.check import Checked, InCluster, Report
from webhook.cli.manifests import Unreadable
from webhook.cli.overrides import apply_overrides
from webhook.cluster.client import api_error
from webhook.cluster.reader import ClusterReader, KubeClusterReader


def report_of(
    reader: ClusterReader, config: Config, *, namespace: str | None, page_size: int
) -> Report:
    """The one-shot audit as a Report, rendered like `podgate check`'s."""
    checked: list[Checked] = []

    def keep(obj: Mapping[str, Any], decision: Decision) -> None:
        if decision.results or decision.skipped_reason:
            uid = as_mapping(obj.get("metadata")).get("uid")
            source = InCluster(str(obj.get("apiVersion")), str(obj.get("kind")), str(uid or ""))
            checked.append(Checked(source, decision.resource, decision))

    done = scan(reader, config, keep, namespace=namespace, page_size=page_size)
    unreadable = [Unreadable(f"cluster {plural}", why) for plural, why in done.unreadable.items()]
    return Report(checked, unreadable)


def run(args: argparse.Namespace) -> int:
    from webhook.cli.args import colour_enabled
    from webhook.cli.formats import render
    from webhook.cluster.client import connect

    config = apply_overrides(load_config(args.config), args.sets, args.only, args.skip)
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
        from webhook.audit.watch import run_watch

        return run_watch(args, config, api_client)
    reader = KubeClusterReader(api_client)
    try:
        report = report_of(reader, config, namespace=args.namespace, page_size=args.page_size)
    except Exception as exc:  # the API server is unreachable or refuses us
        print(f"podgate audit: cannot read the cluster: {api_error(exc)}", file=sys.stderr)
        return 2
    print(render(report, config, args.output, colour=colour_enabled(sys.stdout, args.no_color),
                 verbose=args.verbose))  # fmt: skip
    return report.exit_code_at(Action(args.fail_on))
