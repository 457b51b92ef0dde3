"""Helpers shared by the benchmarks (importable because each runs from bench/)."""

from pathlib import Path

import yaml


def first_hosts(inventory: Path, count: int, folder: Path) -> Path:
    """The lab inventory cut down to its first `count` hosts."""
    data = yaml.safe_load(inventory.read_text())
    left = count
    for group in data["all"]["children"].values():
        names = list(group["hosts"])
        group["hosts"] = {n: group["hosts"][n] for n in names[: max(left, 0)]}
        left -= len(group["hosts"])
    data["all"]["children"] = {k: g for k, g in data["all"]["children"].items() if g["hosts"]}
    path = folder / f"hosts{count}.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
