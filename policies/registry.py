"""The `@policy` and `@mutation` decorators, and the registry that holds them.

A decorator does not register anything globally: it turns a function into a
`Policy` (or `Mutation`) carrying frozen metadata, and a registry is built by
collecting those objects from modules. That keeps plugin loading all-or-nothing
(a module that fails to import adds nothing) and lets tests build their own
registry from a handful of functions.
"""

from __future__ import annotations

import enum
import inspect
import re
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Generic, NamedTuple, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from policies.model import Action, Context, Violation
from policies.views import PodView
from policies.workloads import POD_KINDS


class Severity(enum.StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class Params(BaseModel):
    """Base class for a policy's parameters. Unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(Params):
    """For policies without parameters."""


class Example(NamedTuple):
    """A manifest a policy refuses and the same manifest fixed (YAML, one or
    more documents), shown by `podgate explain` and checked by the tests."""

    fails: str
    passes: str


P = TypeVar("P", bound=Params)

# What a policy returns in the common cases, accepted without further checks:
# this runs for every policy on every admission.
_VIOLATION_CONTAINERS = (list, tuple, types.GeneratorType)

_ID = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_INJECTABLE = ("pod", "params", "ctx")


class PolicyDefinitionError(ValueError):
    """A policy or mutation is declared wrongly; the message names it and its file."""


def _where(func: Callable[..., object]) -> str:
    code = getattr(func, "__code__", None)
    name = getattr(func, "__qualname__", repr(func))
    if code is None:
        return name
    return f"{name} ({code.co_filename}:{code.co_firstlineno})"


def _arguments(func: Callable[..., object]) -> tuple[str, ...]:
    """The injectable arguments a function asks for, checked once at definition."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError) as exc:
        raise PolicyDefinitionError(f"{_where(func)}: cannot read its signature") from exc
    names = tuple(signature.parameters)
    unknown = [n for n in names if n not in _INJECTABLE]
    if unknown:
        raise PolicyDefinitionError(
            f"{_where(func)}: unknown argument(s) {', '.join(unknown)}; "
            f"a policy or mutation may take any of: {', '.join(_INJECTABLE)}"
        )
    return names


@dataclass(frozen=True)
class Metadata:
    """What a policy or mutation declares about itself. Frozen: it is shared."""

    id: str
    title: str
    category: str
    severity: Severity
    kinds: frozenset[str]
    description: str
    params: type[Params]
    default_action: Action = Action.DENY
    concerns_ephemeral: bool = True  # evaluated for pods/ephemeralcontainers updates
    requires_cluster: bool = False  # needs cluster state from the Context
    example: Example | None = None
    origin: str = ""  # set when collected: "builtin", "module:x", "file:x.py", ...

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "category": self.category,
            "severity": str(self.severity),
            "kinds": sorted(self.kinds),
            "description": self.description,
            "origin": self.origin,
        }


@dataclass(frozen=True)
class _Callable(Generic[P]):
    meta: Metadata
    func: Callable[..., Any]
    arguments: tuple[str, ...]

    def _call(self, pod: PodView, params: P, ctx: Context) -> Any:
        # The common signatures are spelled out: this runs for every policy on
        # every admission, and building a kwargs dict each time shows up.
        func, arguments = self.func, self.arguments
        if arguments == ("pod",):
            return func(pod)
        if arguments == ("pod", "params"):
            return func(pod, params)
        if arguments == ("pod", "params", "ctx"):
            return func(pod, params, ctx)
        available = {"pod": pod, "params": params, "ctx": ctx}
        return func(**{name: available[name] for name in arguments})

    def with_origin(self, origin: str) -> Any:
        return replace(self, meta=replace(self.meta, origin=origin))


@dataclass(frozen=True)
class Policy(_Callable[P]):
    """A validating policy: yields the Violations it finds on a pod view."""

    def evaluate(self, pod: PodView, params: P, ctx: Context) -> list[Violation]:
        found = self._call(pod, params, ctx)
        if found is None:
            return []
        if type(found) not in _VIOLATION_CONTAINERS and (
            isinstance(found, str | bytes | Violation | Mapping) or not isinstance(found, Iterable)
        ):
            # A single Violation is a NamedTuple and a string is iterable too:
            # listing them would blame their fields or characters instead.
            raise TypeError(
                f"policy {self.meta.id} returned {type(found).__name__}, expected Violations: "
                "yield each one, or return a list of them"
            )
        violations = list(found)
        for v in violations:
            if type(v) is not Violation and not isinstance(v, Violation):
                raise TypeError(
                    f"policy {self.meta.id} yielded {type(v).__name__}, expected Violation"
                )
        return violations


@dataclass(frozen=True)
class Mutation(_Callable[P]):
    """A mutating policy: changes the pod spec of a copy of the object in place."""

    def apply(self, pod: PodView, params: P, ctx: Context) -> None:
        self._call(pod, params, ctx)


def _metadata(
    func: Callable[..., object],
    *,
    id: str | None,
    title: str | None,
    category: str | None,
    severity: Severity | str,
    kinds: Iterable[str] | None,
    params: type[Params],
    description: str | None,
    default_action: Action | str,
    concerns_ephemeral: bool,
    requires_cluster: bool,
    example: Example | None = None,
) -> Metadata:
    where = _where(func)
    if not id or not _ID.match(id):
        raise PolicyDefinitionError(
            f"{where}: id {id!r} must be a lowercase DNS label such as 'require-team-label'"
        )
    if not title or not title.strip():
        raise PolicyDefinitionError(f"{where}: policy {id!r} needs a title")
    if not category or not category.strip():
        raise PolicyDefinitionError(f"{where}: policy {id!r} needs a category")
    if isinstance(kinds, str):
        raise PolicyDefinitionError(
            f"{where}: policy {id!r} kinds must be a list of kinds, e.g. kinds=[{kinds!r}], "
            f"not the string {kinds!r}"
        )
    kind_set = frozenset(kinds) if kinds is not None else POD_KINDS
    unknown = kind_set - POD_KINDS
    if not kind_set or unknown:
        raise PolicyDefinitionError(
            f"{where}: policy {id!r} kinds must be among {', '.join(sorted(POD_KINDS))}; "
            f"got {', '.join(sorted(unknown)) or 'none'}"
        )
    if not (isinstance(params, type) and issubclass(params, Params)):
        raise PolicyDefinitionError(
            f"{where}: policy {id!r} params must be a subclass of policies.Params"
        )
    try:
        params()
    except ValidationError as exc:
        missing = ", ".join(str(e["loc"][0]) for e in exc.errors() if e["loc"])
        raise PolicyDefinitionError(
            f"{where}: policy {id!r} params must have a default for every field "
            f"(none for: {missing})"
        ) from exc
    except Exception as exc:
        raise PolicyDefinitionError(
            f"{where}: policy {id!r} params must have a default for every field ({exc})"
        ) from exc
    try:
        severity = Severity(severity)
    except ValueError as exc:
        known = ", ".join(str(s) for s in Severity)
        raise PolicyDefinitionError(f"{where}: policy {id!r}: {exc} (one of: {known})") from exc
    try:
        default_action = Action(default_action)
    except ValueError as exc:
        known = ", ".join(str(a) for a in Action)
        raise PolicyDefinitionError(f"{where}: policy {id!r}: {exc} (one of: {known})") from exc
    doc = description or inspect.getdoc(func) or ""
    return Metadata(
        id=id,
        title=title.strip(),
        category=category.strip(),
        severity=severity,
        kinds=kind_set,
        description=doc.strip(),
        params=params,
        default_action=default_action,
        concerns_ephemeral=concerns_ephemeral,
        requires_cluster=requires_cluster,
        example=example,
    )


def _called_with_arguments(decorator: str, id: object) -> None:
    """`@policy` without its arguments would pass the function as the id and
    leave a bare `decorate` function behind: the module would then seem to
    define no policy at all."""
    if callable(id):
        raise PolicyDefinitionError(
            f"{_where(id)}: @{decorator} needs its id and title: write "
            f'@{decorator}("my-id", title="...", ...), not a bare @{decorator}'
        )


def policy(
    id: str | None = None,
    *,
    title: str | None = None,
    category: str | None = None,
    severity: Severity | str = Severity.MEDIUM,
    kinds: Iterable[str] | None = None,
    params: type[Params] = NoParams,
    description: str | None = None,
    default_action: Action | str = Action.DENY,
    concerns_ephemeral: bool = True,
    requires_cluster: bool = False,
    example: Example | None = None,
) -> Callable[[Callable[..., Any]], Policy[Any]]:
    """Declare a validating policy.

    The function takes any of `pod` (a PodView), `params` (its Params model,
    validated from the config) and `ctx` (the cluster Context), and yields or
    returns Violations. The docstring is the policy's description; `example`
    a manifest it refuses and its fix, for `podgate explain`.
    """
    return _declaring(
        Policy,
        id,
        title=title,
        category=category,
        severity=severity,
        kinds=kinds,
        params=params,
        description=description,
        default_action=default_action,
        concerns_ephemeral=concerns_ephemeral,
        requires_cluster=requires_cluster,
        example=example,
    )


def mutation(
    id: str | None = None,
    *,
    title: str | None = None,
    category: str | None = "defaults",
    severity: Severity | str = Severity.LOW,
    kinds: Iterable[str] | None = None,
    params: type[Params] = NoParams,
    description: str | None = None,
) -> Callable[[Callable[..., Any]], Mutation[Any]]:
    """Declare a mutation: the function changes `pod.spec` of a copy in place.

    The engine diffs the copy against the original to build a minimal JSON
    Patch, so a mutation only has to fill what is missing.
    """
    return _declaring(
        Mutation,
        id,
        title=title,
        category=category,
        severity=severity,
        kinds=kinds,
        params=params,
        description=description,
        default_action=Action.AUDIT,
        concerns_ephemeral=False,
        requires_cluster=False,
    )


_C = TypeVar("_C", Policy[Any], Mutation[Any])


def _declaring(
    make: type[_C], id: str | None, **declared: Any
) -> Callable[[Callable[..., Any]], _C]:
    """The decorator both `@policy` and `@mutation` return: metadata checked
    once, at definition, and frozen with the function."""
    _called_with_arguments(make.__name__.lower(), id)

    def decorate(func: Callable[..., Any]) -> _C:
        return make(meta=_metadata(func, id=id, **declared), func=func, arguments=_arguments(func))

    return decorate


class DuplicatePolicyError(PolicyDefinitionError):
    pass


Entry = Policy[Any] | Mutation[Any]


@dataclass(frozen=True)
class Registry:
    """An immutable set of policies and mutations, ids unique across both."""

    policies: Mapping[str, Policy[Any]] = field(default_factory=dict)
    mutations: Mapping[str, Mutation[Any]] = field(default_factory=dict)

    @classmethod
    def of(cls, *entries: Entry) -> Registry:
        return cls().extended(entries)

    def extended(self, entries: Iterable[Entry]) -> Registry:
        """A new registry with these entries added; refuses duplicate ids."""
        policies = dict(self.policies)
        mutations = dict(self.mutations)
        for entry in entries:
            existing = policies.get(entry.meta.id) or mutations.get(entry.meta.id)
            if existing is not None:
                what = "mutation" if isinstance(entry, Mutation) else "policy"
                raise DuplicatePolicyError(
                    f"duplicate {what} id {entry.meta.id!r}: defined by {existing.meta.origin} "
                    f"and by {entry.meta.origin}"
                )
            if isinstance(entry, Policy):
                policies[entry.meta.id] = entry
            else:
                mutations[entry.meta.id] = entry
        return Registry(policies=policies, mutations=mutations)

    def __iter__(self) -> Iterator[Entry]:
        yield from self.policies.values()
        yield from self.mutations.values()

    def ids(self) -> frozenset[str]:
        return frozenset(self.policies) | frozenset(self.mutations)
