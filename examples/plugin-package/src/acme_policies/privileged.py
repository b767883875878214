"""disallow-privileged: no container gets the host's devices and capabilities."""

from __future__ import annotations

from collections.abc import Iterator

from policies import Field, Params, PodView, Violation, image_matches, policy


class DisallowPrivileged(Params):
    allow_images: list[str] = Field(
        default_factory=list,
        description="Image globs that may run privileged (a CNI or CSI node agent).",
    )


@policy(
    "disallow-privileged",
    title="Containers are not privileged",
    category="security",
    severity="critical",
    params=DisallowPrivileged,
)
def disallow_privileged(pod: PodView, params: DisallowPrivileged) -> Iterator[Violation]:
    """No container, init container or ephemeral container sets
    `securityContext.privileged: true`, unless its image is allow-listed."""
    for container in pod.containers():
        if container.security_context.get("privileged") is not True:
            continue
        image = container.image
        if isinstance(image, str) and image_matches(image, params.allow_images):
            continue
        yield Violation(
            f"{container.label} is privileged",
            container=container.name,
            field=container.field("securityContext", "privileged"),
            fix="remove privileged: true and add only the capabilities it needs",
        )
