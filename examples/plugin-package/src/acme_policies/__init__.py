"""ACME's podgate policies; the `podgate.policies` entry point names this package."""

from acme_policies.host_namespaces import disallow_host_namespaces
from acme_policies.privileged import disallow_privileged

__all__ = ["disallow_host_namespaces", "disallow_privileged"]
