"""`podgate test`: run the cases of policy test suites (cli/suites.py reads
them) through the same subject rule and engine as every entry point."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from policies.engine import evaluate
from policies.model import StaticContext
from policies.patch import diff
from policies.subject import subject_of
from webhook.cli.check import offline_context
from webhook.cli.junit import Case as JUnitCase
from webhook.cli.junit import junit
from webhook.cli.suites import Case, SuiteError, discover


@dataclass(frozen=True)
class CaseResult:
    case: Case
    ok: bool
    details: list[str] = field(default_factory=list)


def _key(obj: Mapping[str, Any], with_namespace: bool) -> str:
    metadata = obj.get("metadata") or {}
    name = metadata.get("name") or metadata.get("generateName") or ""
    if with_namespace:
        return f"{obj.get('kind')}/{metadata.get('namespace') or 'default'}/{name}"
    return f"{obj.get('kind')}/{name}"


def _matches(obj: Mapping[str, Any], target: str) -> bool:
    return target in (_key(obj, False), _key(obj, True))


def _context(case: Case, namespace: str) -> StaticContext:
    ctx = offline_context(case.documents, namespace)
    return StaticContext(ctx.policies, ctx.namespaces, case.cluster)


def run_case(case: Case) -> CaseResult:
    targets = [
        d.obj
        for d in case.documents
        if d.obj is not None and (not case.target or _matches(d.obj, case.target))
    ]
    workloads = [o for o in targets if o.get("kind") not in ("NetworkPolicy", "Namespace")]
    if not workloads:
        return CaseResult(case, False, [f"no resource matches {case.target or 'in the file'}"])
    details: list[str] = []
    patched = list(case.patched or ())
    for index, obj in enumerate(workloads):
        ctx = _context(case, "default")
        subject = subject_of(obj, case.config)
        decision = evaluate(subject, ctx, case.config, mutate=case.mutation is not None)
        where = _key(obj, True)
        if case.policy is not None:
            found = [r for r in decision.results if r.policy == case.policy]
            outcome = str(found[0].outcome) if found else "skip"
            message = found[0].message if found else decision.skipped_reason
            if outcome != case.result:
                why = f": {message}" if message else ""
                details.append(f"{where}: expected {case.result}, got {outcome}{why}")
                continue
            for wanted in case.messages:
                if wanted not in message:
                    # Unquoted and one above the other: messages are full of
                    # quotes, which repr() would escape into noise.
                    details.extend(
                        (
                            f"{where}: the message does not contain the expected text",
                            f"  expected: {wanted}",
                            f"  message:  {message}",
                        )
                    )
            if case.action and found and str(found[0].effective_action) != case.action:
                details.append(
                    f"{where}: expected action {case.action}, got {found[0].effective_action}"
                )
        else:
            expected = patched[index] if index < len(patched) else obj
            if decision.mutated is None:  # not evaluated: an exempt namespace, mode off...
                if expected != obj:
                    reason = decision.skipped_reason or "no mutation ran"
                    details.append(f"{where}: expected a mutation, but none ran: {reason}")
                continue
            if decision.mutated != expected:
                missing = json.dumps(diff(decision.mutated, expected))
                details.append(
                    f"{where}: the mutated object differs from the expected one; "
                    f"to get the expected one it would still need {missing}"
                )
                continue
            again = evaluate(decision.mutated, ctx, case.config, validate=False)
            if again.patch:
                second = json.dumps(list(again.patch))
                details.append(f"{where}: not idempotent; a second pass patches {second}")
    return CaseResult(case, not details, details)


def _junit_case(result: CaseResult) -> JUnitCase:
    case = result.case
    if result.ok:
        return JUnitCase(case.suite, case.suite, case.name)
    text = "\n".join(result.details)
    return JUnitCase(case.suite, case.suite, case.name, "failure", result.details[0], text=text)


def _render(results: list[CaseResult], output: str) -> str:
    failed = [r for r in results if not r.ok]
    if output == "json":
        return json.dumps(
            {
                "cases": [
                    {"suite": r.case.suite, "name": r.case.name, "ok": r.ok, "details": r.details}
                    for r in results
                ],
                "summary": {
                    "cases": len(results),
                    "passed": len(results) - len(failed),
                    "failed": len(failed),
                },
            },
            indent=2,
        )
    if output == "junit":
        cases = [_junit_case(r) for r in results]
        return junit("podgate test", cases)
    lines = []
    for r in results:
        lines.append(f"{'PASS' if r.ok else 'FAIL'}  {r.case.name}  ({r.case.suite})")
        lines.extend(f"      {d}" for d in r.details)
    lines.append(f"{len(results)} cases: {len(results) - len(failed)} passed, {len(failed)} failed")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Exit 0 when every case holds, 1 on any mismatch, 2 when a suite cannot run."""
    from policies.config import load_config

    try:
        registry = load_config(args.config).registry if args.config else None
        cases = list(discover(args.paths, registry))
    except SuiteError as exc:
        print(f"podgate test: {exc}", file=sys.stderr)
        return 2
    if not cases:
        print("podgate test: no test suites or fixture folders found", file=sys.stderr)
        return 2
    results = [run_case(c) for c in cases]
    print(_render(results, args.output))
    return 0 if all(r.ok for r in results) else 1
