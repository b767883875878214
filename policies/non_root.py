"""require-non-root: no container runs as root, whatever the image says."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import Field

from policies.model import Skip, Violation
from policies.registry import Params, policy
from policies.views import PodView


class RequireNonRoot(Params):
    min_user_id: int = Field(
        default=1,
        ge=1,
        le=2**31 - 1,  # the largest UID Kubernetes accepts
        description="The lowest runAsUser allowed when one is set (1: anything but root).",
    )


@policy(
    "require-non-root",
    title="Containers run as a non-root user",
    category="security",
    severity="high",
    params=RequireNonRoot,
)
def require_non_root(pod: PodView, params: RequireNonRoot) -> Iterator[Violation]:
    """Every container (init and ephemeral ones too) must run with an effective
    `runAsNonRoot: true` and, where `runAsUser` is set, a UID of at least
    `min_user_id`. A container's securityContext overrides the pod's. Windows
    pods are skipped: these fields do not apply to them."""
    if pod.os_name == "windows":
        raise Skip("Windows pods do not use runAsNonRoot/runAsUser")
    for container in pod.containers():
        non_root = pod.effective(container, "runAsNonRoot")
        user = pod.effective(container, "runAsUser")
        if non_root is not True:
            wrong = "is not set" if non_root is None else f"is {_as_yaml(non_root)}"
            fix = "set securityContext.runAsNonRoot: true (on the pod or the container)"
            if user is None:
                # The image's USER decides then, and a root one would not start.
                fix = (
                    "set securityContext.runAsNonRoot: true and runAsUser: "
                    f"{_example_uid(params.min_user_id)} (on the pod or the container): "
                    "without runAsUser, an image that runs as root would not start"
                )
            yield Violation(
                f"{container.label}: runAsNonRoot {wrong}",
                container=container.name,
                field=pod.effective_field(container, "runAsNonRoot"),
                fix=fix,
            )
        if user is None:
            continue
        if isinstance(user, bool) or not isinstance(user, int):
            yield Violation(
                f"{container.label}: runAsUser {user!r} is not an integer UID",
                container=container.name,
                field=pod.effective_field(container, "runAsUser"),
                fix="set securityContext.runAsUser to a numeric UID such as "
                f"{_example_uid(params.min_user_id)}",
            )
        elif user < params.min_user_id:
            who = "root (UID 0)" if user == 0 else f"UID {user}"
            yield Violation(
                f"{container.label} runs as {who}",
                container=container.name,
                field=pod.effective_field(container, "runAsUser"),
                fix=f"set securityContext.runAsUser to a UID >= {params.min_user_id}, "
                f"e.g. {_example_uid(params.min_user_id)}",
            )


def _example_uid(min_user_id: int) -> int:
    """10001, a common non-root UID, unless the config asks for higher ones."""
    return max(min_user_id, 10001)


def _as_yaml(value: object) -> str:
    """A value as the manifest wrote it: `false`, not Python's `False`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)
