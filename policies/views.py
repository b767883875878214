"""Typed, forgiving views over a pod spec, whatever workload carries it.

Policies read objects through these views instead of walking raw dicts, so
that a manifest with `containers: null` or a number where a string belongs
produces a clear finding rather than an exception.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from policies.images import image_matches
from policies.workloads import JOB_OWNER_KINDS, WorkloadKind, workload_kind


class ContainerList(enum.StrEnum):
    CONTAINERS = "containers"
    INIT = "initContainers"
    EPHEMERAL = "ephemeralContainers"


ALL_LISTS = (ContainerList.CONTAINERS, ContainerList.INIT, ContainerList.EPHEMERAL)
LIST_KEYS = tuple(str(which) for which in ALL_LISTS)  # the spec's keys, as plain strings
_LISTS_AND_KEYS = tuple(zip(ALL_LISTS, LIST_KEYS, strict=True))
# The problems of a malformed object that are listed; the denial says there are more.
MAX_PROBLEMS = 20


def as_mapping(value: object) -> dict[str, Any]:
    """The value if it is a mapping, else an empty one (a missing or null field)."""
    return value if isinstance(value, dict) else {}


def as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def format_path(parts: tuple[str | int, ...]) -> str:
    """('spec', 'containers', 0, 'image') -> 'spec.containers[0].image'."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


_LIST_NOUN = {
    ContainerList.CONTAINERS: "container",
    ContainerList.INIT: "init container",
    ContainerList.EPHEMERAL: "ephemeral container",
}


class ContainerView:
    """One container of a pod spec, with where it sits in the object.

    Names and paths are worked out once here: every policy reads them, for
    every container, on every admission.
    """

    __slots__ = ("_label", "_prefix", "index", "is_sidecar", "list", "name", "raw", "spec_path")

    def __init__(
        self,
        raw: dict[str, Any],
        which: ContainerList,
        index: int,
        spec_path: tuple[str | int, ...],
    ) -> None:
        self.raw = raw
        self.list = which
        self.index = index
        self.spec_path = spec_path
        name = raw.get("name")
        self.name: str = str(name) if name is not None else f"{which}[{index}]"
        # A native sidecar: an init container that keeps running (Kubernetes 1.28+).
        self.is_sidecar: bool = which is ContainerList.INIT and raw.get("restartPolicy") == "Always"
        self._label: str | None = None
        self._prefix: str | None = None

    @property
    def label(self) -> str:
        """How messages name it: `container "web"`, `sidecar container "proxy"`.
        Built on first use, like `prefix`: only violations need it."""
        if self._label is None:
            noun = "sidecar container" if self.is_sidecar else _LIST_NOUN[self.list]
            self._label = f'{noun} "{self.name}"'
        return self._label

    @property
    def prefix(self) -> str:
        """`spec.template.spec.containers[0]`: built on first use, since only
        violations need it."""
        if self._prefix is None:
            self._prefix = format_path((*self.spec_path, str(self.list), self.index))
        return self._prefix

    def __repr__(self) -> str:
        return f"ContainerView({self.prefix}, {self.label})"

    @property
    def image(self) -> object:
        """The raw image value; a policy checks that it is a string."""
        return self.raw.get("image")

    @property
    def is_long_running(self) -> bool:
        """Regular containers and native sidecars; not init or ephemeral ones."""
        return self.list is ContainerList.CONTAINERS or self.is_sidecar

    def path(self, *parts: str | int) -> tuple[str | int, ...]:
        return (*self.spec_path, str(self.list), self.index, *parts)

    def field(self, *parts: str | int) -> str:
        """`spec.containers[0]` + parts, as a user reads a field path."""
        text = self.prefix
        for part in parts:  # a loop, not a join over a generator: one to three parts
            text += f"[{part}]" if isinstance(part, int) else "." + part
        return text

    @property
    def security_context(self) -> dict[str, Any]:
        return as_mapping(self.raw.get("securityContext"))

    @property
    def resources(self) -> dict[str, Any]:
        return as_mapping(self.raw.get("resources"))


@dataclass(frozen=True)
class PodView:
    """The pod spec of a Pod or of any workload's template, plus its metadata.

    `labels` are the pod's labels (the template's for a workload): they are
    what NetworkPolicies select. `annotations` are the object's own, where
    users put `podgate.dev/exempt`.
    """

    obj: Mapping[str, Any]
    workload: WorkloadKind
    namespace: str
    spec: dict[str, Any]
    spec_path: tuple[str | int, ...]
    labels: Mapping[str, str]
    problems: tuple[str, ...] = ()
    exempt_images: frozenset[str] = field(default=frozenset())

    @property
    def kind(self) -> str:
        return self.workload.kind

    @property
    def api_version(self) -> str:
        return str(self.obj.get("apiVersion", ""))

    @property
    def metadata(self) -> dict[str, Any]:
        metadata = self.obj.get("metadata")
        return metadata if isinstance(metadata, dict) else {}

    @property
    def name(self) -> str | None:
        name = self.metadata.get("name") or self.metadata.get("generateName")
        return str(name) if name is not None else None

    @property
    def annotations(self) -> Mapping[str, Any]:
        return as_mapping(self.metadata.get("annotations"))

    @property
    def os_name(self) -> str | None:
        os = self.spec.get("os")
        if not isinstance(os, dict) or os.get("name") is None:
            return None
        return str(os["name"])

    @property
    def runs_to_completion(self) -> bool:
        """Pods of Jobs and CronJobs, and bare Pods a Job owns."""
        if self.workload.runs_to_completion:
            return True
        owners = self.metadata.get("ownerReferences")
        if not owners or not isinstance(owners, list):
            return False
        return any(as_mapping(o).get("kind") in JOB_OWNER_KINDS for o in owners)

    @property
    def security_context(self) -> dict[str, Any]:
        return as_mapping(self.spec.get("securityContext"))

    @property
    def resources(self) -> dict[str, Any]:
        """Pod-level requests and limits (Kubernetes 1.32+), shared by all containers."""
        return as_mapping(self.spec.get("resources"))

    def spec_field(self, *parts: str | int) -> str:
        """`spec.template.spec` + parts, as a user reads a field path."""
        return format_path((*self.spec_path, *parts))

    def _build_views(self) -> dict[ContainerList, tuple[ContainerView, ...]]:
        """Every container view, built once per object and shared by all policies.

        Kept in the instance's __dict__ under "_views", where `containers`
        finds them; the engine drops them when a mutation changes the
        container lists. Not a functools.cached_property: its first read
        takes a lock, twice per evaluation (the original and the copy)."""
        views: dict[ContainerList, tuple[ContainerView, ...]] = {}
        spec, exempt, spec_path = self.spec, self.exempt_images, self.spec_path
        for which, key in _LISTS_AND_KEYS:
            items = spec.get(key)
            if not items or not isinstance(items, list):
                views[which] = ()
                continue
            found = []
            for index, raw in enumerate(items):
                if not isinstance(raw, dict):
                    continue  # reported once, as a problem, by from_object
                if exempt:
                    image = raw.get("image")
                    if isinstance(image, str) and image_matches(image, exempt):
                        continue
                found.append(ContainerView(raw, which, index, spec_path))
            views[which] = tuple(found)
        self.__dict__["_views"] = views
        return views

    def containers(self, *lists: ContainerList) -> Iterator[ContainerView]:
        """The containers of the given lists (all three by default), in order.

        Containers whose image is exempted by the config are left out.
        """
        views = self.__dict__.get("_views") or self._build_views()
        for which in lists or ALL_LISTS:
            yield from views[which]

    def effective(self, container: ContainerView, key: str) -> object:
        """A securityContext setting as the kubelet sees it: the container's
        overrides the pod's for the fields both define (runAsUser,
        runAsNonRoot, runAsGroup, seccompProfile...). None when neither sets it."""
        own = container.raw.get("securityContext")
        if isinstance(own, dict) and key in own:
            return own[key]
        pods = self.spec.get("securityContext")
        return pods.get(key) if isinstance(pods, dict) else None

    def with_object(self, obj: Mapping[str, Any], spec: dict[str, Any]) -> PodView:
        """This view over another object of the same shape (a copy being mutated):
        the same fields but for the object and its spec, container views rebuilt
        on first use. `dataclasses.replace` would validate every field again."""
        moved = object.__new__(PodView)
        moved.__dict__.update(self.__dict__, obj=obj, spec=spec)
        moved.__dict__.pop("_views", None)
        return moved

    def effective_field(self, container: ContainerView, key: str) -> str:
        """Where `effective` found the setting (the container's field when unset)."""
        if key in container.security_context or key not in self.security_context:
            return container.field("securityContext", key)
        return self.spec_field("securityContext", key)

    @classmethod
    def from_object(
        cls,
        obj: Mapping[str, Any],
        *,
        default_namespace: str = "default",
        exempt_images: frozenset[str] = frozenset(),
    ) -> PodView | None:
        """A view of the object's pod spec, or None when it has no pod template."""
        workload = workload_kind(obj)
        if workload is None:
            return None
        problems: list[str] = []
        node: object = obj
        path: tuple[str | int, ...] = ()
        for key in workload.template_path:
            node = as_mapping(node).get(key)
            path = (*path, key)
            if not isinstance(node, dict):
                problems.append(f"{format_path(path)} is missing or not a mapping")
                node = {}
        template = as_mapping(node)
        if workload.template_path:
            labels_raw = as_mapping(template.get("metadata")).get("labels")
        else:
            labels_raw = as_mapping(obj.get("metadata")).get("labels")
        spec_raw = template.get("spec")
        spec_path = (*path, "spec")
        if not problems and not isinstance(spec_raw, dict):
            problems.append(f"{format_path(spec_path)} is missing or not a mapping")
        spec = as_mapping(spec_raw)
        for key in LIST_KEYS:
            value = spec.get(key)
            if value is None:
                continue
            if not isinstance(value, list):
                problems.append(f"{format_path((*spec_path, key))} is not a list")
                continue
            for index, item in enumerate(value):
                if not isinstance(item, dict) and len(problems) <= MAX_PROBLEMS:
                    problems.append(f"{format_path((*spec_path, key, index))} is not a mapping")
        if spec and not as_list(spec.get("containers")):
            problems.append(f"{format_path((*spec_path, 'containers'))} is empty")
        if len(problems) > MAX_PROBLEMS:  # one per item of a list of a million numbers
            problems[MAX_PROBLEMS:] = ["and more items that are not mappings"]
        namespace = as_mapping(obj.get("metadata")).get("namespace")
        # Filled in directly rather than through the frozen dataclass's
        # __init__, which sets each field with object.__setattr__: one view
        # is made per evaluation.
        view = object.__new__(cls)
        view.__dict__.update(
            obj=obj,
            workload=workload,
            namespace=str(namespace) if namespace else default_namespace,
            spec=spec,
            spec_path=spec_path,
            labels={str(k): str(v) for k, v in as_mapping(labels_raw).items()},
            problems=tuple(problems),
            exempt_images=exempt_images,
        )
        return view
