"""`podgate test`'s cases, read from suites and fixture folders (the way
`kyverno test` and Polaris fixtures work).

Two layouts are discovered under each PATH:

* explicit suites, files named `podgate-test.yaml`:

      name: team labels
      config: {policies: {require-team-label: {labels: [team]}}}   # optional; or a
                                              # config file's path, relative to the suite
      plugins: [policy.py]                    # optional, relative to the suite; loads
                                              # the code under test from source (else:
                                              # --config's policies, or the installed ones)
      resources: [resources.yaml]
      results:
        - policy: require-team-label
          resource: Deployment/web            # Kind/name or Kind/namespace/name
          result: fail                        # pass | fail | skip | error
          messages: ["no team label"]         # optional substrings
        - mutation: default-resources
          resource: Pod/web
          patched: web.patched.yaml           # the expected mutated object

* fixture folders named after a policy or mutation id (podgate's own
  `tests/policies/<id>/`): `pass-*.yaml`, `fail-*.yaml`, `skip-*.yaml` for a
  policy, `<case>.yaml` + `<case>.patched.yaml` for a mutation. A fixture may
  start with comment headers: `# params: {json}`, `# expect: substring`,
  `# expect-action: warn`, `# cluster: offline|unsynced|synced`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from policies.config import (
    Config,
    ConfigError,
    ConfigFile,
    format_validation_error,
    parse_config_file,
    resolve,
)
from policies.model import Action, ClusterState
from policies.plugins import PluginError, load_registry
from policies.registry import Registry
from policies.yaml_reading import load_yaml, yaml_problem
from webhook.cli.manifests import Document, parse_text

SUITE_FILE = "podgate-test.yaml"
EXPECTED = ("pass", "fail", "skip", "error")


class SuiteError(ValueError):
    """A suite that cannot run; the message names the file."""


@dataclass(frozen=True)
class Case:
    """One expectation: a policy's result, or a mutation's output, on one resource."""

    suite: str  # the suite file or fixture folder
    name: str
    config: Config
    documents: tuple[Document, ...]
    target: str  # the document's resource key, or "" for every workload in the file
    policy: str | None = None
    mutation: str | None = None
    result: str = "pass"
    messages: tuple[str, ...] = ()
    action: str | None = None
    patched: tuple[dict[str, Any], ...] | None = None
    cluster: ClusterState = ClusterState.SYNCED


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(f"{path}: cannot read: {exc}") from exc


def _read_documents(path: Path) -> list[Document]:
    documents = list(parse_text(_text(path), str(path)))
    broken = [d for d in documents if d.obj is None]
    if broken:
        raise SuiteError(f"{broken[0].where}: {broken[0].error}")
    return documents


def _suite_file(suite: Path, key: str, path: Path) -> list[Document]:
    """The documents of a file a suite names, an error naming the suite and key."""
    try:
        return _read_documents(path)
    except SuiteError as exc:
        raise SuiteError(f"{suite}: {key}: {exc}") from exc


def scoped(registry: Registry, raw: ConfigFile, keep: set[str], source: str) -> Config:
    """A config where everything but the policies under test is switched off."""
    policies: dict[str, dict[str, Any] | None] = {
        pid: {**(raw.policies.get(pid) or {}), **({} if pid in keep else {"action": "off"})}
        for pid in registry.policies
    }
    mutations: dict[str, dict[str, Any] | None] = {
        mid: {**(raw.mutations.get(mid) or {}), "enabled": mid in keep}
        for mid in registry.mutations
    }
    narrowed = raw.model_copy(update={"policies": policies, "mutations": mutations})
    return resolve(narrowed, registry, source)


class _ResultSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    policy: str | None = None
    mutation: str | None = None
    resource: str
    result: str | None = None
    messages: list[str] = Field(default_factory=list)
    action: str | None = None
    patched: str | None = None


class _SuiteSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    # the config inline, or a config file beside the suite (a preset): its
    # parameters, actions and plugins, as `podgate check --config` loads them
    config: dict[str, Any] | str = Field(default_factory=dict)
    plugins: list[str] = Field(default_factory=list)
    resources: list[str] = Field(min_length=1)
    results: list[_ResultSpec] = Field(min_length=1)
    cluster: ClusterState = ClusterState.SYNCED


def _invalid(path: Path, exc: ValidationError) -> SuiteError:
    """The `field: reason` lines --config gives, each naming the file."""
    lines = format_validation_error(exc).splitlines()
    return SuiteError("\n".join(f"{path}: {line}" for line in lines))


def load_suite(path: Path, base: Registry | None) -> list[Case]:
    try:
        data = load_yaml(_text(path))
        spec = _SuiteSpec.model_validate(data)
    except yaml.YAMLError as exc:
        raise SuiteError(f"{path}: invalid YAML{yaml_problem(exc)}") from exc
    except ValidationError as exc:
        raise _invalid(path, exc) from exc
    try:
        if isinstance(spec.config, str):
            raw, registry = _config_file(path, spec.config, spec.plugins)
        elif spec.plugins:
            # Self-contained: the built-ins plus the code under test, loaded
            # from source. Not on top of --config's registry, which may load
            # the same files (a folder of plugins) and would then clash on ids.
            raw = ConfigFile.model_validate({**spec.config, "plugins": [], "entry_points": False})
            registry = load_registry(spec.plugins, base=path.parent, entry_points=False)
        else:
            # The policies as deployed: --config's registry, or the built-ins
            # plus installed plugin packages (entry points).
            raw = ConfigFile.model_validate({**spec.config, "plugins": [], "entry_points": False})
            registry = base if base is not None else load_registry()
    except ValidationError as exc:
        raise _invalid(path, exc) from exc
    except PluginError as exc:
        raise SuiteError(f"{path}: {exc}") from exc
    documents = tuple(
        d for r in spec.resources for d in _suite_file(path, "resources", path.parent / r)
    )
    cases: list[Case] = []
    for index, expect in enumerate(spec.results):
        target_id = expect.policy or expect.mutation
        if (expect.policy is None) == (expect.mutation is None):
            raise SuiteError(f"{path}: results[{index}]: give exactly one of policy or mutation")
        assert target_id is not None
        if target_id not in registry.ids():
            raise SuiteError(f"{path}: results[{index}]: no policy or mutation {target_id!r}")
        if expect.policy is not None and expect.policy not in registry.policies:
            raise SuiteError(
                f"{path}: results[{index}]: {target_id!r} is a mutation: "
                "write `mutation:` with `patched:`, the expected object"
            )
        if expect.mutation is not None and expect.mutation not in registry.mutations:
            raise SuiteError(
                f"{path}: results[{index}]: {target_id!r} is a validating policy: "
                "write `policy:` with `result:` (pass, fail, skip or error)"
            )
        if expect.policy is not None and expect.result not in EXPECTED:
            raise SuiteError(f"{path}: results[{index}].result must be one of {EXPECTED}")
        if expect.policy is not None and expect.patched is not None:
            raise SuiteError(
                f"{path}: results[{index}]: `patched` is for a mutation; "
                f"{target_id!r} is a validating policy (expect a `result`)"
            )
        actions = tuple(str(a) for a in Action)
        if expect.action is not None and expect.action not in actions:
            raise SuiteError(f"{path}: results[{index}].action must be one of {actions}")
        patched = None
        if expect.mutation is not None:
            if expect.patched is None:
                raise SuiteError(f"{path}: results[{index}]: a mutation needs `patched`")
            expected = _suite_file(path, f"results[{index}].patched", path.parent / expect.patched)
            patched = tuple(d.obj for d in expected if d.obj is not None)
        try:
            config = scoped(registry, raw, {target_id}, str(path))
        except ConfigError as exc:
            raise SuiteError(f"{path}: {exc}") from exc
        cases.append(
            Case(
                suite=str(path),
                name=f"{spec.name or path.parent.name}: {target_id} on {expect.resource}",
                config=config,
                documents=documents,
                target=expect.resource,
                policy=expect.policy,
                mutation=expect.mutation,
                result=expect.result or "pass",
                messages=tuple(expect.messages),
                action=expect.action,
                patched=patched,
                cluster=spec.cluster,
            )
        )
    return cases


def _config_file(suite: Path, name: str, plugins: list[str]) -> tuple[ConfigFile, Registry]:
    """A config file a suite names (relative to it), and the registry its
    plugins make; the suite's own `plugins:` would make a second one."""
    if plugins:
        raise SuiteError(f"{suite}: give plugins in the config file {name}, not beside it")
    file = suite.parent / name
    try:
        raw = parse_config_file(_text(file), str(file))
        return raw, load_registry(raw.plugins, base=file.parent, entry_points=raw.entry_points)
    except ConfigError as exc:
        raise SuiteError(f"{suite}: config: {exc}") from exc


def _headers(path: Path) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for line in _text(path).splitlines():
        if not line.startswith("#"):
            break
        key, sep, value = line[1:].strip().partition(":")
        if sep:
            headers.setdefault(key.strip(), []).append(value.strip())
    return headers


def _cluster(file: Path, value: str) -> ClusterState:
    try:
        return ClusterState(value)
    except ValueError as exc:
        states = ", ".join(str(state) for state in ClusterState)
        raise SuiteError(f"{file}: the cluster header must be one of {states}") from exc


def load_fixtures(folder: Path, registry: Registry) -> list[Case]:
    """The cases of a `tests/policies/<id>/` fixture folder."""
    target = folder.name
    is_mutation = target in registry.mutations
    cases: list[Case] = []
    for file in sorted(folder.glob("*.yaml")):
        if file.name.endswith(".patched.yaml"):
            continue
        headers = _headers(file)
        try:
            params = json.loads(headers["params"][0]) if "params" in headers else {}
        except ValueError as exc:
            raise SuiteError(f"{file}: the params header is not JSON: {exc}") from exc
        section = "mutations" if is_mutation else "policies"
        if not isinstance(params, dict):
            raise SuiteError(f"{file}: the params header must be a JSON object")
        try:
            raw = ConfigFile.model_validate({section: {target: params}, "entry_points": False})
            config = scoped(registry, raw, {target}, str(file))
        except ValidationError as exc:
            raise _invalid(file, exc) from exc
        except ConfigError as exc:
            raise SuiteError(f"{file}: {exc}") from exc
        cluster = _cluster(file, headers.get("cluster", ["synced"])[0])
        documents = tuple(_read_documents(file))
        if is_mutation:
            patched_file = file.with_name(file.name[: -len(".yaml")] + ".patched.yaml")
            patched = (
                tuple(d.obj for d in _read_documents(patched_file) if d.obj is not None)
                if patched_file.exists()
                else None  # no expected file: the mutation must change nothing
            )
            cases.append(
                Case(
                    str(folder),
                    file.stem,
                    config,
                    documents,
                    "",
                    mutation=target,
                    patched=patched,
                    cluster=cluster,
                )
            )
            continue
        expected = file.name.split("-", 1)[0]
        if expected not in EXPECTED:
            raise SuiteError(f"{file}: a fixture name starts with pass-, fail-, skip- or error-")
        cases.append(
            Case(
                str(folder),
                file.stem,
                config,
                documents,
                "",
                policy=target,
                result=expected,
                messages=tuple(headers.get("expect", [])),
                action=headers["expect-action"][0] if "expect-action" in headers else None,
                cluster=cluster,
            )
        )
    return cases


def discover(paths: Sequence[str], registry: Registry | None = None) -> Iterator[Case]:
    """Every case under the paths: suites by file name, fixture folders by policy id."""
    # Installed plugin packages count: their fixture folders run without --config.
    fixture_registry = registry or load_registry()
    for raw in paths:
        root = Path(raw)
        if not root.exists():
            raise SuiteError(f"{raw}: no such file or folder")
        if root.is_file():
            yield from load_suite(root, registry)
            continue
        # A suite's plugins (loaded from source) also serve the fixture
        # folders below its own folder: a package's tests run before install.
        suite_registries: dict[Path, Registry] = {}
        for suite in sorted(root.rglob(SUITE_FILE)):
            cases = load_suite(suite, registry)
            if cases:
                suite_registries[suite.parent] = cases[0].config.registry
            yield from cases
        for folder in sorted([root, *(p for p in root.rglob("*") if p.is_dir())]):
            if (folder / SUITE_FILE).exists():
                continue
            owner = _fixture_registry(folder, suite_registries, fixture_registry)
            if owner is not None:
                yield from load_fixtures(folder, owner)
            elif _holds_fixtures(folder):
                raise SuiteError(
                    f"{folder}: fixtures for {folder.name!r}, which no suite above it and no "
                    "installed package defines; pass --config with the plugin that does"
                )


def _fixture_registry(
    folder: Path, suites: Mapping[Path, Registry], default: Registry
) -> Registry | None:
    """The registry that defines the folder's policy: the nearest suite's above it, else
    `default`; None when none does."""
    for parent in folder.parents:
        found = suites.get(parent)
        if found is not None and folder.name in found.ids():
            return found
    return default if folder.name in default.ids() else None


def _holds_fixtures(folder: Path) -> bool:
    """A folder of fixtures only: every YAML file a `pass-`/`fail-`/`skip-`/`error-`
    case, or a mutation case and its `.patched.yaml`. A folder of manifests that
    happens to hold an `error-pages.yaml` is not one."""
    files = [f.name for f in folder.glob("*.yaml")]
    patched = {n.removesuffix(".patched.yaml") for n in files if n.endswith(".patched.yaml")}

    def fixture(name: str) -> bool:
        stem = name.removesuffix(".yaml").removesuffix(".patched")
        return name.split("-", 1)[0] in EXPECTED or stem in patched

    return bool(files) and all(fixture(n) for n in files)
