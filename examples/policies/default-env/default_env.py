"""default-env: a mutation that gives every container the platform's environment
variables (the cluster's name, where to send traces) unless it sets them itself."""

from __future__ import annotations

import re

from pydantic import field_validator

from policies import ContainerList, Field, Params, PodView, mutation

# What the kubelet accepts as an environment variable name.
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


class DefaultEnv(Params):
    env: dict[str, str] = Field(
        default_factory=dict,
        description="Variables to add (name: value) where a container does not set them.",
    )

    @field_validator("env")
    @classmethod
    def _valid_names(cls, env: dict[str, str]) -> dict[str, str]:
        for name in env:
            if not _ENV_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid environment variable name")
        return env


@mutation("default-env", title="Add the platform's environment variables", params=DefaultEnv)
def default_env(pod: PodView, params: DefaultEnv) -> None:
    """Appends each variable of `env` to the containers and init containers
    that do not set it. A variable the container sets (by `value` or
    `valueFrom`) is left as it is. Containers with `envFrom` are left alone:
    `env` wins over `envFrom`, so an added variable could silently replace a
    value the container reads from a ConfigMap or Secret."""
    for container in pod.containers(ContainerList.CONTAINERS, ContainerList.INIT):
        if container.raw.get("envFrom"):
            continue
        env = container.raw.get("env")
        if env is None:
            env = []
        elif not isinstance(env, list):
            continue  # malformed: the API server reports it, a mutation must not guess
        present = {item.get("name") for item in env if isinstance(item, dict)}
        added = [{"name": n, "value": v} for n, v in params.env.items() if n not in present]
        if added:
            # The engine diffs this copy against the original: only this change is patched.
            container.raw["env"] = [*env, *added]
