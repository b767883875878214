"""Write podgate's config schema into the chart's values.schema.json under `config`.

    python chart/hack/update_config_schema.py          # rewrite the file
    python chart/hack/update_config_schema.py --check  # exit 1 if it is out of date

The schema comes from podgate's pydantic models (policies/config_schema.py);
tests/chart/test_config_schema.py fails while the file and the models differ.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from policies.config_schema import config_schema
from policies.plugins import builtin_registry

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "values.schema.json"


def updated(text: str) -> str:
    """values.schema.json's text with `config` made from the models."""
    values: dict[str, Any] = json.loads(text)
    values["properties"]["config"] = config_schema(builtin_registry())
    values["definitions"].pop("policySections", None)  # what `config` used before
    return json.dumps(values, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say whether it is current")
    args = parser.parse_args(argv)
    current = SCHEMA_FILE.read_text()
    wanted = updated(current)
    if args.check:
        if wanted != current:
            print(f"{SCHEMA_FILE.name} is out of date: run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    SCHEMA_FILE.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
