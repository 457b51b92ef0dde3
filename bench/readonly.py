#!/usr/bin/env python3
"""Time swarmctl's read-only commands on a realistic cluster, beside swarm mode's own.

Run as root: sudo .venv/bin/python bench/readonly.py [--runs 30] [--lab bq]
[--swarm-lab bqs] [--no-swarm] [--against DIR]
Brings up two 3-host labs of its own, both taken down at the end: "bq" for swarmctl and
"bqs" for Docker swarm mode (the anchor). Each gets the same cluster: networks front and
back, services web (12 replicas, then scaled to 10, so 2 tasks are history), api (9, on
both networks), cache (6) and mon (global): 32 tasks, 30 of them running. swarm's
services use --endpoint-mode dnsrr and publish no port (the lab kernel has no IPVS).

Each run, every command runs once, in turn, so machine noise hits all alike:
  - swarmctl's read-only commands, as a user types them (the console script, with the
    package's bytecode compiled as an install leaves it), from the root namespace;
  - the docker CLI against the swarm manager's socket: what a user on a manager types;
  - `python -c pass` and `python -c 'import swarmctl.cli'`, to tell start-up apart;
  - with --against DIR, the same commands of the swarmctl source tree in DIR (say, an
    export of main) on the same state: before and after a change, under the same noise.
Reported: p50 and p90 wall time, and p50 CPU time (user + system) of the process, which
load on a shared machine distorts less. Also checked once: that no swarmctl read-only
command makes a network system call (strace), and `service ls` run from the control
namespace, whose resolver drops every query, with the DNS queries it sent. Prints
figures only.
"""

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from services import Hosts, Swarm, run, tear_down, up, wait_until

# (name, docker service create options, replicas or None for global)
SERVICES = [
    ("web", ["--network", "front"], 12),
    ("api", ["--network", "front", "--network", "back"], 9),
    ("cache", ["--network", "back"], 6),
    ("mon", [], None),
]
SCALED_WEB = 10
NETWORKS = ("front", "back")


def swarmctl_cluster(hosts: Hosts, folder: Path) -> tuple[list[str], dict[str, str]]:
    """The console script and its environment, on a cluster set up through it."""
    cli = str(Path(sys.executable).with_name("swarmctl"))
    env = {
        **os.environ,
        "SWARMCTL_INVENTORY": str(hosts.lab.layout.inventory),
        "SWARMCTL_STATE": str(folder / "state.json"),
    }
    env.pop("SWARMCTL_LAB", None)

    def ctl(*args: str) -> str:
        return run([cli, *args], env=env)

    ctl("init", "manager1")
    ctl("join", "--all")
    for network in NETWORKS:
        ctl("network", "create", network)
    for name, options, replicas in SERVICES:
        count = ["--replicas", str(replicas)] if replicas else ["--mode", "global"]
        ports = ["-p", "8080:80"] if name == "web" else []
        ctl("service", "create", "-q", "--name", name, *count, *options, *ports, "nginx")
    ctl("service", "scale", f"web={SCALED_WEB}")
    return [cli], env


def swarm_cluster(hosts: Hosts) -> dict[str, str]:
    """swarm mode on the other lab, converged; the docker CLI's environment for it."""
    swarm = Swarm(hosts)
    swarm.join()
    for network in NETWORKS:
        hosts.ssh("manager1", f"docker network create -d overlay {network}")
    for name, options, replicas in SERVICES:
        count = f"--replicas {replicas}" if replicas else "--mode global"
        hosts.ssh(
            "manager1",
            f"docker service create -d -q --name {name} {count} {' '.join(options)} "
            "--endpoint-mode dnsrr nginx",
        )
    hosts.ssh("manager1", f"docker service scale -d web={SCALED_WEB}")
    manager = hosts.docker["manager1"]
    wanted = SCALED_WEB + 9 + 6 + len(hosts.hosts)
    wait_until(
        f"swarm's {wanted} tasks running",
        lambda: (
            sum(s["ServiceStatus"]["RunningTasks"] for s in manager.services(status=True)) == wanted
        ),
    )
    return {**os.environ, "DOCKER_HOST": f"unix://{hosts.lab.host('manager1').docker_socket}"}


def compile_package(env: dict[str, str]) -> None:
    """Bytecode for the swarmctl the CLI runs, as an install writes it (this machine's
    PYTHONDONTWRITEBYTECODE would otherwise have every run compile it again)."""
    where = run([sys.executable, "-c", "import swarmctl; print(swarmctl.__path__[0])"], env=env)
    run([sys.executable, "-m", "compileall", "-q", where.strip()], env=env)


def swarmctl_commands(
    cli: list[str], env: dict[str, str], task: str, name: str
) -> list[tuple[str, list[str], dict[str, str]]]:
    return [
        (f"{name} {' '.join(a)}", [*cli, *a], env)
        for a in (
            ["node", "ls"],
            ["node", "ps", "manager1"],
            ["service", "ls"],
            ["service", "ls", "--format", "json"],
            ["service", "ls", "--format", "{{.Name}}: {{.Replicas}}"],
            ["service", "ps", "web"],
            ["service", "inspect", "web"],
            ["network", "ls"],
            ["network", "inspect", "front"],
            ["inspect", "--type", "task", task],
            ["--help"],
        )
    ]


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one run of argv, which must succeed quietly."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0 or done.stderr:
        raise SystemExit(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def network_syscalls(argv: list[str], env: dict[str, str], folder: Path) -> int | None:
    """How many connect/sendto/sendmsg calls argv makes (None: no strace here)."""
    if not shutil.which("strace"):
        return None
    trace = folder / "strace.txt"
    calls = "trace=connect,sendto,sendmsg"
    run(["strace", "-f", "-qq", "-e", calls, "-o", str(trace), *argv], env=env)
    return len(trace.read_text().splitlines())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="runs of every command")
    parser.add_argument("--lab", default="bq", help="the swarmctl lab's name")
    parser.add_argument("--swarm-lab", default="bqs", help="the swarm mode lab's name")
    parser.add_argument("--no-swarm", action="store_true", help="time swarmctl only")
    parser.add_argument("--against", type=Path, help="another swarmctl source tree to time")
    args = parser.parse_args()
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    labs: list[Hosts] = []
    swarm: Swarm | None = None
    try:
        mine = up(args.lab)
        labs.append(mine)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            cli, env = swarmctl_cluster(mine, folder)
            compile_package(env)
            task = run([*cli, "service", "ps", "-q", "web"], env=env).split()[0]
            ours = swarmctl_commands(cli, env, task, "swarmctl")
            if args.against:
                other = {**env, "PYTHONPATH": str(args.against.resolve())}
                compile_package(other)
                ours += swarmctl_commands(cli, other, task, f"{args.against.name}:")
            commands = [
                ("python -c pass (interpreter start)", [sys.executable, "-c", "pass"], env),
                (
                    "python -c 'import swarmctl.cli'",
                    [sys.executable, "-c", "import swarmctl.cli"],
                    env,
                ),
                *ours,
            ]
            if not args.no_swarm:
                anchor = up(args.swarm_lab)
                labs.append(anchor)
                swarm = Swarm(anchor)
                docker_env = swarm_cluster(anchor)
                commands += [
                    (f"docker {' '.join(a)}", ["docker", *a], docker_env)
                    for a in (
                        ["node", "ls"],
                        ["node", "ps", "manager1"],
                        ["service", "ls"],
                        ["service", "ls", "--format", "json"],
                        ["service", "ps", "web"],
                        ["service", "inspect", "web"],
                        ["network", "ls"],
                        ["network", "inspect", "front"],
                    )
                ]
            walls: dict[str, list[float]] = {label: [] for label, _, _ in commands}
            cpus: dict[str, list[float]] = {label: [] for label, _, _ in commands}
            for _ in range(args.runs):
                for label, argv, command_env in commands:
                    wall, cpu = timed(argv, command_env)
                    walls[label].append(wall)
                    cpus[label].append(cpu)
            syscalls = {
                label: network_syscalls(argv, command_env, folder)
                for label, argv, command_env in ours
            }
            dead_dns = control_side(mine, cli, env, args.runs)
        report(walls, cpus, syscalls, dead_dns, args.runs)
    finally:
        tear_down(labs, swarm)
        print(f"load average at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


def control_side(hosts: Hosts, cli: list[str], env: dict[str, str], runs: int) -> dict:
    """`service ls` from the control namespace, whose resolver drops every query, beside
    the namespace wrapper alone; and the DNS queries sent meanwhile."""
    lab = hosts.lab
    sent = len(lab.dns_queries())
    ls = [timed(lab.control_argv([*cli, "service", "ls"]), env)[0] for _ in range(runs)]
    wrapper = [timed(lab.control_argv(["true"]), env)[0] for _ in range(runs)]
    return {"ls": ls, "wrapper": wrapper, "queries": len(lab.dns_queries()) - sent}


def ms(values: list[float], q: int) -> str:
    """The q-th percentile, in ms."""
    return f"{statistics.quantiles(values, n=100, method='inclusive')[q - 1] * 1000:7.0f}"


def report(
    walls: dict[str, list[float]],
    cpus: dict[str, list[float]],
    syscalls: dict[str, int | None],
    dead_dns: dict,
    runs: int,
) -> None:
    print(
        f"\nread-only commands, 3 hosts, {len(SERVICES)} services, 32 tasks (30 running),"
        f" {len(NETWORKS) + 1} networks; {runs} runs each, taking turns"
    )
    print(f"{'command':<52}{'p50 ms':>8}{'p90 ms':>8}{'cpu p50':>9}")
    for label, values in walls.items():
        print(f"{label[:51]:<52}{ms(values, 50)}{ms(values, 90)} {ms(cpus[label], 50)}")
    for prefix, peer in (("docker", "against a swarm manager"), ("", "the tree --against")):
        pairs = [
            (label, theirs)
            for label in walls
            if label.startswith("swarmctl ")
            for theirs in walls
            if theirs != label
            and theirs.split(" ", 1)[1] == label.split(" ", 1)[1]
            and (theirs.startswith("docker ") if prefix else not theirs.startswith("docker "))
        ]
        if pairs:
            print(f"\nswarmctl / {peer}, ratio of p50 wall times (p50 CPU times):")
            for ours, theirs in pairs:
                wall = statistics.median(walls[ours]) / statistics.median(walls[theirs])
                cpu = statistics.median(cpus[ours]) / statistics.median(cpus[theirs])
                print(f"  {ours.removeprefix('swarmctl ')[:40]:<42}{wall:5.2f} ({cpu:.2f})")
    found = {label: n for label, n in syscalls.items() if n}
    if None in syscalls.values():
        print("\nnetwork system calls: not checked (no strace)")
    else:
        print(f"\nnetwork system calls (strace): {found or 'none, in every swarmctl command'}")
    print(
        "service ls from the control namespace (resolver drops every query):"
        f" p50 {ms(dead_dns['ls'], 50).strip()} ms, the namespace wrapper alone"
        f" {ms(dead_dns['wrapper'], 50).strip()} ms; DNS queries sent: {dead_dns['queries']}"
    )


if __name__ == "__main__":
    main()
