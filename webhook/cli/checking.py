"""`podgate check`: manifests on disk (or piped in) to a report and an exit code."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from policies.config import Config, load_config
from policies.model import Action
from webhook.cli.args import colour_enabled
from webhook.cli.check import Report, bulk_gc, check_documents
from webhook.cli.formats import render
from webhook.cli.inputs import STDIN, STDIN_NAME, Inputs, read_inputs
from webhook.cli.manifests import Document, Unreadable, parse_text
from webhook.cli.overrides import apply_overrides
from webhook.cli.progress import Progress
from webhook.cli.report import counted

EXIT_USAGE = 2


def run(args: argparse.Namespace) -> int:
    """`podgate check`: 0 nothing refused, 1 something would be, 2 an input or usage error."""
    if args.write and not args.fix:
        print("podgate check: --write needs --fix", file=sys.stderr)
        return EXIT_USAGE
    if args.fix and args.output != "text":
        print(
            f"podgate check: --fix prints manifests, not a report: -o {args.output} "
            "applies to a check without --fix",
            file=sys.stderr,
        )
        return EXIT_USAGE
    config = apply_overrides(load_config(args.config), args.sets, args.only, args.skip)
    with bulk_gc():
        return _check(args, config)


def _check(args: argparse.Namespace, config: Config) -> int:
    progress = Progress(sys.stderr)
    inputs = read_inputs(args.paths, ignore=args.ignore, progress=progress)
    if not inputs.documents and not inputs.unreadable:
        inputs.unreadable.append(Unreadable(_named(args.paths), _nothing_to_check(inputs)))
    checked = check_documents(
        inputs.documents, config, namespace=args.namespace, fix=args.fix, progress=progress
    )
    progress.clear()
    report = Report(checked, inputs.unreadable, skipped=inputs.skipped, texts=inputs.texts)
    for unreadable in inputs.unreadable:
        print(f"podgate check: {unreadable.file}: {unreadable.reason}", file=sys.stderr)
    if args.fix:
        return _fix(args, config, inputs.texts, report)
    print(render(report, config, args.output, colour=colour_enabled(sys.stdout, args.no_color),
                 verbose=args.verbose))  # fmt: skip
    return report.exit_code_at(Action(args.fail_on))


def _fix(args: argparse.Namespace, config: Config, texts: dict[str, str], report: Report) -> int:
    """Print the fixed stream, or rewrite the changed files with --write.

    A document that could not be read is left as written, and a mutation
    that failed on an object is left out of its fix: both are said on
    stderr, so that "nothing to change" never hides what podgate could not
    fix. The exit code is the check's, of the manifests as given.
    """
    from webhook.cli.fix import as_stream, fixed_texts

    said = "podgate check --fix:"
    for checked in report.checked:
        doc, decision = checked.source, checked.decision
        if not isinstance(doc, Document):
            continue
        if doc.error:
            print(f"{said} {doc.where}: {doc.error}; left as written", file=sys.stderr)
        elif decision is not None:
            for error in decision.mutation_errors:
                print(f"{said} {doc.where}: {decision.resource}: mutation {error}; "
                      "its changes are left out", file=sys.stderr)  # fmt: skip
    problems: list[str] = []
    fixed = fixed_texts(texts, report.checked, problems)  # each file parsed and dumped once
    for problem in problems:
        print(f"{said} {problem}", file=sys.stderr)
    changed = {file: text for file, text in fixed.items() if text != texts[file]}
    if args.write:
        for file, text in changed.items():
            if file == "<stdin>":
                sys.stdout.write(text)
                continue
            Path(file).write_text(text, encoding="utf-8")
            print(f"fixed {file}", file=sys.stderr)
    elif texts:
        sys.stdout.write(as_stream(list(fixed.values())))
    patched = sum(1 for c in report.checked if c.decision is not None and c.decision.patch)
    if not changed:
        print(f"{said} nothing to change", file=sys.stderr)
    else:
        print(
            f"{said} {counted(patched, 'object')} fixed in {counted(len(changed), 'file')}",
            file=sys.stderr,
        )
    print(f"{said} {_remaining(fixed, config, args.namespace)}", file=sys.stderr)
    return report.exit_code_at(Action(args.fail_on))


def _remaining(fixed: dict[str, str], config: Config, namespace: str) -> str:
    """What `podgate check` still finds in the fixed output: the findings that
    need a person (a probe, a digest, a UID), counted by policy."""
    documents = [doc for file, text in fixed.items() for doc in parse_text(text, file)]
    found: Counter[str] = Counter()
    for checked in check_documents(documents, config, namespace=namespace):
        for result in checked.results:
            if result.failed and result.effective_action is not Action.OFF:
                found[result.policy] += max(1, len(result.violations))
    if not found:
        return "no findings remain"
    each = ", ".join(f"{policy} ({count})" for policy, count in found.most_common())
    total = sum(found.values())
    verb = "remains" if total == 1 else "remain"
    return (
        f"{counted(total, 'finding')} {verb} that --fix cannot fix: {each}; "
        "podgate check on the fixed output lists them"
    )


def _named(paths: list[str]) -> str:
    return ", ".join(STDIN_NAME if p == STDIN else p for p in paths)


def _nothing_to_check(inputs: Inputs) -> str:
    """Why an input without a single object is an error: `helm template broken
    | podgate check -` must not pass in a pipeline without pipefail."""
    reason = "nothing to check: no Kubernetes object in the input"
    charts = [s.path for s in inputs.skipped if s.reason.startswith("a Helm chart")]
    if charts:
        reason += f" (skipped Helm chart {charts[0]}: helm template {charts[0]} | podgate check -)"
    elif inputs.skipped:
        reason += f" ({counted(len(inputs.skipped), 'path')} skipped; -v lists them)"
    return reason
