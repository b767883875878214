"""disallow-latest-tag: no image runs whatever `latest` happens to be at pull time."""

from __future__ import annotations

from collections.abc import Iterator

from policies import Field, InvalidImage, Params, PodView, Violation, parse_image, policy


class DisallowLatestTag(Params):
    tags: list[str] = Field(
        default=["latest"],
        description="Tags refused because they move (e.g. add `main`, `dev`).",
    )
    allow_untagged: bool = Field(
        default=False,
        description="Admit images with neither tag nor digest. The runtime pulls "
        "`latest` for them, so they are refused by default.",
    )


@policy(
    "disallow-latest-tag",
    title="Images are not `latest` or untagged",
    category="supply-chain",
    severity="medium",
    params=DisallowLatestTag,
)
def disallow_latest_tag(pod: PodView, params: DisallowLatestTag) -> Iterator[Violation]:
    """Every image (init and ephemeral containers included) names a version
    tag or a digest. A digest pins the image whatever the tag says, so
    `nginx:latest@sha256:...` passes."""
    for container in pod.containers():
        image = container.image
        if not isinstance(image, str):
            continue  # no image at all: the API server refuses it, nothing to add
        try:
            ref = parse_image(image)
        except InvalidImage:
            continue  # not a reference; require-image-digest reports malformed images
        if ref.digest is not None:
            continue
        fix = f"pin a version ({ref.name}:<version>) or a digest ({ref.name}@sha256:<digest>)"
        if ref.tag is None and not params.allow_untagged:
            yield Violation(
                f"{container.label} image {image!r} has no tag, so it runs whatever "
                "'latest' is when the node pulls it",
                container=container.name,
                field=container.field("image"),
                fix=fix,
            )
        elif ref.tag in params.tags:
            yield Violation(
                f"{container.label} image {image!r} uses the moving tag {ref.tag!r}",
                container=container.name,
                field=container.field("image"),
                fix=fix,
            )
