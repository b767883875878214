"""requirements.lock, which the image installs from, agrees with pyproject.toml.

The lock is pip-compile's output (the Dockerfile's header gives the command):
every package pinned with `==` and its sha256 hashes, and `# via` lines saying
who needs it. These tests fail when pyproject gains, loses or narrows a
dependency the lock does not follow, so the image never silently installs
something other than what the project declares.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements.lock"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
RUNTIME = "podgate (pyproject.toml)"
# The image installs the `tracing` extra too: the chart can switch tracing on.
IMAGE_EXTRAS = ("tracing",)
RUNTIME_SPECS: list[str] = PYPROJECT["project"]["dependencies"] + [
    spec for extra in IMAGE_EXTRAS for spec in PYPROJECT["project"]["optional-dependencies"][extra]
]
BUILD = "podgate (pyproject.toml::build-system.requires)"
RECOMPILE = "re-run the pip-compile command in the Dockerfile's header"


@dataclass
class Pin:
    name: str
    version: Version
    hashes: list[str] = field(default_factory=list)
    via: list[str] = field(default_factory=list)


def parse_lock(text: str) -> dict[str, Pin]:
    pins: dict[str, Pin] = {}
    current: Pin | None = None
    for raw in text.splitlines():
        line = raw.strip()
        pin = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^ \\]+)", raw)
        if pin:
            current = Pin(canonicalize_name(pin[1]), Version(pin[2]))
            pins[current.name] = current
        elif current and line.startswith("--hash="):
            current.hashes.append(line.removeprefix("--hash=").rstrip(" \\"))
        elif current and line.startswith("#"):
            who = line.lstrip("#").strip().removeprefix("via").strip()
            if who and not who.startswith("The following packages"):
                current.via.append(who)
    return pins


PINS = parse_lock(LOCK.read_text(encoding="utf-8"))


def _requirements(specs: list[str]) -> list[Requirement]:
    return [Requirement(s) for s in specs]


def test_the_lock_parses_into_pins() -> None:
    # Guards the parser itself: a lock it cannot read would make the rest pass.
    assert len(PINS) >= len(PYPROJECT["project"]["dependencies"])
    assert all(p.via for p in PINS.values()), [p.name for p in PINS.values() if not p.via]


@pytest.mark.parametrize(
    ("specs", "marker"),
    [
        (RUNTIME_SPECS, RUNTIME),
        (PYPROJECT["build-system"]["requires"], BUILD),
    ],
    ids=["dependencies", "build-system"],
)
def test_every_declared_requirement_is_pinned_within_its_range(
    specs: list[str], marker: str
) -> None:
    for req in _requirements(specs):
        pin = PINS.get(canonicalize_name(req.name))
        assert pin is not None, f"{req.name} is not in requirements.lock; {RECOMPILE}"
        assert req.specifier.contains(pin.version, prereleases=True), (
            f"requirements.lock pins {pin.name}=={pin.version}, outside {req}; {RECOMPILE}"
        )
        assert marker in pin.via, f"{pin.name} is not marked as needed by {marker}"


def test_the_lock_declares_nothing_pyproject_does_not() -> None:
    declared = {
        canonicalize_name(r.name)
        for r in _requirements(RUNTIME_SPECS + PYPROJECT["build-system"]["requires"])
    }
    direct = {p.name for p in PINS.values() if RUNTIME in p.via or BUILD in p.via}
    assert direct == declared, f"lock and pyproject disagree; {RECOMPILE}"


def test_every_pin_is_needed_by_something_pinned() -> None:
    # A package whose only dependants left the lock is a leftover.
    for pin in PINS.values():
        needers = {canonicalize_name(v.split(" ")[0]) for v in pin.via if v not in (RUNTIME, BUILD)}
        direct = RUNTIME in pin.via or BUILD in pin.via
        assert direct or needers & PINS.keys(), f"nothing pinned needs {pin.name}: {pin.via}"


def test_every_pin_carries_sha256_hashes() -> None:
    for pin in PINS.values():
        assert pin.hashes, f"{pin.name} has no --hash; {RECOMPILE}"
        assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in pin.hashes), pin.name


def test_the_lock_names_no_index_or_local_path() -> None:
    text = LOCK.read_text(encoding="utf-8")
    options = [
        line
        for line in text.splitlines()
        if line.startswith("-") and not line.lstrip().startswith("--hash")
    ]
    assert options == [], "the lock must not name an index or a local wheel folder"
    assert "://" not in text
