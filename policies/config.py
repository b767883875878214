"""The config: one YAML file, validated by pydantic, resolved against the registry.

Loading happens in two steps. The file is first validated as a `ConfigFile`
(global settings, raw per-policy sections). Then the plugins it names are
loaded and every policy section is validated against that policy's own Params
model, so a typo in a parameter fails at load with its full path.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
)

from policies.model import Action, Mode
from policies.plugins import load_registry
from policies.registry import Mutation, Params, Policy, Registry
from policies.yaml_reading import load_yaml, yaml_problem


class ConfigError(ValueError):
    """A config that cannot be used; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Exemptions(_Strict):
    namespaces: list[str] = Field(
        default=["kube-system"],
        description="Namespace globs never evaluated or mutated.",
    )
    images: list[str] = Field(
        default_factory=list,
        description="Image globs whose containers are left out of every policy.",
    )
    allow_annotation: bool = Field(
        default=False,
        description="Honour the `podgate.dev/exempt: <id>,<id>|*` annotation on objects. Off "
        "by default: whoever may create a Pod could otherwise exempt it from any policy.",
    )
    annotation_policies: list[Annotated[str, Field(min_length=1)]] = Field(
        default=["*"],
        description="With `allow_annotation`: the policies and mutations the annotation may "
        "exempt from (ids; `*`: any). An id outside this list is ignored.",
    )
    annotation_namespaces: list[Annotated[str, Field(min_length=1)]] = Field(
        default=["*"],
        description="With `allow_annotation`: namespace globs where the annotation is "
        "honoured; elsewhere it is ignored.",
    )


def _off_is_false(value: object) -> object:
    """YAML 1.1 reads an unquoted `off` as false; in an action it means `off`."""
    return "off" if value is False else value


# What JSON Schema (the chart's values.schema.json) says of an action: helm reads
# values as YAML 1.1 too, so an unquoted `off` arrives as false.
ActionSetting = Annotated[
    Action,
    BeforeValidator(_off_is_false),
    WithJsonSchema({"enum": [*(a.value for a in Action), False]}),
]


def _not_a_boolean(value: object) -> object:
    """`budget_ms: true` is a mistake, not 1 ms."""
    if isinstance(value, bool):
        raise ValueError("Input should be a number of milliseconds, not a boolean")
    return value


# Finite, positive, and within the API server's longest webhook timeout (30 s).
BudgetMs = Annotated[
    float,
    BeforeValidator(_not_a_boolean),
    Field(gt=0, le=30_000, allow_inf_nan=False),
    WithJsonSchema({"type": "number", "exclusiveMinimum": 0, "maximum": 30_000}),
]


# kube-controller-manager acts with a service account per controller
# (--use-service-account-credentials, kubeadm's default) or as itself.
KUBE_CONTROLLERS = (
    "system:kube-controller-manager",
    *(
        f"system:serviceaccount:kube-system:{name}"
        for name in (
            "replicaset-controller",
            "replication-controller",
            "statefulset-controller",
            "daemon-set-controller",
            "job-controller",
            "deployment-controller",
            "cronjob-controller",
        )
    ),
)


class CommonSettings(_Strict):
    """Keys every policy section accepts besides its own parameters."""

    action: ActionSetting | None = None
    failure_action: ActionSetting | None = None
    budget_ms: BudgetMs | None = None


class ConfigFile(_Strict):
    enforcement: Literal["enforce", "audit"] = Field(
        default="enforce",
        description="`audit` is the dry-run audit mode: nothing is refused, every would-be "
        "denial is returned as a warning and recorded.",
    )
    policies: dict[str, dict[str, Any] | None] = Field(default_factory=dict)
    mutations: dict[str, dict[str, Any] | None] = Field(default_factory=dict)
    exemptions: Exemptions = Field(default_factory=Exemptions)
    plugins: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list,
        description="Extra policy modules: importable names, .py files or folders.",
    )
    entry_points: bool = Field(
        default=True, description="Load policies from installed `podgate.policies` packages."
    )
    failure_action: ActionSetting | None = Field(
        default=None,
        description="What a policy decides for an object it could not evaluate (it raised, "
        "ran over its budget, or the deadline passed), unless its section says otherwise. "
        "Unset: the policy's own action, so a deny policy refuses what it could not check.",
    )
    budget_ms: BudgetMs = Field(
        default=250.0,
        description="CPU time one policy may spend on one object; over it, the result is an "
        "error decided by the failure action, for that object only.",
    )
    unsynced_action: ActionSetting = Field(
        default=Action.WARN,
        description="The strongest action a cluster-dependent policy (require-network-policy) "
        "may take while the cluster cache is not synced: never deny on stale data.",
    )
    allow_existing_violations: bool = Field(
        default=True,
        description="On an UPDATE that changes the pod template, a denial the object had "
        "already is a warning: objects admitted before podgate (or in audit mode) can still "
        "be changed and fixed one rule at a time; an update that adds a violation is refused. "
        "What one of `controllers` writes for its workload is judged at most as warnings. "
        "`false`: both are judged in full.",
    )
    controllers: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=lambda: list(KUBE_CONTROLLERS),
        description="The users that write Pods, ReplicaSets and Jobs for their workloads. "
        "What one of them creates or changes under a controller ownerReference naming a "
        "workload kind is judged at most as warnings (policies reading the cluster aside): "
        "that workload's template was judged. kube-controller-manager's identities by "
        "default; a control plane that runs its controllers under other names needs them here.",
    )


@dataclass(frozen=True)
class PolicySettings:
    action: Action
    failure_action: Action
    budget_s: float
    params: Params


@dataclass(frozen=True)
class MutationSettings:
    enabled: bool
    params: Params


@dataclass(frozen=True)
class Config:
    """A config resolved against a registry: what the engine runs with."""

    registry: Registry
    enforcement: Mode = Mode.ENFORCE
    policies: Mapping[str, PolicySettings] = field(default_factory=dict)
    mutations: Mapping[str, MutationSettings] = field(default_factory=dict)
    exemptions: Exemptions = field(default_factory=Exemptions)
    unsynced_action: Action = Action.WARN
    source: str = "<built-in defaults>"
    raw: ConfigFile = field(default_factory=ConfigFile)

    @functools.cached_property
    def controllers(self) -> frozenset[str]:
        return frozenset(self.raw.controllers)

    @functools.cached_property
    def exempt_images(self) -> frozenset[str]:
        return frozenset(self.exemptions.images)

    @functools.cached_property
    def _exempt_namespace(self) -> re.Pattern[str]:
        globs = self.exemptions.namespaces
        return re.compile("|".join(fnmatch.translate(g) for g in globs) or "(?!)")

    def namespace_exempt(self, namespace: str) -> bool:
        return self._exempt_namespace.match(namespace) is not None

    @functools.cached_property
    def _annotation_namespace(self) -> re.Pattern[str]:
        globs = self.exemptions.annotation_namespaces
        return re.compile("|".join(fnmatch.translate(g) for g in globs) or "(?!)")

    def annotation_exempts(self, namespace: str, asked: frozenset[str]) -> frozenset[str]:
        """What the `podgate.dev/exempt` annotation may exempt an object of
        `namespace` from, of the ids it names (`*` among them: everything allowed)."""
        exemptions = self.exemptions
        if not exemptions.allow_annotation or not self._annotation_namespace.match(namespace):
            return frozenset()
        allowed = frozenset(exemptions.annotation_policies)
        if "*" in allowed:
            return asked
        return allowed if "*" in asked else asked & allowed

    @functools.cached_property
    def active_policies(self) -> tuple[tuple[str, Policy[Any], PolicySettings], ...]:
        """The policies not switched off, in registry order: worked out once per
        config rather than on every admission."""
        return tuple(
            (pid, pol, self.policies[pid])
            for pid, pol in self.registry.policies.items()
            if self.policies[pid].action is not Action.OFF
        )

    @functools.cached_property
    def active_mutations(self) -> tuple[tuple[Mutation[Any], Params], ...]:
        """The enabled mutations with their parameters, in registry order."""
        return tuple(
            (mut, self.mutations[mid].params)
            for mid, mut in self.registry.mutations.items()
            if self.mutations[mid].enabled
        )

    def describe(self) -> list[dict[str, Any]]:
        """Every policy and mutation with its metadata, action and parameters."""
        rows: list[dict[str, Any]] = []
        for pid, pol in self.registry.policies.items():
            settings = self.policies[pid]
            rows.append(
                {
                    **pol.meta.as_dict(),
                    "type": "validating",
                    "action": str(settings.action),
                    "failure_action": str(settings.failure_action),
                    "params": settings.params.model_dump(mode="json"),
                }
            )
        for mid, mut in self.registry.mutations.items():
            msettings = self.mutations[mid]
            rows.append(
                {
                    **mut.meta.as_dict(),
                    "type": "mutating",
                    "action": "on" if msettings.enabled else "off",
                    "params": msettings.params.model_dump(mode="json"),
                }
            )
        return rows


def format_validation_error(
    exc: ValidationError, prefix: Sequence[str | int] = (), known_keys: str = ""
) -> str:
    """One line per problem: `policies.require-resources.require[0]: Input should be ...`.

    `known_keys` follows the line of an unknown key at the top of the
    section: a misspelt parameter then says which ones there are.
    """
    lines = []
    for error in exc.errors():
        parts: list[str | int] = [*prefix, *error["loc"]]
        path = ""
        for part in parts:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        # A validator's own ValueError reads "Value error, <its message>": the
        # message says it all.
        message = error["msg"].removeprefix("Value error, ")
        if known_keys and error["type"] == "extra_forbidden" and len(error["loc"]) == 1:
            message += f" (it takes {known_keys})"
        lines.append(f"{path or '<root>'}: {message}")
    return "\n".join(lines)


def _split_section(
    section: Mapping[str, Any] | None, where: str
) -> tuple[CommonSettings, dict[str, Any]]:
    section = dict(section or {})
    common_keys = set(CommonSettings.model_fields)
    common = {k: section.pop(k) for k in list(section) if k in common_keys}
    try:
        return CommonSettings(**common), section
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, where.split("."))) from exc


def _params(
    model: type[Params], values: Mapping[str, Any], where: str, common: Iterable[str]
) -> Params:
    """The section's parameters; `common` are the other keys it takes (action...)."""
    try:
        return model.model_validate(dict(values))
    except ValidationError as exc:
        known = ", ".join(sorted({*model.model_fields, *common}))
        raise ConfigError(format_validation_error(exc, where.split("."), known)) from exc


def resolve(raw: ConfigFile, registry: Registry, source: str = "<built-in defaults>") -> Config:
    """Validate every section against its policy's Params; refuse unknown ids."""
    unknown = [
        f"policies.{pid}: "
        + (
            "a mutation: configure it under mutations:"
            if pid in registry.mutations
            else f"no such policy (known: {', '.join(sorted(registry.policies))})"
        )
        for pid in raw.policies
        if pid not in registry.policies
    ] + [
        f"mutations.{mid}: "
        + (
            "a validating policy: configure it under policies:"
            if mid in registry.policies
            else f"no such mutation (known: {', '.join(sorted(registry.mutations))})"
        )
        for mid in raw.mutations
        if mid not in registry.mutations
    ]
    known = {*registry.policies, *registry.mutations, "*"}
    unknown += [
        f"exemptions.annotation_policies[{index}]: no such policy or mutation: {pid}"
        for index, pid in enumerate(raw.exemptions.annotation_policies)
        if pid not in known
    ]
    if unknown:
        raise ConfigError("\n".join(unknown))
    policies: dict[str, PolicySettings] = {}
    for pid, pol in registry.policies.items():
        where = f"policies.{pid}"
        common, values = _split_section(raw.policies.get(pid), where)
        action = common.action or pol.meta.default_action
        policies[pid] = PolicySettings(
            action=action,
            failure_action=common.failure_action or raw.failure_action or action,
            budget_s=(common.budget_ms or raw.budget_ms) / 1000.0,
            params=_params(pol.meta.params, values, where, CommonSettings.model_fields),
        )
    mutations: dict[str, MutationSettings] = {}
    for mid, mut in registry.mutations.items():
        where = f"mutations.{mid}"
        values = dict(raw.mutations.get(mid) or {})
        enabled = values.pop("enabled", True)
        if not isinstance(enabled, bool):
            raise ConfigError(f"{where}.enabled: Input should be a valid boolean")
        mutations[mid] = MutationSettings(
            enabled=enabled, params=_params(mut.meta.params, values, where, ("enabled",))
        )
    return Config(
        registry=registry,
        enforcement=Mode(raw.enforcement),
        policies=policies,
        mutations=mutations,
        exemptions=raw.exemptions,
        unsynced_action=raw.unsynced_action,
        source=source,
        raw=raw,
    )


def parse_config_file(text: str, source: str) -> ConfigFile:
    try:
        data = load_yaml(text)  # as a manifest is read: safe, a key given twice refused
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML{yaml_problem(exc)}") from exc
    if data is None:
        # an emptied file is a mistake, not a wish for the defaults: `{}` says that
        raise ConfigError(f"{source}: the config is empty; write {{}} for the built-in defaults")
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the config must be a mapping, got {type(data).__name__}")
    try:
        return ConfigFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            "\n".join(f"{source}: {line}" for line in format_validation_error(exc).splitlines())
        ) from exc


def load_config(path: str | Path | None = None, *, registry: Registry | None = None) -> Config:
    """The config from a file (or the built-in defaults), with its plugins loaded.

    `registry` replaces the built-in one (tests); plugins are added to it.
    """
    if path is None:
        raw, source, base = ConfigFile(), "<built-in defaults>", Path.cwd()
    else:
        file = Path(path)
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{file}: cannot read the config: {exc}") from exc
        raw, source, base = parse_config_file(text, str(file)), str(file), file.parent
    full = load_registry(raw.plugins, base=base, entry_points=raw.entry_points, registry=registry)
    try:
        return resolve(raw, full, source)
    except ConfigError as exc:
        raise ConfigError("\n".join(f"{source}: {line}" for line in str(exc).splitlines())) from exc
