"""What every long-running podgate process reports, and how it leaves:
metrics, JSON logs, Kubernetes Events of violations, the health side port,
and an exit no daemon thread can spoil. The lowest layer of the shells: it
imports none of the others."""
