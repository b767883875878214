"""allowed-registries: every image comes from a registry the platform team trusts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from pydantic import AfterValidator

from policies import Field, InvalidImage, Params, PodView, Skip, Violation, parse_image, policy


def _registry_prefix(entry: str) -> str:
    # Refused at config load, with the item's path in the error
    # (`policies.allowed-registries.registries[1]: ...`), rather than matching nothing.
    if not entry or "://" in entry or "*" in entry or entry.startswith("/"):
        raise ValueError(
            f"{entry!r} is not a registry host or host/path prefix "
            "(write `ghcr.io/acme`: no scheme, no wildcard)"
        )
    return entry.rstrip("/")


class AllowedRegistries(Params):
    registries: list[Annotated[str, AfterValidator(_registry_prefix)]] = Field(
        default_factory=list,
        description="Registry hosts (`ghcr.io`, `registry.example.com:5000`) or host/path "
        "prefixes (`ghcr.io/acme`). Images without a host are Docker Hub's: `docker.io` "
        "allows them all, `docker.io/library` only the official images. Empty: the "
        "policy skips, as it has nothing to enforce.",
    )


def _full_name(name: str, registry: str) -> str:
    """The image name with its registry host, as the runtime resolves it:
    `nginx` and `docker.io/nginx` -> `docker.io/library/nginx`,
    `acme/web` -> `docker.io/acme/web`."""
    path = name.removeprefix(registry + "/")
    if registry == "docker.io" and "/" not in path:
        path = f"library/{path}"
    return f"{registry}/{path}"


def _allowed(full_name: str, prefixes: list[str]) -> bool:
    host, _, path = full_name.partition("/")
    for prefix in prefixes:
        prefix_host, _, prefix_path = prefix.partition("/")
        # Hosts are case-insensitive; paths are not. A prefix stops at a `/`,
        # so `ghcr.io/acme` does not allow `ghcr.io/acme-evil/x`.
        if prefix_host.lower() != host.lower():
            continue
        if not prefix_path or path == prefix_path or path.startswith(prefix_path + "/"):
            return True
    return False


@policy(
    "allowed-registries",
    title="Images come from an allowed registry",
    category="supply-chain",
    severity="high",
    params=AllowedRegistries,
)
def allowed_registries(pod: PodView, params: AllowedRegistries) -> Iterator[Violation]:
    """Every image of every container, init container and ephemeral container
    must come from one of `registries`. Images without a registry host are
    Docker Hub's (`nginx` is `docker.io/library/nginx`), as the runtime pulls them."""
    if not params.registries:
        raise Skip("no allowed registries configured (set policies.allowed-registries.registries)")
    allowed = ", ".join(params.registries)
    for container in pod.containers():
        image = container.image
        if not isinstance(image, str) or not image:
            yield Violation(
                f"{container.label} has no image",
                container=container.name,
                field=container.field("image"),
                fix=f"set an image from one of: {allowed}",
            )
            continue
        try:
            ref = parse_image(image)
        except InvalidImage as exc:
            yield Violation(
                f"{container.label}: {exc}",
                container=container.name,
                field=container.field("image"),
                fix=f"use a valid image reference from one of: {allowed}",
            )
            continue
        if not _allowed(_full_name(ref.name, ref.registry), params.registries):
            yield Violation(
                f"{container.label} image {image!r} is not from an allowed registry "
                f"(allowed: {allowed})",
                container=container.name,
                field=container.field("image"),
                fix="push the image to one of them and use that reference",
            )
