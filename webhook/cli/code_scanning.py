"""Reports for code review tools: SARIF (GitHub code scanning, GitLab, IDEs)
and GitHub workflow annotations (`-o github`).

Both point at the field each violation names, on its own line and column
(webhook/cli/locate.py), one result per violation: a reviewer sees
`has no livenessProbe` on the container, not on the document's first line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from policies.config import Config
from policies.engine import INVALID_MANIFEST
from policies.model import Action, Outcome, PolicyResult
from webhook.cli.check import Checked, Report, resource_of
from webhook.cli.locate import Locator, Place
from webhook.cli.manifests import Document
from webhook.cli.report import summary_line

_SARIF_LEVEL = {Action.DENY: "error", Action.WARN: "warning", Action.AUDIT: "note"}
_GITHUB_LEVEL = {Action.DENY: "error", Action.WARN: "warning", Action.AUDIT: "notice"}


def _findings(
    report: Report, locator: Locator
) -> Iterator[tuple[Checked, PolicyResult, str, Place | None]]:
    """Each failure, one per violation (a result without violations once),
    with its text and where it is."""
    for checked, result in report.rows():
        if not result.failed:
            continue
        source = checked.source
        subject = (
            source.where
            if checked.resource is None and isinstance(source, Document)
            else str(resource_of(checked))
        )
        texts: list[tuple[str, str | None]] = [(str(v), v.field) for v in result.violations]
        for text, field in texts or [(result.message, None)]:
            place = locator.place(source, field) if isinstance(source, Document) else None
            yield checked, result, f"{subject}: {result.policy}: {text}", place


def crashed(report: Report) -> list[tuple[Checked, PolicyResult]]:
    """Policies that raised or ran out of time: the run did not fully succeed."""
    return [
        (checked, result)
        for checked, result in report.rows()
        if result.outcome is Outcome.ERROR and result.policy != INVALID_MANIFEST
    ]


def _rules(config: Config) -> list[dict[str, Any]]:
    rules = [
        {
            "id": meta.id,
            "name": meta.title,
            "shortDescription": {"text": meta.title},
            "fullDescription": {"text": meta.description or meta.title},
            "help": {"text": f"podgate explain {meta.id}"},
            "properties": {"category": meta.category, "severity": str(meta.severity)},
        }
        for meta in (entry.meta for entry in config.registry.policies.values())
    ]
    rules.append(
        {
            "id": INVALID_MANIFEST,
            "name": "Manifests can be read as Kubernetes objects",
            "shortDescription": {"text": "Manifests can be read as Kubernetes objects"},
            "fullDescription": {
                "text": "The document is valid YAML or JSON, has apiVersion and kind, "
                "and its pod spec has the shape Kubernetes requires."
            },
            "properties": {"category": "manifest", "severity": "high"},
        }
    )
    return rules


def _location(checked: Checked, place: Place | None) -> dict[str, Any]:
    """A file, line and column for a manifest; for an object of a cluster
    (`podgate audit`), its kind/namespace/name."""
    source = checked.source
    if isinstance(source, Document) and place is not None:
        return {
            "physicalLocation": {
                "artifactLocation": {"uri": source.file},
                "region": {"startLine": place.line, "startColumn": place.column},
            }
        }
    return {
        "logicalLocations": [{"fullyQualifiedName": str(resource_of(checked)), "kind": "object"}]
    }


def to_sarif(report: Report, config: Config) -> str:
    locator = Locator(report.texts)
    results = [
        {
            "ruleId": result.policy,
            "level": _SARIF_LEVEL.get(result.effective_action, "none"),
            "message": {"text": text},
            "locations": [_location(checked, place)],
        }
        for checked, result, text, place in _findings(report, locator)
    ]
    # an input that could not be read at all (exit 2), and a policy that
    # crashed, are no results of a rule: the run says it did not succeed, so
    # that a code-scanning UI shows it
    notifications = [
        {
            "level": "error",
            "message": {"text": f"{unreadable.file}: cannot read: {unreadable.reason}"},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": unreadable.file}}}],
        }
        for unreadable in report.unreadable
    ]
    for checked, result in crashed(report):
        place = (
            locator.place(checked.source, None) if isinstance(checked.source, Document) else None
        )
        where = f" ({result.raised_at})" if result.raised_at else ""
        notifications.append(
            {
                "level": "error",
                "message": {
                    "text": f"{resource_of(checked)}: {result.policy}: {result.reason}{where}"
                },
                "descriptor": {"id": result.policy},
                "locations": [_location(checked, place)],
            }
        )
    sarif = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "podgate",
                        "informationUri": "https://podgate.dev",
                        "rules": _rules(config),
                    }
                },
                "results": results,
                "invocations": [
                    {
                        "executionSuccessful": not notifications,
                        "toolExecutionNotifications": notifications,
                    }
                ],
            }
        ],
    }
    return json.dumps(sarif, indent=2)


def _data(text: str) -> str:
    """A workflow command's message, escaped as the runner reads it."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def to_github(report: Report, config: Config) -> str:
    """`::error file=F,line=L,col=C,title=T::message` per violation: the
    annotations a GitHub Actions run shows on the pull request's diff."""
    locator = Locator(report.texts)
    lines = []
    for checked, result, text, place in _findings(report, locator):
        level = _GITHUB_LEVEL.get(result.effective_action, "notice")
        properties = [f"title={_property(f'podgate {result.policy}')}"]
        source = checked.source
        if isinstance(source, Document) and not source.file.startswith("<"):
            properties[:0] = [f"file={_property(source.file)}"]
            if place is not None:
                properties[1:1] = [f"line={place.line}", f"col={place.column}"]
        lines.append(f"::{level} {','.join(properties)}::{_data(text)}")
    for unreadable in report.unreadable:
        lines.append(f"::error file={_property(unreadable.file)},title=podgate::"
                     f"{_data(f'cannot read: {unreadable.reason}')}")  # fmt: skip
    lines.append(summary_line(report))
    return "\n".join(lines)
