"""The four output formats of `podgate check` and `podgate audit`: text, json, sarif, junit."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from policies.config import Config
from policies.engine import INVALID_MANIFEST
from policies.model import Action, Outcome, PolicyResult
from webhook.cli.check import Checked, InCluster, Report, resource_of
from webhook.cli.junit import Case, junit
from webhook.cli.manifests import Document

FORMATS = ("text", "json", "sarif", "junit")

_COLOURS = {"deny": "31", "warn": "33", "audit": "36", "pass": "32", "error": "35"}


def _action_of(result: PolicyResult) -> str:
    """What happened: the effective action of a failure, the configured one otherwise."""
    return (result.effective_action if result.failed else result.action).value


def _source(checked: Checked) -> dict[str, Any]:
    doc = checked.source
    if isinstance(doc, InCluster):
        return {"cluster": True, "uid": doc.uid}
    source: dict[str, Any] = {"file": doc.file, "document": doc.index, "line": doc.line}
    if doc.item is not None:
        source["item"] = doc.item
    return source


def to_json(report: Report, config: Config) -> str:
    results = []
    for checked in report.checked:
        # shared by the object's results; `.value` rather than str(): an enum's
        # __str__ runs in Python, and this loop runs for every result
        resource, source = resource_of(checked).as_dict(), _source(checked)
        for result in checked.results:
            results.append(
                {
                    "policy": result.policy,
                    "result": result.outcome.value,
                    "action": _action_of(result),
                    "configured_action": result.action.value,
                    "message": result.message,
                    "violations": [
                        {
                            "message": v.message,
                            "container": v.container,
                            "field": v.field,
                            "fix": v.fix,
                        }
                        for v in result.violations
                    ],
                    "resource": resource,
                    "source": source,
                }
            )
    errors = [{"file": u.file, "reason": u.reason} for u in report.unreadable]
    skipped = [{"path": s.path, "reason": s.reason} for s in report.skipped]
    # One result per line: json's C encoder only runs without `indent`, and
    # indenting in Python costs more than evaluating. It stays greppable too.
    lines = ",\n    ".join(_compact(r) for r in results)
    body = f"\n    {lines}\n  " if results else ""
    return (
        f'{{\n  "results": [{body}],\n  "errors": {_compact(errors)},\n'
        f'  "skipped": {_compact(skipped)},\n'
        f'  "summary": {_compact(report.summary())}\n}}'
    )


# default=str: a YAML `!!binary` or `!!set` value must not crash the report. One
# encoder for all: json.dumps with options builds a new one on every call.
_ENCODER = json.JSONEncoder(default=str, ensure_ascii=False)


def counted(n: int, noun: str) -> str:
    """`1 object`, `2 objects`: the summary lines are read by people."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _compact(value: object) -> str:
    return _ENCODER.encode(value)


def to_text(report: Report, config: Config, *, colour: bool = False, verbose: bool = False) -> str:
    def paint(text: str, key: str) -> str:
        return f"\033[{_COLOURS[key]}m{text}\033[0m" if colour and key in _COLOURS else text

    lines: list[str] = []
    for checked in report.checked:
        shown = [r for r in checked.results if verbose or r.failed]
        exempt = checked.exempt_reason if verbose else None
        unjudged = None
        if verbose and not shown and not exempt and checked.decision is not None:
            unjudged = checked.decision.skipped_reason or None
        if not shown and not exempt and not unjudged:
            continue
        doc = checked.source
        if isinstance(doc, InCluster):  # the object is the place
            lines.append(str(resource_of(checked)))
        elif checked.resource is None:
            lines.append(doc.where)
        else:
            lines.append(f"{doc.where}: {checked.resource}")
        if exempt:
            lines.append(f"  {'EXEMPT':<11} not evaluated: {exempt}")
        elif unjudged:
            lines.append(f"  {'SKIP':<11} not evaluated: {unjudged}")
        for result in shown:
            outcome = str(result.outcome).upper()
            action = _action_of(result) if result.failed else ""
            key = (
                action if result.failed and result.outcome is Outcome.FAIL else str(result.outcome)
            )
            status = paint(f"{outcome:<5} {action:<5}", key)
            quiet = f"{result.policy}: {result.reason}" if result.reason else result.policy
            for line in result.lines() if result.failed else [quiet]:
                lines.append(f"  {status} {line}")
    for unreadable in report.unreadable:
        lines.append(paint(f"{unreadable.file}: cannot read: {unreadable.reason}", "error"))
    if verbose:
        lines.extend(f"{skipped.path}: skipped: {skipped.reason}" for skipped in report.skipped)
    lines.append(summary_line(report, verbose=verbose))
    return "\n".join(lines)


def summary_line(report: Report, *, verbose: bool = False) -> str:
    """`12 objects, 10 evaluated, 3 failed; 60 results: ...`: objects and their
    results (one per policy) counted apart, so that neither reads as the other."""
    summary = report.summary()
    counts, failures = summary["results"], summary["failures"]
    exempt, skipped, unreadable = summary["exempt"], len(report.skipped), len(report.unreadable)
    total = sum(counts.values())
    return (
        f"{counted(summary['objects'], 'object')}, {summary['evaluated']} evaluated, "
        f"{summary['failed_objects']} failed; {counted(total, 'result')}: "
        f"{counts['pass']} passed, {counts['fail']} failed, {counted(counts['error'], 'error')}, "
        f"{counts['skip']} skipped; {failures['deny']} deny, {failures['warn']} warn, "
        f"{failures['audit']} audit"
        + (f"; {counted(exempt, 'workload')} exempt" if exempt else "")
        + (" (-v says why)" if exempt and not verbose else "")
        + (f"; {counted(unreadable, 'unreadable input')}" if unreadable else "")
        + (f"; {counted(skipped, 'path')} skipped" if skipped else "")
        + (" (-v lists them)" if skipped and not verbose else "")
    )


_SARIF_LEVEL = {Action.DENY: "error", Action.WARN: "warning", Action.AUDIT: "note"}


def _sarif_location(checked: Checked) -> dict[str, Any]:
    """A file and line for a manifest; for an object of a cluster (`podgate
    audit`), its kind/namespace/name."""
    doc = checked.source
    if isinstance(doc, Document):
        return {
            "physicalLocation": {
                "artifactLocation": {"uri": doc.file},
                "region": {"startLine": doc.line},
            }
        }
    return {
        "logicalLocations": [{"fullyQualifiedName": str(resource_of(checked)), "kind": "object"}]
    }


def to_sarif(report: Report, config: Config) -> str:
    rules = [
        {
            "id": meta.id,
            "name": meta.title,
            "shortDescription": {"text": meta.title},
            "fullDescription": {"text": meta.description or meta.title},
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
    results = []
    for checked, result in report.rows():
        if not result.failed:
            continue
        # a document that could not be read has no resource: its place names it
        source = checked.source
        subject = (
            source.where
            if checked.resource is None and isinstance(source, Document)
            else (resource_of(checked))
        )
        results.append(
            {
                "ruleId": result.policy,
                "level": _SARIF_LEVEL.get(result.effective_action, "none"),
                "message": {"text": f"{subject}: {result.message}"},
                "locations": [_sarif_location(checked)],
            }
        )
    # an input that could not be read at all (exit 2) is no result of a rule:
    # the run says it did not succeed, so that a code-scanning UI shows it
    notifications = [
        {
            "level": "error",
            "message": {"text": f"{unreadable.file}: cannot read: {unreadable.reason}"},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": unreadable.file}}}],
        }
        for unreadable in report.unreadable
    ]
    sarif = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "podgate",
                        "informationUri": "https://podgate.dev",
                        "rules": rules,
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


def to_junit(report: Report, config: Config) -> str:
    def case(checked: Checked, result: PolicyResult) -> Case:
        source = checked.source
        suite, name = (
            (source.file, f"{result.policy} (document {source.index + 1})")
            if isinstance(source, Document)
            else ("cluster", result.policy)
        )
        classname = str(resource_of(checked))
        if result.outcome is Outcome.SKIP:
            return Case(suite, classname, name, "skipped", result.reason)
        if result.outcome is Outcome.ERROR:
            return Case(suite, classname, name, "error", result.message, _action_of(result))
        if result.outcome is Outcome.FAIL:
            lines = "\n".join(result.lines())
            return Case(
                suite, classname, name, "failure", result.message, _action_of(result), lines
            )
        return Case(suite, classname, name)

    cases = [case(checked, result) for checked, result in report.rows()]
    cases += [Case(u.file, u.file, "read", "error", u.reason) for u in report.unreadable]
    return junit("podgate", cases)


def render(
    report: Report, config: Config, output: str, *, colour: bool = False, verbose: bool = False
) -> str:
    """The report in one of FORMATS, as `check` and `audit` print it."""
    if output == "text":
        return to_text(report, config, colour=colour, verbose=verbose)
    return RENDERERS[output](report, config)


RENDERERS: dict[str, Callable[[Report, Config], str]] = {
    "json": to_json,
    "sarif": to_sarif,
    "junit": to_junit,
}
