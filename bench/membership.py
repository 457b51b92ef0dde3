"""Time membership on a lab of its own: `join --all` for 3 and 8 hosts, `node ls` and `info`.

Run as root: .venv/bin/python bench/membership.py [--lab b3]
Brings up an 8-host lab (taken down at the end), runs the real CLI in subprocesses as a
user would, and prints figures only. A 3-host cluster uses the first 3 hosts of the lab.
Each `join --all` starts from a fresh state holding only the leader (`init` not counted).
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from labbench import first_hosts

HOSTS = 8
LS_RUNS = 20
JOIN_RUNS = 3


def swarmctl(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "swarmctl", *args], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise SystemExit(f"swarmctl {' '.join(args)}: {result.stderr.strip()}")
    return result


def timed(*args: str) -> float:
    start = time.perf_counter()
    swarmctl(*args)
    return time.perf_counter() - start


def join_all_seconds(inventory: Path, folder: Path) -> tuple[float, float]:
    """(init, best join --all) in seconds, each join from a state holding only the leader."""
    inits, joins = [], []
    for run in range(JOIN_RUNS):
        state = folder / f"{inventory.stem}-{run}.state.json"
        inits.append(timed("-i", str(inventory), "--state", str(state), "init"))
        joins.append(timed("-i", str(inventory), "--state", str(state), "join", "--all"))
    return min(inits), min(joins)


def median_seconds(*args: str, runs: int = LS_RUNS) -> float:
    return statistics.median(timed(*args) for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab", default="b3", help="name of the bench's own lab")
    lab = parser.parse_args().lab
    started = time.perf_counter()
    swarmctl("lab", "up", "--hosts", str(HOSTS), "--lab", lab)
    print(f"lab {lab}: {HOSTS} hosts up in {time.perf_counter() - started:.1f} s")
    try:
        inventory = Path(f"/var/lib/swarmctl/lab-{lab}/inventory.yml")
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            for count in (3, HOSTS):
                subset = first_hosts(inventory, count, folder)
                init, join = join_all_seconds(subset, folder)
                print(
                    f"{count} hosts: init {init * 1000:.0f} ms, join --all "
                    f"({count - 1} hosts) {join * 1000:.0f} ms (best of {JOIN_RUNS})"
                )
            state = folder / f"hosts{HOSTS}-0.state.json"
            ls = median_seconds("--state", str(state), "node", "ls")
            info = median_seconds("--state", str(state), "info")
            quiet = median_seconds("--state", str(state), "node", "ls", "-q")
            print(f"node ls ({HOSTS} nodes): {ls * 1000:.0f} ms (median of {LS_RUNS})")
            print(f"node ls -q ({HOSTS} nodes): {quiet * 1000:.0f} ms (median of {LS_RUNS})")
            print(f"info ({HOSTS} nodes): {info * 1000:.0f} ms (median of {LS_RUNS})")
    finally:
        swarmctl("lab", "down", "--lab", lab)
        print(f"lab {lab}: down")


if __name__ == "__main__":
    main()
