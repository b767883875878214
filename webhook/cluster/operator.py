"""The audit's watch of the cluster, run by kopf.

kopf delivers every create, change and deletion of the watched kinds (and,
at start-up, every existing object). Its `on.event` handlers keep no progress
annotations on the user's objects (its change handlers would write them), and
kopf posts no Events of its own: podgate posts its own.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from webhook.cluster.reader import AuditedKind, ClusterReader

log = logging.getLogger("podgate.audit")

HEARTBEAT_S = 5.0

OnEvent = Callable[[str | None, dict[str, Any]], None]


def _forbidden(reader: ClusterReader, kind: AuditedKind) -> bool:
    """Whether the API server refuses us the list of `kind` (403). Any other
    error (the API server away for a moment) is for the watch to retry."""
    try:
        next(iter(reader.pages(kind, None, 1)), None)
    except Exception as exc:
        return getattr(exc, "status", None) == 403
    return False


def watch(
    kinds: Sequence[AuditedKind],
    on_event: OnEvent,
    *,
    probe: ClusterReader,
    beat: Callable[[], None],
    stop: threading.Event,
    identity: str,
    kubeconfig: str | None = None,
) -> None:
    """Deliver every event of `kinds` to `on_event` until kopf stops (SIGTERM).

    `probe` (a reader with a short timeout) finds the kinds we may not list,
    which are left out: kopf would retry a forbidden watch for a minute, then
    stop the whole operator, a crash loop over one missing RBAC rule. `beat`
    ticks while kinds are probed and then from kopf's event loop.
    """
    import kopf

    # kopf says "Handler ... succeeded." at info for every event of every object
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    if kubeconfig:
        os.environ["KUBECONFIG"] = kubeconfig  # for kopf's own login
    registry = kopf.OperatorRegistry()
    beating: list[asyncio.Task[None]] = []  # held: a task nobody references may be collected

    @kopf.on.startup(registry=registry)
    async def start_heartbeat(**_: Any) -> None:
        async def ticks() -> None:
            # This first step runs after kopf has put its signal handlers in
            # place: a signal that our handler caught before is passed on.
            if stop.is_set():
                os.kill(os.getpid(), signal.SIGTERM)
            while True:
                beat()
                await asyncio.sleep(HEARTBEAT_S)

        beating.append(asyncio.get_running_loop().create_task(ticks()))

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> Any:
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            return kopf.login_with_service_account(**kwargs)
        return kopf.login_with_kubeconfig(**kwargs)

    async def handler(event: Mapping[str, Any], body: Mapping[str, Any], **_: Any) -> None:
        on_event(event.get("type"), dict(body))

    for kind in kinds:
        beat()
        if stop.is_set():
            break  # a signal: kopf starts only to pass it on and stop
        if _forbidden(probe, kind):
            log.error("may not list %s: not watched (each full pass says so again)", kind.plural)
            continue
        group, _, version = kind.api_version.rpartition("/")
        kopf.on.event(group or "", version, kind.plural, registry=registry)(handler)

    settings = kopf.OperatorSettings()
    settings.posting.enabled = False  # our Events, not kopf's
    # kopf would watch CRDs and namespaces to find resources; podgate names its
    # kinds, and its RBAC does not allow that watch (a warning at every start)
    settings.scanning.disabled = True
    settings.watching.server_timeout = 300
    # kopf keeps a worker task per object until it has been idle this long; at
    # start-up that is one per object in the cluster: let them go quickly
    settings.queueing.idle_timeout = 0.5
    # kopf would otherwise name itself by getpass.getuser(), which fails for a
    # UID without a passwd entry: the image's 65532 has none.
    kopf.run(
        registry=registry,
        settings=settings,
        standalone=True,
        clusterwide=True,
        identity=cast(Any, identity),  # a NewType of str that kopf does not export
    )
