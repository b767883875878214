"""The report formats of `podgate check` and `podgate audit` for people and
scripts: text, json, junit (webhook/cli/formats.py lists them all)."""

from __future__ import annotations

import json
from typing import Any

from policies.config import Config
from policies.model import Outcome, PolicyResult
from webhook.cli.check import Checked, InCluster, Report, resource_of
from webhook.cli.junit import Case, junit
from webhook.cli.manifests import Document

_COLOURS = {"deny": "31", "warn": "33", "audit": "36", "pass": "32", "error": "35"}


def action_of(result: PolicyResult) -> str:
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
                    "action": action_of(result),
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
                    **({"raised_at": result.raised_at} if result.raised_at else {}),
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
            action = action_of(result) if result.failed else ""
            key = (
                action if result.failed and result.outcome is Outcome.FAIL else str(result.outcome)
            )
            status = paint(f"{outcome:<5} {action:<5}", key)
            quiet = f"{result.policy}: {result.reason}" if result.reason else result.policy
            for line in result.lines() if result.failed else [quiet]:
                lines.append(f"  {status} {line}")
            if verbose and result.raised_at:
                lines.append(f"  {'':<11} at {result.raised_at}")
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
            return Case(suite, classname, name, "error", result.message, action_of(result))
        if result.outcome is Outcome.FAIL:
            lines = "\n".join(result.lines())
            return Case(suite, classname, name, "failure", result.message, action_of(result), lines)
        return Case(suite, classname, name)

    cases = [case(checked, result) for checked, result in report.rows()]
    cases += [Case(u.file, u.file, "read", "error", u.reason) for u in report.unreadable]
    return junit("podgate", cases)
