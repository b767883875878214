"""podgate's shells around the policy engine: webhook server, CLI, cluster access, audit."""
