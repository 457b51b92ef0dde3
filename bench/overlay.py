#!/usr/bin/env python3
"""Measure swarmctl's overlay: TCP throughput across hosts against the underlay and against
Docker swarm mode's own VXLAN overlay, and the wall time of `network create` on 3 and on 8
hosts.

Run as root: sudo .venv/bin/python bench/overlay.py [--lab bo] [--rounds 3] [--runs 5]
[--seconds 5] [--requests 20000] [--throughput-only]
Brings up an 8-host lab of its own (taken down at the end; 2 hosts with
--throughput-only, which skips the `network create` timings) and drives the real CLI in
subprocesses, as a user would. Throughput: iperf3 (the lab's swarmctl/tools image) from
worker1 to manager1, once between two containers on a swarmctl overlay and once between
the two hosts' own network namespaces (containers with --network host), alternating,
and once between two containers on an attachable overlay of real swarm mode made on the
same two hosts (its data port moved to 4790 and its address pool out of swarmctl's way, so
both overlays coexist), rotating, `--rounds` times each, `--seconds` per test. Swarm's
overlay works in this lab (only its IPVS load balancing does not), so it is a peer doing
the same encapsulation on the same CPUs. Both ends share this machine's CPUs, so the
figures are CPU-bound and noisy when the machine is busy; the ratios are what to read.
Per-packet cost, which throughput hides under that noise: the p10 and p50 round trip of
64-byte UDP requests, `--requests` in a row, on each path (the host's python3 run inside
the containers' network namespaces, since the tools image has no UDP client).
`network create` is timed `--runs` times per cluster size, each network removed again.
Prints figures only.
"""

import argparse
import json
import os
import shlex
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


def iperf_gbits(lab: Lab, network: str, address: str, seconds: int) -> tuple[float, int]:
    """(Gbit/s received, retransmits) of one iperf3 run from CLIENT to `address`."""
    out = ssh(
        lab,
        CLIENT,
        f"docker run --rm --network {network} {TOOLS} iperf3 -c {address} -t {seconds} -J",
    )
    end = json.loads(out)["end"]
    return end["sum_received"]["bits_per_second"] / 1e9, end["sum_sent"].get("retransmits", 0)


def container_address(lab: Lab, name: str) -> str:
    template = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
    return ssh(lab, SERVER, f"docker inspect -f '{template}' {name}").strip()


ECHO = """import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 7777))
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(data, peer)
"""
ASK = """import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
count, times = int(sys.argv[2]), []
for _ in range(count + 200):  # the first 200 warm up caches and neighbour entries
    start = time.perf_counter_ns()
    s.sendto(bytes(64), (sys.argv[1], 7777))
    s.recv(2048)
    times.append(time.perf_counter_ns() - start)
times = sorted(times[200:])
print(times[count // 10] / 1000, times[count // 2] / 1000)
"""


def in_netns_of(lab: Lab, host: str, container: str, command: str) -> str:
    pid = ssh(lab, host, f"docker inspect -f '{{{{.State.Pid}}}}' {container}").strip()
    return ssh(lab, host, f"nsenter -t {pid} -n {command}")


def round_trip_us(lab: Lab, client: str, address: str, requests: int) -> tuple[float, float]:
    """(p10, p50) in microseconds of UDP request-response from `client`'s netns."""
    out = in_netns_of(lab, CLIENT, client, f"python3 -c {shlex.quote(ASK)} {address} {requests}")
    p10, p50 = out.split()
    return float(p10), float(p50)


def swarm_overlay_up(lab: Lab) -> None:
    """Real swarm mode on SERVER and CLIENT, with an attachable overlay `swarmperf`."""
    address = lab.host(SERVER).address
    ssh(
        lab,
        SERVER,
        f"docker swarm init --advertise-addr {address} --data-path-port 4790"
        " --default-addr-pool 10.250.0.0/16 >/dev/null",
    )
    token = ssh(lab, SERVER, "docker swarm join-token -q worker").strip()
    ssh(lab, CLIENT, f"docker swarm join --token {token} {address}:2377 >/dev/null")
    ssh(lab, SERVER, "docker network create -d overlay --attachable swarmperf >/dev/null")


def swarm_overlay_down(lab: Lab) -> None:
    for host in (CLIENT, SERVER):
        ssh(lab, host, "docker swarm leave --force >/dev/null 2>&1 || true")


def throughput(lab: Lab, env: dict[str, str], rounds: int, seconds: int, requests: int) -> None:
    swarmctl("network", "create", "-d", "overlay", "perf", env=env)
    for host in (SERVER, CLIENT):
        ssh(lab, host, f"docker pull -q {TOOLS}")
    swarm_overlay_up(lab)
    servers = {"iperf-overlay": "perf", "iperf-underlay": "host", "iperf-swarm": "swarmperf"}
    for name, network in servers.items():
        ssh(lab, SERVER, f"docker run -d --name {name} --network {network} {TOOLS} iperf3 -s")
    try:
        paths = {  # path -> (network the client joins, server address)
            "underlay": ("host", lab.host(SERVER).address),
            "swarmctl": ("perf", container_address(lab, "iperf-overlay")),
            "swarm": ("swarmperf", container_address(lab, "iperf-swarm")),
        }
        time.sleep(0.5)  # the servers listening
        runs: dict[str, list[float]] = {path: [] for path in paths}
        print(f"iperf3 {CLIENT} -> {SERVER}, {seconds} s per run:")
        order = list(paths)
        for round_ in range(1, rounds + 1):
            retransmits = {}
            for path in order:
                gbits, retransmits[path] = iperf_gbits(lab, *paths[path], seconds)
                runs[path].append(gbits)
            order = order[1:] + order[:1]  # no path always runs right after another
            line = ", ".join(
                f"{path} {values[-1]:6.2f} Gbit/s ({retransmits[path]} retr)"
                for path, values in runs.items()
            )
            ratio = runs["swarmctl"][-1] / runs["swarm"][-1]
            print(f"  round {round_}: {line}; swarmctl/swarm {ratio:.2f}")
        print_throughput(runs, rounds)
        if requests:
            round_trips(lab, paths, servers, requests)
    finally:
        ssh(lab, SERVER, f"docker rm -f {' '.join(servers)} >/dev/null")
        ssh(lab, CLIENT, f"docker rm -f {' '.join(CLIENTS)} >/dev/null 2>&1 || true")
        swarm_overlay_down(lab)
        swarmctl("network", "rm", "perf", env=env)


CLIENTS = ("rr-swarmctl", "rr-swarm", "rr-underlay")


def round_trips(
    lab: Lab, paths: dict[str, tuple[str, str]], servers: dict[str, str], requests: int
) -> None:
    """UDP request-response on each path, the paths taking turns, three times."""
    echo = f"python3 -c {shlex.quote(ECHO)} </dev/null >/dev/null 2>&1 & echo $!"
    pids = [in_netns_of(lab, SERVER, server, echo).strip() for server in servers]
    clients = dict(zip(paths, CLIENTS, strict=True))
    for path, client in clients.items():
        ssh(
            lab,
            CLIENT,
            f"docker run -d --name {client} --network {paths[path][0]} {TOOLS} sleep 1d",
        )
    times: dict[str, list[tuple[float, float]]] = {path: [] for path in paths}
    for _ in range(3):
        for path, client in clients.items():
            times[path].append(round_trip_us(lab, client, paths[path][1], requests))
    print(f"UDP request-response, 64 bytes, {requests} in a row, 3 runs per path (median of runs):")
    p10 = {path: statistics.median(p for p, _ in runs) for path, runs in times.items()}
    p50 = {path: statistics.median(p for _, p in runs) for path, runs in times.items()}
    for path in times:
        print(f"  {path:9s} p10 {p10[path]:5.1f} us, p50 {p50[path]:5.1f} us")
    print(
        f"  swarmctl - swarm per round trip: p10 {p10['swarmctl'] - p10['swarm']:+.1f} us,"
        f" p50 {p50['swarmctl'] - p50['swarm']:+.1f} us"
    )
    ssh(lab, SERVER, f"kill {' '.join(pids)}")


def print_throughput(runs: dict[str, list[float]], rounds: int) -> None:
    median = {path: statistics.median(values) for path, values in runs.items()}
    print(
        f"  median of {rounds}: underlay {median['underlay']:.2f} Gbit/s,"
        f" swarmctl overlay {median['swarmctl']:.2f} Gbit/s,"
        f" swarm overlay {median['swarm']:.2f} Gbit/s"
    )
    paired = statistics.median(a / b for a, b in zip(runs["swarmctl"], runs["swarm"], strict=True))
    print(
        f"  swarmctl/swarm = {median['swarmctl'] / median['swarm']:.2f}"
        f" (median of the rounds' own ratios {paired:.2f}),"
        f" swarmctl/underlay = {median['swarmctl'] / median['underlay']:.2f},"
        f" swarm/underlay = {median['swarm'] / median['underlay']:.2f}"
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
    parser.add_argument("--seconds", type=int, default=5, help="length of one iperf3 run")
    parser.add_argument(
        "--requests", type=int, default=20000, help="UDP round trips per run (0: none)"
    )
    parser.add_argument(
        "--throughput-only", action="store_true", help="2 hosts, no network create timings"
    )
    args = parser.parse_args()
    lab = Lab(LabLayout(args.lab), say=lambda _: None)
    lab.down()  # leftovers of an interrupted run
    started = time.perf_counter()
    hosts = 2 if args.throughput_only else HOSTS
    lab.up(hosts)
    print(f"lab {args.lab}: {hosts} hosts up in {time.perf_counter() - started:.1f} s")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            if args.throughput_only:
                env2 = cluster(first_hosts(lab.layout.inventory, 2, folder), folder)
                throughput(lab, env2, args.rounds, args.seconds, args.requests)
                return
            env3 = cluster(first_hosts(lab.layout.inventory, 3, folder), folder)
            report_create(3, network_create_seconds(env3, args.runs))
            throughput(lab, env3, args.rounds, args.seconds, args.requests)
            env8 = cluster(first_hosts(lab.layout.inventory, HOSTS, folder), folder)
            report_create(HOSTS, network_create_seconds(env8, args.runs))
    finally:
        lab.down()
        print(f"lab {args.lab}: down")


if __name__ == "__main__":
    main()
