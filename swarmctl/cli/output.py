"""Printing for every command: docker-style tables, JSON, and -q."""

import json
import sys
from collections.abc import Sequence
from typing import Any


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Columns padded as docker pads them: three spaces between, no trailing blanks."""
    widths = [max([len(h), *(len(str(r[i])) for r in rows)]) for i, h in enumerate(headers)]
    for line in [headers, *rows]:
        cells = [str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)]
        print("   ".join(cells).rstrip())


def warn(lines: Sequence[str]) -> None:
    for line in lines:
        print(f"Warning: {line}", file=sys.stderr)


def as_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, sort_keys=False)
    print()


def check_format(fmt: str) -> None:
    from swarmctl.errors import SwarmctlError

    if fmt not in ("table", "json"):
        raise SwarmctlError(f"--format {fmt!r}: use table or json")
