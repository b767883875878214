"""What podgate says about itself: `--version`, `version`, `completion SHELL`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from policies.config import load_config


def version_info() -> dict[str, str]:
    """What `podgate version` reports, the way kubectl's `version -o json` does."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    import yaml

    try:
        podgate = version("podgate")
    except PackageNotFoundError:  # run from a checkout that was never installed
        podgate = "unknown"
    return {
        "version": podgate,
        "python": platform.python_version(),
        "platform": f"{sys.platform}/{platform.machine()}",
        "yamlParser": "libyaml" if hasattr(yaml, "CSafeLoader") else "pure Python",
    }


class Version(argparse.Action):
    """`--version`, looked up only when asked: `podgate check` starts without it."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help=str(kwargs.get("help", "")))

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        print(f"podgate {version_info()['version']}")
        parser.exit()


def cmd_version(args: argparse.Namespace) -> int:
    info = version_info()
    if args.output == "json":
        print(json.dumps(info, indent=2))
    else:
        print(f"podgate {info['version']} (Python {info['python']}, {info['platform']}, "
              f"{info['yamlParser']} YAML parser)")  # fmt: skip
    return 0


def cmd_completion(args: argparse.Namespace) -> int:
    from webhook.cli.completion import Names, script

    registry = load_config(args.config).registry  # plugins' policies complete too
    entries = [*registry.policies.items(), *registry.mutations.items()]
    settings = [
        f"{eid}.{name}=" for eid, entry in entries for name in entry.meta.params.model_fields
    ]
    names = Names(sorted(registry.policies), sorted(registry.ids()), settings)
    print(script(args.shell, args.build_parser(), names), end="")
    return 0
