"""require-non-root: no container runs as root, whatever the image says."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from pydantic import Field

from policies.model import Skip, Violation
from policies.registry import Example, Params, policy
from policies.views import ContainerView, PodView


class RequireNonRoot(Params):
    min_user_id: int = Field(
        default=1,
        ge=1,
        le=2**31 - 1,  # the largest UID Kubernetes accepts
        description="The lowest runAsUser allowed when one is set (1: anything but root).",
    )
    satisfied_by: Literal["both", "either", "runAsNonRoot"] = Field(
        default="both",
        description="both: runAsNonRoot: true, and runAsUser >= min_user_id where set. "
        "either: runAsNonRoot: true or runAsUser >= min_user_id, set on the container, "
        "or on the pod where the container sets no root value (Polaris). runAsNonRoot: "
        "runAsNonRoot: true alone, runAsUser unchecked (Kyverno's require-run-as-nonroot).",
    )


_EXAMPLE_POD = """apiVersion: v1
kind: Pod
metadata: {{name: web}}
spec:
{context}  containers:
  - name: web
    image: nginx
"""
_EXAMPLE = Example(
    fails=_EXAMPLE_POD.format(context=""),
    passes=_EXAMPLE_POD.format(
        context="  securityContext: {runAsNonRoot: true, runAsUser: 10001}\n"
    ),
)


@policy(
    "require-non-root",
    title="Containers run as a non-root user",
    category="security",
    severity="high",
    params=RequireNonRoot,
    example=_EXAMPLE,
)
def require_non_root(pod: PodView, params: RequireNonRoot) -> Iterator[Violation]:
    """Every container (init and ephemeral ones too) must run with an effective
    `runAsNonRoot: true` and, where `runAsUser` is set, a UID of at least
    `min_user_id`. A container's securityContext overrides the pod's. Windows
    pods are skipped: these fields do not apply to them. Both are required by
    default because either alone lets a root container through to the node:
    `runAsNonRoot: true` with `runAsUser: 0` is admitted and then never starts
    (the kubelet refuses it), and `runAsUser` alone can be overridden to 0 by
    a container. `satisfied_by` relaxes it to the rules of other engines."""
    if pod.os_name == "windows":
        raise Skip("Windows pods do not use runAsNonRoot/runAsUser")
    for container in pod.containers():
        if params.satisfied_by == "either":
            yield from _either(pod, container, params.min_user_id)
            continue
        non_root = pod.effective(container, "runAsNonRoot")
        user = pod.effective(container, "runAsUser")
        if non_root is not True:
            wrong = "is not set" if non_root is None else f"is {_as_yaml(non_root)}"
            fix = "set securityContext.runAsNonRoot: true (on the pod or the container)"
            if user is None and params.satisfied_by == "both":
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
        if user is None or params.satisfied_by == "runAsNonRoot":
            continue
        yield from _user(pod, container, user, params.min_user_id)


def _user(pod: PodView, container: ContainerView, user: object, least: int) -> Iterator[Violation]:
    """What is wrong with an effective runAsUser, if anything."""
    if isinstance(user, bool) or not isinstance(user, int):
        yield Violation(
            f"{container.label}: runAsUser {user!r} is not an integer UID",
            container=container.name,
            field=pod.effective_field(container, "runAsUser"),
            fix=f"set securityContext.runAsUser to a numeric UID such as {_example_uid(least)}",
        )
    elif user < least:
        who = "root (UID 0)" if user == 0 else f"UID {user}"
        yield Violation(
            f"{container.label} runs as {who}",
            container=container.name,
            field=pod.effective_field(container, "runAsUser"),
            fix=f"set securityContext.runAsUser to a UID >= {least}, e.g. {_example_uid(least)}",
        )


def _good(context: dict[str, object], least: int) -> bool:
    """runAsNonRoot: true or a non-root runAsUser, in this securityContext."""
    user = context.get("runAsUser")
    uid = isinstance(user, int) and not isinstance(user, bool) and user >= least
    return context.get("runAsNonRoot") is True or uid


def _root_setting(context: dict[str, object], least: int) -> bool:
    """A value here that says root: runAsNonRoot other than true, a root runAsUser."""
    user = context.get("runAsUser")
    if "runAsUser" in context and not (
        isinstance(user, int) and not isinstance(user, bool) and user >= least
    ):
        return True
    return "runAsNonRoot" in context and context["runAsNonRoot"] is not True


def _either(pod: PodView, container: ContainerView, least: int) -> Iterator[Violation]:
    """Polaris' rule: the container's own securityContext says non-root, or the
    pod's does and the container overrides it with nothing that says root."""
    own = container.security_context
    if _good(own, least) or (_good(pod.security_context, least) and not _root_setting(own, least)):
        return
    root = _root_setting(own, least)
    yield Violation(
        f"{container.label}: "
        + (
            "its securityContext says root"
            if root
            else f"neither runAsNonRoot: true nor a runAsUser >= {least} is set"
        ),
        container=container.name,
        field=container.field("securityContext"),
        fix=f"set securityContext.runAsNonRoot: true or runAsUser: {_example_uid(least)} "
        "(on the pod or the container)",
    )


def _example_uid(min_user_id: int) -> int:
    """10001, a common non-root UID, unless the config asks for higher ones."""
    return max(min_user_id, 10001)


def _as_yaml(value: object) -> str:
    """A value as the manifest wrote it: `false`, not Python's `False`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)
