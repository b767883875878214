"""disallow-host-namespaces: pods stay in their own network, PID and IPC namespaces."""

from __future__ import annotations

from collections.abc import Iterator

from policies import NoParams, PodView, Violation, format_path, policy

_FIELDS = ("hostNetwork", "hostPID", "hostIPC")


@policy(
    "disallow-host-namespaces",
    title="Pods do not share the host's namespaces",
    category="security",
    severity="high",
    params=NoParams,
)
def disallow_host_namespaces(pod: PodView) -> Iterator[Violation]:
    """`hostNetwork`, `hostPID` and `hostIPC` are not set to true."""
    for name in _FIELDS:
        if pod.spec.get(name) is True:
            field = format_path((*pod.spec_path, name))
            yield Violation(f"the pod sets {name}: true", field=field, fix=f"remove {field}")
