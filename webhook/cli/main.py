"""`podgate serve | check | audit | test | policies`.

Each subcommand is a thin shell: parse arguments, load the config, call the
engine through its module, print, return an exit code. Heavy imports (FastAPI,
the kubernetes client) happen inside the subcommand that needs them, so
`podgate check` starts fast in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from policies.config import Config, ConfigError, load_config
from policies.model import Mode
from policies.plugins import PluginError
from webhook.cli.about import Version, cmd_completion, cmd_version
from webhook.cli.args import (
    REPORT_FORMATS,
    Parser,
    add_check_arguments,
    add_config,
    add_fail_on,
    add_output,
    count,
    namespace_name,
    page_size,
    port,
    positive_days,
    positive_seconds,
    seconds,
    seconds_between_passes,
)
from webhook.cli.overrides import add_overrides, apply_overrides

EXIT_OK, EXIT_DENIED, EXIT_USAGE = 0, 1, 2


def _load(path: str | None) -> Config:
    return load_config(path)


def cmd_check(args: argparse.Namespace) -> int:
    from webhook.cli.checking import run

    return run(args)


def cmd_policies(args: argparse.Namespace) -> int:
    config = apply_overrides(_load(args.config), args.sets, args.only, args.skip)
    if args.id:
        from webhook.cli.explain import UnknownPolicy, describe, render

        try:
            print(render(describe(config, args.id), args.output))
        except UnknownPolicy as exc:
            print(f"podgate {args.command}: {exc}", file=sys.stderr)
            return EXIT_USAGE
        return EXIT_OK
    rows = config.describe()
    if args.output == "json":
        print(
            json.dumps(
                {"config": config.source, "enforcement": str(config.enforcement), "policies": rows},
                indent=2,
            )
        )
        return EXIT_OK
    width = max(len(r["id"]) for r in rows)
    for row in rows:
        kind = "mutation" if row["type"] == "mutating" else "policy"
        print(
            f"{row['id']:<{width}}  {kind:<8}  {row['action']:<5}  {row['severity']:<8}  "
            f"{row['title']}  [{row['origin']}]"
        )
    if config.enforcement is Mode.AUDIT:
        print("enforcement: audit (dry run): every deny above is answered as a warning")
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from webhook.server.serve import run

    return run(args)


def cmd_webhooks_remove(args: argparse.Namespace) -> int:
    from webhook.cluster.client import connect
    from webhook.cluster.webhook_configs import KubeWebhookConfigs
    from webhook.server.certs import remove_webhooks

    if not (args.validating_webhook or args.mutating_webhook):
        print("podgate webhooks remove: name --validating-webhook and/or --mutating-webhook",
              file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    try:
        api = connect(args.kubeconfig, fallback_default=True)
        done = remove_webhooks(
            KubeWebhookConfigs(api), args.validating_webhook, args.mutating_webhook
        )
    except Exception as exc:
        print(f"podgate webhooks remove: {exc}", file=sys.stderr)
        return EXIT_DENIED
    for line in done:
        print(line)
    return EXIT_OK


def cmd_cleanup(args: argparse.Namespace) -> int:
    from webhook.cli.cleanup import Cleanup, Plan
    from webhook.cluster.client import connect
    from webhook.cluster.leftovers import KubeLeftovers
    from webhook.cluster.webhook_configs import KubeWebhookConfigs

    if not args.namespace:
        print("podgate cleanup: --namespace (or POD_NAMESPACE) is needed", file=sys.stderr)
        return EXIT_USAGE
    plan = Plan(
        validating=args.validating_webhook,
        mutating=args.mutating_webhook,
        namespace=args.namespace,
        stop=args.stop_deployment,
        secret=args.cert_secret,
        lease=args.lease,
        policy_reports=args.policy_reports,
        timeout_s=args.timeout,
    )
    cleanup: Cleanup | None = None
    try:
        api = connect(args.kubeconfig, fallback_default=True)
        cleanup = Cleanup(KubeWebhookConfigs(api), KubeLeftovers(api))
        cleanup.run(plan)
    except Exception as exc:
        for line in cleanup.done if cleanup else []:
            print(line)
        print(f"podgate cleanup: {exc}", file=sys.stderr)
        return EXIT_DENIED
    for line in cleanup.done:
        print(line)
    return EXIT_OK


def cmd_audit(args: argparse.Namespace) -> int:
    from webhook.cli.audit import run

    return run(args)


def cmd_test(args: argparse.Namespace) -> int:
    from webhook.cli.testing import run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="podgate", description="Kubernetes admission policies in plain, typed Python."
    )
    parser.add_argument("--version", action=Version, help="print podgate's version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    version = sub.add_parser("version", help="print podgate's version")
    add_output(version, ("text", "json"))
    version.set_defaults(func=cmd_version)
    completion = sub.add_parser(
        "completion", help="print a shell completion script: podgate completion bash > FILE"
    )
    completion.add_argument("shell", choices=("bash", "zsh", "fish"))
    add_config(completion, "complete the policies of this config's plugins too")
    completion.set_defaults(func=cmd_completion, build_parser=build_parser)

    check = sub.add_parser("check", help="check manifests offline (files, folders, - for stdin)")
    add_check_arguments(check)
    check.set_defaults(func=cmd_check)

    pols = sub.add_parser(
        "policies", help="list the policies, their actions and origins; with an ID, explain it"
    )
    pols.add_argument("id", nargs="?", metavar="ID", help="explain this policy or mutation")
    explain = sub.add_parser(
        "explain", help="one policy or mutation: description, parameters, an example and its fix"
    )
    explain.add_argument("id", metavar="ID")
    for listing in (pols, explain):
        add_config(listing)
        add_output(listing, ("text", "json"))
        add_overrides(listing)
        listing.set_defaults(func=cmd_policies)

    serve = sub.add_parser("serve", help="run the admission webhook over TLS")
    add_config(serve)
    serve.add_argument("--cert", metavar="FILE", help="serving certificate (PEM)")
    serve.add_argument("--key", metavar="FILE", help="serving private key (PEM)")
    serve.add_argument(
        "--self-signed", action="store_true", help="generate a CA and serving cert into --cert-dir"
    )
    serve.add_argument("--cert-dir", default="certs", metavar="DIR", help="where certs are written")
    serve.add_argument(
        "--manage-certs",
        action="store_true",
        help="in a cluster: keep a CA and serving cert in --cert-secret, rotate them and "
        "patch the caBundle of the webhook configurations",
    )
    serve.add_argument("--cert-secret", metavar="NAME", help="Secret holding managed certs")
    serve.add_argument("--service", metavar="NAME", help="Service name (for certificate SANs)")
    serve.add_argument(
        "--san", action="append", default=[], metavar="NAME_OR_IP",
        help="with --self-signed: an extra DNS name or IP address in the serving certificate, "
        "e.g. the address a kind node reaches this host at (repeatable)",
    )  # fmt: skip
    serve.add_argument("--namespace", metavar="NS", default=os.environ.get("POD_NAMESPACE"))
    serve.add_argument(
        "--validating-webhook", metavar="NAME", help="ValidatingWebhookConfiguration to patch"
    )
    serve.add_argument(
        "--mutating-webhook", metavar="NAME", help="MutatingWebhookConfiguration to patch"
    )
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=port, default=8443, help="the admission port (TLS)")
    serve.add_argument(
        "--metrics-port", type=port, default=8080,
        help="plain HTTP /metrics, /healthz, /readyz (default 8080)",
    )  # fmt: skip
    serve.add_argument("--workers", type=count, default=1)
    serve.add_argument(
        "--max-connections", type=count, default=4096, metavar="N",
        help="open connections to the admission port, shared out among the workers; past it "
        "the oldest idle one is closed to make room (default 4096)",
    )  # fmt: skip
    serve.add_argument(
        "--client-ca", metavar="FILE",
        help="mutual TLS: refuse any caller without a client certificate signed by a CA in "
        "FILE (PEM), e.g. the one the API server's admission kubeconfig presents",
    )  # fmt: skip
    serve.add_argument(
        "--client-cn", action="append", default=[], metavar="NAME",
        help="with --client-ca: also require the certificate's common name or a DNS name to "
        "be NAME (repeatable)",
    )  # fmt: skip
    serve.add_argument(
        "--http-stack", choices=("auto", "h11"), default="auto",
        help="auto: httptools on uvloop where installed (each falls back on its own); "
        "h11: uvicorn's h11 on asyncio's loop (default auto)",
    )  # fmt: skip
    serve.add_argument(
        "--kubeconfig", metavar="FILE", help="cluster access (else in-cluster, else none)"
    )
    serve.add_argument("--no-cluster", action="store_true", help="never connect to a cluster")
    serve.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    serve.add_argument(
        "--deadline",
        type=positive_seconds,
        default=2.5,
        metavar="SECONDS",
        help="past it, each policy not evaluated decides by its failure action; keep it below "
        "the webhooks' timeoutSeconds (default 2.5)",
    )
    serve.add_argument(
        "--read-timeout",
        type=positive_seconds,
        default=5.0,
        metavar="SECONDS",
        help="close connections whose request has not fully arrived by then (default 5)",
    )
    serve.add_argument(
        "--shutdown-delay",
        type=seconds,
        default=2.0,
        metavar="SECONDS",
        help="after SIGTERM, keep serving this long with readiness off (default 2)",
    )
    serve.add_argument(
        "--grace-period",
        type=seconds,
        default=25.0,
        metavar="SECONDS",
        help="then wait this long for in-flight requests (default 25)",
    )
    serve.add_argument(
        "--config-poll-seconds", type=float, default=2.0, metavar="SECONDS",
        help="how often the config file is checked for changes (default 2)",
    )  # fmt: skip
    serve.add_argument(
        "--cache-stale-seconds", type=float, default=60.0, metavar="SECONDS",
        help="a cluster watch broken this long makes the cache count as unsynced (default 60)",
    )  # fmt: skip
    serve.add_argument(
        "--event-qps", type=float, default=5.0, metavar="N",
        help="Events API calls per second per worker; the excess is dropped (default 5)",
    )  # fmt: skip
    serve.add_argument(
        "--event-flush-seconds", type=float, default=30.0, metavar="SECONDS",
        help="how often the counts of aggregated Events are written back (default 30)",
    )  # fmt: skip
    serve.add_argument(
        "--cert-sync-seconds", type=float, default=600.0, metavar="SECONDS",
        help="with --manage-certs: how often the Secret and caBundle are re-checked",
    )  # fmt: skip
    serve.add_argument(
        "--cert-days", type=positive_days, default=365.0, metavar="DAYS",
        help="with --manage-certs: lifetime of the serving certificate, renewed with a "
        "third of it left (default 365; fractions for tests of rotation)",
    )  # fmt: skip
    serve.add_argument(
        "--otlp-endpoint", metavar="URL",
        help="trace every admission with OpenTelemetry, sending spans as OTLP/HTTP to URL "
        "(e.g. http://otel-collector:4318; /v1/traces is added); OTEL_EXPORTER_OTLP_ENDPOINT "
        "does the same. Needs podgate[tracing]. Off by default",
    )  # fmt: skip
    serve.add_argument(
        "--trace-sample-ratio", type=float, metavar="RATIO",
        help="with tracing: the share of requests without a traceparent that start a trace; "
        "a request with one follows its caller's decision (default: OTEL_TRACES_SAMPLER, "
        "else every one)",
    )  # fmt: skip
    serve.set_defaults(func=cmd_serve)

    hooks = sub.add_parser("webhooks", help="manage podgate's webhook configurations")
    hooks_sub = hooks.add_subparsers(dest="webhooks_command", required=True, metavar="ACTION")
    remove = hooks_sub.add_parser(
        "remove", help="delete the webhook configurations (missing ones are fine)"
    )
    remove.add_argument("--validating-webhook", metavar="NAME")
    remove.add_argument("--mutating-webhook", metavar="NAME")
    remove.add_argument(
        "--kubeconfig", metavar="FILE", help="cluster access (else in-cluster, else default)"
    )
    remove.set_defaults(func=cmd_webhooks_remove)

    cleanup = sub.add_parser(
        "cleanup",
        help="remove what podgate made in the cluster (the chart's pre-delete hook): "
        "webhook configurations first, then its Secret, Lease and PolicyReports",
    )
    cleanup.add_argument("--validating-webhook", metavar="NAME")
    cleanup.add_argument("--mutating-webhook", metavar="NAME")
    cleanup.add_argument("--namespace", metavar="NS", default=os.environ.get("POD_NAMESPACE"))
    cleanup.add_argument(
        "--stop-deployment", action="append", default=[], metavar="NAME",
        help="scale to zero and wait for its pods before deleting the rest (repeatable)",
    )  # fmt: skip
    cleanup.add_argument("--cert-secret", metavar="NAME", help="the managed certificate Secret")
    cleanup.add_argument("--lease", metavar="NAME", help="the audit's Lease")
    cleanup.add_argument(
        "--policy-reports", metavar="NAME", help="PolicyReports of this name, in every namespace"
    )
    cleanup.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                         help="how long to wait for the stopped pods (default 60)")  # fmt: skip
    cleanup.add_argument(
        "--kubeconfig", metavar="FILE", help="cluster access (else in-cluster, else default)"
    )
    cleanup.set_defaults(func=cmd_cleanup)

    audit = sub.add_parser("audit", help="audit what already runs in a cluster")
    add_config(audit)
    add_output(audit, REPORT_FORMATS)
    audit.add_argument("--kubeconfig", metavar="FILE")
    audit.add_argument(
        "--namespace", "-n", type=namespace_name, help="only this namespace (default: all)"
    )
    audit.add_argument("--page-size", type=page_size, default=500)
    audit.add_argument("--watch", action="store_true", help="run continuously (kopf operator)")
    audit.add_argument("--metrics-port", type=port, default=8080)
    audit.add_argument("--resync-seconds", type=seconds_between_passes, default=600.0)
    audit.add_argument("--policy-reports", action="store_true", help="write PolicyReport objects")
    audit.add_argument("--verbose", "-v", action="store_true")
    audit.add_argument(
        "--log-level", default="info", choices=("debug", "info", "warning", "error"),
        help="with --watch: JSON log lines on stderr at this level",
    )  # fmt: skip
    audit.add_argument("--no-color", action="store_true")
    add_fail_on(audit)
    add_overrides(audit)
    audit.set_defaults(func=cmd_audit)

    test = sub.add_parser("test", help="run policy test suites (podgate-test.yaml)")
    test.add_argument("paths", nargs="+", metavar="PATH")
    add_config(
        test,
        "plugins for the suites that load none (each suite's own config: gives "
        "parameters and actions)",
    )
    add_output(test, ("text", "json", "junit"))
    test.set_defaults(func=cmd_test)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except (ConfigError, PluginError) as exc:
        print(f"podgate {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `podgate check ... | head`
        return code if "code" in locals() else EXIT_OK
    return code


def run() -> NoReturn:
    """The `podgate` console script: `main`, then an exit no daemon thread can spoil."""
    from webhook.telemetry.exit import leave

    # a manifest may carry text UTF-8 cannot write (a lone surrogate from a
    # JSON escape): printed as an escape, never an exception in the report
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if callable(reconfigure):
            reconfigure(errors="backslashreplace")
    leave(main())
