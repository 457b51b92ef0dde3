#!/usr/bin/env python3
"""Time `swarmctl lab up` for 3 and 8 hosts and `lab down`, and the memory a lab takes.

Run as root: sudo .venv/bin/python bench/lab.py [--runs 3]
Uses labs of its own ("bl3", "bl8"), each brought up and down `--runs` times through the
real CLI, as a user would; the images are built again each time (every lab has its own
registry; the .deb files are cached). Memory is MemAvailable from /proc/meminfo (what
`free` shows as "available") just before `up` and just after it returns: other work on
the machine moves it too, so read it as a rough figure. Prints figures only.
"""

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

LABS = {3: "bl3", 8: "bl8"}
MIB = 2**20


def swarmctl(*args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "swarmctl", *args], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise SystemExit(f"swarmctl {' '.join(args)}: {result.stderr.strip()}")


def timed(*args: str) -> float:
    start = time.perf_counter()
    swarmctl(*args)
    return time.perf_counter() - start


def available_mib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024 / MIB
    raise SystemExit("no MemAvailable in /proc/meminfo")


def summary(values: list[float], unit: str = "s", digits: int = 2) -> str:
    return (
        f"median {statistics.median(values):.{digits}f} {unit}, "
        f"min {min(values):.{digits}f} {unit}, max {max(values):.{digits}f} {unit}"
    )


def bench(hosts: int, lab: str, runs: int) -> None:
    ups, agains, downs, taken, left = [], [], [], [], []
    for _ in range(runs):
        before = available_mib()
        ups.append(timed("lab", "up", "--hosts", str(hosts), "--lab", lab))
        after_up = available_mib()
        agains.append(timed("lab", "up", "--hosts", str(hosts), "--lab", lab))
        downs.append(timed("lab", "down", "--lab", lab))
        after_down = available_mib()
        taken.append(before - after_up)
        left.append(before - after_down)
    rows = [
        (f"lab up, {hosts} hosts", f"{summary(ups)} ({runs} runs)"),
        (f"lab up again, {hosts} hosts", f"{summary(agains)} (already up: a no-op)"),
        (f"lab down, {hosts} hosts", summary(downs)),
        (
            "MemAvailable drop, up",
            f"{summary(taken, 'MiB', 0)} ({statistics.median(taken) / hosts:.0f} MiB per host)",
        ),
        ("MemAvailable drop, down", f"{summary(left, 'MiB', 0)} (after down, vs before up)"),
    ]
    for label, figures in rows:
        print(f"{label:<26}{figures}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    print(f"MemAvailable at start: {available_mib():.0f} MiB")
    try:
        for hosts, lab in LABS.items():
            swarmctl("lab", "down", "--lab", lab)  # leftovers of an interrupted run
            bench(hosts, lab, runs)
    finally:
        for lab in LABS.values():
            swarmctl("lab", "down", "--lab", lab)


if __name__ == "__main__":
    main()
