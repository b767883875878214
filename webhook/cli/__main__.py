"""`python -m webhook.cli`: the `podgate` command."""

from webhook.cli.main import run

run()
