#!/usr/bin/env python3
"""Measure swarmctl's overlay: TCP throughput across hosts against the underlay, and the
wall time of `network create` on 3 and on 8 hosts.

Run as root: sudo .venv/bin/python bench/overlay.py [--lab bo] [--rounds 3] [--runs 5]
Brings up an 8-host lab of its own (taken down at the end) and drives the real CLI in
subprocesses, as a user would. Throughput: iperf3 (the lab's swarmctl/tools image) from
worker1 to manager1, once between two containers on a swarmctl overlay and once between
the two hosts' own network namespaces (containers with --network host), alternating,
`--rounds` times each, 5 s per test. Both ends share this machine's CPUs, so the figures
are CPU-bound and noisy when the machine is busy; the ratio is what to read.
`network create` is timed `--runs` times per cluster size, each network removed again.
Prints figures only.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from labbench import first_hosts

from swarmctl.lab.layout import LabLayout
from swarmctl.lab.manager import Lab

HOSTS = 8
SECONDS = 5
SERVER, CLIENT = "manager1", "worker1"
TOOLS = "swarmctl/tools"


def swarmctl(*args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "swarmctl", *args], capture_output=True, text=True, env=env
    )
    if result.returncode != 0:
        raise SystemExit(f"swarmctl {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def ssh(lab: Lab, host: str, command: str) -> str:
    result = subprocess.run(lab.ssh_argv(host, [command]), capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{host}: {command}: {result.stderr.strip()}")
    return result.stdout


def cluster(inventory: Path, folder: Path) -> dict[str, str]:
    """A fresh cluster of every host in `inventory`; the environment that selects it."""
    env = {
        **os.environ,
        "SWARMCTL_INVENTORY": str(inventory),
        "SWARMCTL_STATE": str(folder / f"{inventory.stem}.state.json"),
    }
    env.pop("SWARMCTL_LAB", None)
    swarmctl("init", "manager1", env=env)
    swarmctl("join", "--all", env=env)
    return env


def network_create_seconds(env: dict[str, str], runs: int) -> list[float]:
    times = []
    for run in range(runs):
        name = f"bench{run}"
        start = time.perf_counter()
        swarmctl("network", "create", "-d", "overlay", name, env=env)
        times.append(time.perf_counter() - start)
        swarmctl("network", "rm", name, env=env)
    return times


def iperf_gbits(lab: Lab, network: str, address: str) -> tuple[float, int]:
    """(Gbit/s received, retransmits) of one iperf3 run from CLIENT to `address`."""
    out = ssh(
        lab,
        CLIENT,
        f"docker run --rm --network {network} {TOOLS} iperf3 -c {address} -t {SECONDS} -J",
    )
    end = json.loads(out)["end"]
    return end["sum_received"]["bits_per_second"] / 1e9, end["sum_sent"].get("retransmits", 0)


def throughput(lab: Lab, env: dict[str, str], rounds: int) -> None:
    swarmctl("network", "create", "-d", "overlay", "perf", env=env)
    for host in (SERVER, CLIENT):
        ssh(lab, host, f"docker pull -q {TOOLS}")
    ssh(lab, SERVER, f"docker run -d --name iperf-overlay --network perf {TOOLS} iperf3 -s")
    ssh(lab, SERVER, f"docker run -d --name iperf-underlay --network host {TOOLS} iperf3 -s")
    try:
        overlay_ip = ssh(
            lab,
            SERVER,
            "docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}'"
            " iperf-overlay",
        ).strip()
        underlay_ip = lab.host(SERVER).address
        time.sleep(0.5)  # the servers listening
        under, over = [], []
        print(f"iperf3 {CLIENT} -> {SERVER}, {SECONDS} s per run:")
        for round_ in range(1, rounds + 1):
            under.append(iperf_gbits(lab, "host", underlay_ip))
            over.append(iperf_gbits(lab, "perf", overlay_ip))
            print(
                f"  round {round_}: underlay {under[-1][0]:6.2f} Gbit/s ({under[-1][1]} retr),"
                f" overlay {over[-1][0]:6.2f} Gbit/s ({over[-1][1]} retr),"
                f" ratio {over[-1][0] / under[-1][0]:.2f}"
            )
    finally:
        ssh(lab, SERVER, "docker rm -f iperf-overlay iperf-underlay >/dev/null")
        swarmctl("network", "rm", "perf", env=env)
    u = statistics.median(g for g, _ in under)
    o = statistics.median(g for g, _ in over)
    print(
        f"  median of {rounds}: underlay {u:.2f} Gbit/s, overlay {o:.2f} Gbit/s,"
        f" overlay/underlay = {o / u:.2f}"
    )


def report_create(hosts: int, times: list[float]) -> None:
    print(
        f"network create on {hosts} hosts: median {statistics.median(times) * 1000:.0f} ms,"
        f" min {min(times) * 1000:.0f} ms ({len(times)} runs)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab", default="bo", help="name of the bench's own lab")
    parser.add_argument("--rounds", type=int, default=3, help="iperf3 runs per path")
    parser.add_argument("--runs", type=int, default=5, help="network creates per size")
    args = parser.parse_args()
    lab = Lab(LabLayout(args.lab), say=lambda _: None)
    lab.down()  # leftovers of an interrupted run
    started = time.perf_counter()
    lab.up(HOSTS)
    print(f"lab {args.lab}: {HOSTS} hosts up in {time.perf_counter() - started:.1f} s")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            env3 = cluster(first_hosts(lab.layout.inventory, 3, folder), folder)
            report_create(3, network_create_seconds(env3, args.runs))
            throughput(lab, env3, args.rounds)
            env8 = cluster(first_hosts(lab.layout.inventory, HOSTS, folder), folder)
            report_create(HOSTS, network_create_seconds(env8, args.runs))
    finally:
        lab.down()
        print(f"lab {args.lab}: down")


if __name__ == "__main__":
    main()
