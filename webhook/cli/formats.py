"""Every report format of `podgate check` and `podgate audit`, by name."""

from __future__ import annotations

from collections.abc import Callable

from policies.config import Config
from webhook.cli.check import Report
from webhook.cli.code_scanning import to_github, to_sarif
from webhook.cli.policy_report import to_policy_report
from webhook.cli.report import to_json, to_junit, to_text

FORMATS = ("text", "json", "sarif", "junit", "github", "policyreport")

RENDERERS: dict[str, Callable[[Report, Config], str]] = {
    "json": to_json,
    "sarif": to_sarif,
    "junit": to_junit,
    "github": to_github,
    "policyreport": to_policy_report,
}


def render(
    report: Report, config: Config, output: str, *, colour: bool = False, verbose: bool = False
) -> str:
    """The report in one of FORMATS, as `check` and `audit` print it."""
    if output == "text":
        return to_text(report, config, colour=colour, verbose=verbose)
    return RENDERERS[output](report, config)
