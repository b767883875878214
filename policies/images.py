"""Container image references, parsed the way the container runtime reads them.

The grammar is the one of distribution/reference: `[registry/]path[:tag][@digest]`.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Za-z=_+.-]{32,}"
_REFERENCE = re.compile(rf"^(?P<name>{_NAME})(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$")
SHA256_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
# The longest reference the grammar allows: a 255-character name, a
# 128-character tag and a sha512 digest, with room to spare. Anything longer
# is refused at once, without the parse: a multi-megabyte reference would
# take seconds to parse.
MAX_REFERENCE_LENGTH = 1024


@dataclass(frozen=True, slots=True)
class ImageRef:
    name: str
    tag: str | None
    digest: str | None
    # Pinned by a sha256 digest written the way registries write it. A field,
    # worked out once: references are parsed once (cached) and asked often.
    pinned: bool = False

    @property
    def registry(self) -> str:
        """The registry host, with Docker Hub's implicit default made explicit."""
        first, sep, _ = self.name.partition("/")
        if sep and ("." in first or ":" in first or first == "localhost"):
            return first
        return "docker.io"


class InvalidImage(ValueError):
    pass


@functools.lru_cache(maxsize=4096)
def parse_image(reference: str) -> ImageRef:
    """Parse an image reference, or raise InvalidImage saying what is wrong.

    Cached: a cluster runs few distinct images, and admission sees them again
    and again.
    """
    if len(reference) > MAX_REFERENCE_LENGTH:
        raise InvalidImage(
            f"image {reference[:64]!r}... is {len(reference)} characters long, "
            f"over the {MAX_REFERENCE_LENGTH} an image reference can have"
        )
    if reference != reference.strip() or any(c.isspace() for c in reference):
        raise InvalidImage(f"image {reference!r} contains whitespace")
    if not reference:
        raise InvalidImage("image is empty")
    match = _REFERENCE.match(reference)
    if match is None:
        if reference != reference.lower() and "@" not in reference:
            raise InvalidImage(f"image {reference!r} is not a valid reference (uppercase name?)")
        raise InvalidImage(f"image {reference!r} is not a valid image reference")
    digest = match["digest"]
    pinned = digest is not None and SHA256_DIGEST.match(digest) is not None
    return ImageRef(match["name"], match["tag"], digest, pinned)


@functools.lru_cache(maxsize=4096)
def _compile_globs(globs: frozenset[str]) -> re.Pattern[str]:
    return re.compile("|".join(fnmatch.translate(g) for g in sorted(globs)) or "(?!)")


def image_matches(image: str, globs: Iterable[str]) -> bool:
    """True when the image matches one of the shell-style globs (`*` spans `/`)."""
    if not globs:
        return False
    frozen = globs if isinstance(globs, frozenset) else frozenset(globs)
    return _compile_globs(frozen).match(image) is not None
