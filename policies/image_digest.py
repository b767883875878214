"""require-image-digest: images are pinned by digest, so what runs is what was reviewed."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import Field

from policies.images import InvalidImage, image_matches, parse_image
from policies.model import Violation
from policies.registry import Params, policy
from policies.views import PodView

_FIX = "pin it as name@sha256:<digest> (e.g. `crane digest IMAGE` prints it)"


class RequireImageDigest(Params):
    allow: list[str] = Field(
        default_factory=list,
        description="Image globs exempt from this policy (e.g. `registry.k8s.io/pause:*`).",
    )


@policy(
    "require-image-digest",
    title="Images are pinned by sha256 digest",
    category="supply-chain",
    severity="medium",
    params=RequireImageDigest,
)
def require_image_digest(pod: PodView, params: RequireImageDigest) -> Iterator[Violation]:
    """Every image (init and ephemeral containers included) must be written as
    `name@sha256:<64 lowercase hex>`; a tag before the digest is allowed and
    ignored by the runtime. Tags are mutable: the same manifest can run
    different code tomorrow. Images matching an `allow` glob are exempt."""
    for container in pod.containers():
        image = container.image
        if not isinstance(image, str) or not image:
            yield Violation(
                f"{container.label} has no image"
                if image in (None, "")
                else f"{container.label}: image {image!r} is not a string",
                container=container.name,
                field=container.field("image"),
                fix="set image to a reference such as registry/name@sha256:<digest>",
            )
            continue
        if params.allow and image_matches(image, params.allow):
            continue
        try:
            ref = parse_image(image)
        except InvalidImage as exc:
            yield Violation(
                f"{container.label}: {exc}",
                container=container.name,
                field=container.field("image"),
                fix=_FIX,
            )
            continue
        if ref.pinned:
            continue
        if ref.digest is not None:
            algorithm, _, hex_part = ref.digest.partition(":")
            if algorithm != "sha256":
                problem = f"is pinned with {algorithm}, not sha256"
            elif hex_part.lower() != hex_part:
                problem = "has an uppercase digest (sha256 digests are lowercase hex)"
            else:
                problem = f"has a digest of {len(hex_part)} characters, not 64 hex digits"
            image = image.split("@")[0] + "@..."
        else:
            problem = f"uses tag {ref.tag!r}, not a digest" if ref.tag else "has no digest"
        yield Violation(
            f"{container.label} image {image!r} {problem}",
            container=container.name,
            field=container.field("image"),
            fix=_FIX,
        )
