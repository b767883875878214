"""require-image-digest: images are pinned by digest, so what runs is what was reviewed."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import Field

from policies.images import InvalidImage, image_matches, parse_image
from policies.model import Violation
from policies.registry import Example, Params, policy
from policies.views import PodView

# Algorithms the OCI image spec registers, with the length of their lowercase hex.
_HEX_LENGTH = {"sha256": 64, "sha512": 128, "blake3": 64}
_ANY = "*"


class RequireImageDigest(Params):
    allow: list[str] = Field(
        default_factory=list,
        description="Image globs exempt from this policy (e.g. `registry.k8s.io/pause:*`).",
    )
    algorithms: list[str] = Field(
        default=["sha256"],
        min_length=1,
        description="Digest algorithms accepted. A registered one (sha256, sha512, blake3) "
        "must be written as lowercase hex of its length; `*` accepts any "
        "`name@algorithm:encoded` the reference grammar allows (Kyverno's `*@*`).",
    )


_EXAMPLE_POD = """apiVersion: v1
kind: Pod
metadata: {{name: web}}
spec:
  containers:
  - name: web
    image: {image}
"""
_EXAMPLE = Example(
    fails=_EXAMPLE_POD.format(image="nginx:1.27"),
    passes=_EXAMPLE_POD.format(image="nginx:1.27@sha256:" + "5e" * 32),
)


@policy(
    "require-image-digest",
    title="Images are pinned by digest",
    category="supply-chain",
    severity="medium",
    params=RequireImageDigest,
    example=_EXAMPLE,
)
def require_image_digest(pod: PodView, params: RequireImageDigest) -> Iterator[Violation]:
    """Every image (init and ephemeral containers included) must be written as
    `name@sha256:<64 lowercase hex>` (or another of `algorithms`); a tag before
    the digest is allowed and ignored by the runtime. Tags are mutable: the
    same manifest can run different code tomorrow. Images matching an `allow`
    glob are exempt."""
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
                fix=_fix(params.algorithms),
            )
            continue
        if ref.pinned and "sha256" in params.algorithms:
            continue
        if ref.digest is not None:
            problem = _digest_problem(ref.digest, params.algorithms)
            if problem is None:
                continue
            image = image.split("@")[0] + "@..."
        else:
            problem = f"uses tag {ref.tag!r}, not a digest" if ref.tag else "has no digest"
        yield Violation(
            f"{container.label} image {image!r} {problem}",
            container=container.name,
            field=container.field("image"),
            fix=_fix(params.algorithms),
        )


def _digest_problem(digest: str, algorithms: list[str]) -> str | None:
    """What is wrong with a digest the reference grammar accepted; None if nothing."""
    algorithm, _, encoded = digest.partition(":")
    if algorithm not in algorithms and _ANY not in algorithms:
        return f"is pinned with {algorithm}, not {' or '.join(algorithms)}"
    length = _HEX_LENGTH.get(algorithm)
    if length is None:
        return None  # an algorithm the spec does not register: the grammar is all we know
    if encoded.lower() != encoded:
        return f"has an uppercase digest ({algorithm} digests are lowercase hex)"
    if len(encoded) != length or any(c not in "0123456789abcdef" for c in encoded):
        return f"has a digest of {len(encoded)} characters, not {length} hex digits"
    return None


def _fix(algorithms: list[str]) -> str:
    algorithm = "sha256" if "sha256" in algorithms or _ANY in algorithms else algorithms[0]
    return f"pin it as name@{algorithm}:<digest> (e.g. `crane digest IMAGE` prints it)"
