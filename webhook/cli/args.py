"""The command line's argument types and shared options: each refuses a bad
value with argparse's usage error (exit 2), naming what was expected."""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Sequence
from typing import NoReturn, TypeVar

from webhook.cli.overrides import add_overrides

N = TypeVar("N", int, float)


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error on one line: what is wrong, and where help is."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def add_config(
    parser: argparse.ArgumentParser,
    help: str = "policy config (YAML); built-in defaults if omitted",
) -> None:
    parser.add_argument("--config", "-c", metavar="FILE", help=help)


def add_output(parser: argparse.ArgumentParser, formats: Sequence[str]) -> None:
    parser.add_argument("--output", "-o", choices=formats, default="text", help="output format")


# the names of webhook/cli/formats.py's renderers, without importing them here
REPORT_FORMATS = ("text", "json", "sarif", "junit", "github", "policyreport")

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def namespace_name(value: str) -> str:
    """A namespace as the API server accepts one: an RFC 1123 label."""
    if not _DNS_LABEL.match(value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a namespace name: at most 63 lowercase letters, digits "
            "and '-', starting and ending with a letter or digit"
        )
    return value


def _number(value: str, parse: Callable[[str], N], what: str, low: N, high: N, span: str) -> N:
    """`value` as a number from `low` to `high` (NaN and infinity are not), or
    argparse's usage error naming what was expected."""
    try:
        number = parse(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not {what}") from None
    if not low <= number <= high:
        raise argparse.ArgumentTypeError(f"{value} is not between {span}")
    return number


def port(value: str) -> int:
    """A TCP port, or 0 for any free one."""
    return _number(value, int, "a port number", 0, 65_535, "0 and 65535")


def positive_seconds(value: str) -> float:
    """A duration that must not be zero: a timeout or deadline of 0 would refuse everything."""
    return _number(value, float, "a number of seconds", 0.001, 86_400.0, "0.001 and 86400")


def seconds(value: str) -> float:
    """A duration that may be zero (a delay)."""
    return _number(value, float, "a number of seconds", 0.0, 86_400.0, "0 and 86400")


def count(value: str) -> int:
    """A count of at least one (workers, connections)."""
    return _number(value, int, "a whole number", 1, 1_000_000, "1 and 1000000")


def page_size(value: str) -> int:
    """A list page: 1 to 10,000 (0 would ask the API server for everything at once)."""
    return _number(value, int, "a whole number", 1, 10_000, "1 and 10000")


def seconds_between_passes(value: str) -> float:
    """A second to a day: 0 would run full passes back to back."""
    return _number(value, float, "a number of seconds", 1.0, 86_400.0, "1 second and a day")


def colour_enabled(stream: object, disabled: bool) -> bool:
    isatty = getattr(stream, "isatty", None)
    return not disabled and "NO_COLOR" not in os.environ and callable(isatty) and bool(isatty())


def positive_days(value: str) -> float:
    """A serving certificate's life: from about a minute and a half (for tests
    of rotation) to ten years, the managed CA's own."""
    return _number(value, float, "a number of days", 0.001, 3650.0, "0.001 and 3650")


def add_check_arguments(check: argparse.ArgumentParser) -> None:
    """`podgate check`'s options (webhook/cli/checking.py runs it)."""
    check.add_argument("paths", nargs="+", metavar="PATH")
    add_config(check)
    add_output(check, REPORT_FORMATS)
    check.add_argument(
        "--namespace",
        "-n",
        type=namespace_name,
        default="default",
        help="namespace of manifests that set none",
    )
    check.add_argument(
        "--ignore", action="append", default=[], metavar="GLOB",
        help="leave out files and folders whose name or path matches (repeatable), "
        "e.g. 'values*.yaml' or 'charts/*'",
    )  # fmt: skip
    check.add_argument(
        "--fix",
        action="store_true",
        help="print every input as one YAML stream, with the mutations' defaults injected",
    )
    check.add_argument(
        "--write", action="store_true", help="with --fix: rewrite the files in place"
    )
    check.add_argument(
        "--verbose", "-v", action="store_true",
        help="also list passing results, objects not evaluated and skipped files, with why",
    )  # fmt: skip
    check.add_argument("--no-color", action="store_true", help="never colour the text output")
    add_fail_on(check)
    add_overrides(check)


def add_fail_on(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--fail-on", choices=("deny", "warn", "audit"), default="deny",
        help="exit 1 for failures with this action or a stronger one (default deny; "
        "warn: warnings fail the build too)",
    )  # fmt: skip
