#!/usr/bin/env python3
"""Time recovery under `swarmctl supervise` with its defaults, against swarm mode's, and
the cost of one supervisor tick as the cluster grows.

Run as root: sudo .venv/bin/python bench/recovery.py [--trials 10] [--no-swarm]
[--labs online,offline] [--against DIR]
Brings up labs of its own, each taken down at the end: "br" (8 hosts) for swarmctl,
"bro" (3 hosts) in the hostile mode (`lab up --offline`: no registry, and the CLI and the
supervisor run from a control side whose resolver drops every query), then "brs" (3
hosts) for Docker swarm mode (the anchor). Figures:
- tick: Supervisor.tick() run in this process on clusters of 1, 3 and 8 nodes, each
  with a global nginx service (one task per node); the first tick (which also converges
  overlays and mesh) is shown apart, then TICKS more back to back;
- container killed: on 3 hosts, a service of `--trials` replicas; trial i removes the
  container of slot i (`docker rm -f`, on the host's socket) and waits until a new task
  of slot i is running. A different slot each trial, because a slot that keeps failing
  backs off on purpose;
- host killed: on 3 hosts, a fresh service of 6 replicas each trial; `lab kill worker2`
  (every process of the host dies), until all 6 run on the other hosts; then
  `lab start worker2`, until it is ready again.
Times run from the moment the kill returned. "seen" is when polling (`swarmctl inspect
--type task`, or the swarm manager's API) first showed the recovery; "recorded" is the
replacement's own running timestamp. swarm runs with its defaults (restart delay 5 s,
image resolved to a digest so nodes do not pull). With --against DIR, the kills run
again with another swarmctl source tree (say, an export of main before a change) on a
3-host lab of its own, "bra": before and after in one run. Prints figures only.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import docker
from labbench import first_hosts

from swarmctl.inventory import load_inventory
from swarmctl.lab.layout import LabLayout
from swarmctl.lab.manager import Lab
from swarmctl.state import StateStore, leases
from swarmctl.supervisor import Settings, Supervisor

TICKS = 20
SIZES = (1, 3, 8)
HOST_REPLICAS = 6
VICTIM = "worker2"
TIMEOUT = 90.0
TARGETS = {"container": 2.0, "host": 8.0, "tick": 1.5}
NOTES = {"container": "5.8 s", "host": "20-21.5 s"}  # swarm, /work/shared/lab-notes.md
T = TypeVar("T")


def run(argv: list[str], env: dict[str, str] | None = None) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=TIMEOUT)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)}: {result.stderr.strip()}")
    return result.stdout


def poll(check: Callable[[], T | None], timeout: float = TIMEOUT) -> T | None:
    """The first truthy value of check(), or None after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    return None


def since(moment: datetime, stamp: str) -> float:
    return (datetime.fromisoformat(stamp.replace("Z", "+00:00")) - moment).total_seconds()


def percentile(values: list[float], p: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def up(name: str, hosts: int, offline: bool = False) -> Lab:
    lab = Lab(LabLayout(name), say=lambda _: None)
    lab.down()  # leftovers of an interrupted run
    started = time.perf_counter()
    lab.up(hosts, offline=offline)
    print(f"lab {name}: {hosts} hosts up in {time.perf_counter() - started:.1f} s", flush=True)
    if not offline:  # offline, the lab loaded it: nothing can be pulled
        for host in lab.recorded_hosts():
            run(lab.ssh_argv(host.name, ["docker pull -q nginx"]))
    return lab


def kill_container(lab: Lab, host: str, container_id: str) -> datetime:
    client = docker.APIClient(base_url=f"unix://{lab.host(host).docker_socket}")
    with client:
        client.remove_container(container_id, force=True)
    return datetime.now(UTC)


class Cluster:
    """A swarmctl cluster on the first hosts of the lab, driven through the real CLI."""

    def __init__(
        self,
        lab: Lab,
        hosts: int,
        folder: Path,
        name: str,
        dead_dns: bool = False,
        tree: Path | None = None,
    ) -> None:
        self.lab = lab
        self.dead_dns = dead_dns
        self.inventory = first_hosts(lab.layout.inventory, hosts, folder)
        self.state = folder / f"{name}.state.json"
        self.env = {
            **os.environ,
            "SWARMCTL_INVENTORY": str(self.inventory),
            "SWARMCTL_STATE": str(self.state),
        }
        self.env.pop("SWARMCTL_LAB", None)
        if tree is not None:  # another source tree's swarmctl, before the installed one
            self.env["PYTHONPATH"] = str(tree.resolve())
        self("init", "manager1")
        if hosts > 1:
            self("join", "--all")
        self.hostname = {n["ID"]: n["Description"]["Hostname"] for n in self.nodes()}

    def argv(self, argv: list[str]) -> list[str]:
        """argv as run from the control side, through the dead resolver in hostile mode."""
        return self.lab.control_argv(argv) if self.dead_dns else argv

    def __call__(self, *args: str) -> str:
        return run(self.argv([sys.executable, "-m", "swarmctl", *args]), env=self.env)

    def tasks(self, service: str) -> list[dict[str, Any]]:
        ids = self("service", "ps", "-q", service).split()
        return json.loads(self("inspect", "--type", "task", *ids)) if ids else []

    def running(self, service: str) -> list[dict[str, Any]]:
        return [
            t
            for t in self.tasks(service)
            if t["state"] == "running" and t["desired_state"] == "running"
        ]

    def node_state(self, host: str) -> str:
        return json.loads(self("node", "inspect", host))[0]["Status"]["State"]

    def settle(self) -> None:
        """Let a tick that raced the last removal pass, then wait for every node ready: a
        supervisor that sees a container vanish between `docker ps` and `docker inspect`
        marks its node Unknown for a tick, and a service created then finds no node."""
        time.sleep(2 * Settings().interval)
        poll(lambda: all(n["Status"]["State"] == "ready" for n in self.nodes()))

    def nodes(self) -> list[dict[str, Any]]:
        return json.loads(self("node", "inspect", *self("node", "ls", "-q").split()))


# ------------------------------------------------------------------------------ ticks


def tick_seconds(cluster: Cluster) -> dict[str, Any]:
    """A supervisor in this process: its first tick, then TICKS more back to back; the
    CPU time this process spent per tick; and, for scale, a bare `true` run on every node
    in parallel over the same open connections."""
    store = StateStore(cluster.state)
    inventory = load_inventory(cluster.inventory)
    supervisor = Supervisor(store, inventory, Settings(), say=print)
    times, bare = [], []
    with supervisor.pool:
        start = time.perf_counter()
        supervisor.tick()
        first = time.perf_counter() - start
        cpu = time.process_time()
        for _ in range(TICKS):
            time.sleep(0.1)
            start = time.perf_counter()
            supervisor.tick()
            times.append(time.perf_counter() - start)
        cpu = (time.process_time() - cpu) / TICKS
        for _ in range(TICKS):
            start = time.perf_counter()
            supervisor.pool.each(lambda conn: conn.run("true"), list(inventory.hosts))
            bare.append(time.perf_counter() - start)
    with store.transaction() as db:
        leases.release(db, leases.SUPERVISOR, supervisor.holder)
    return {"first": first, "times": times, "cpu": cpu, "bare": statistics.median(bare)}


def ticks(lab: Lab, folder: Path) -> dict[int, list[float]]:
    found = {}
    print(f"\nSupervisor.tick(), a global nginx service, {TICKS} ticks after the first:")
    for size in SIZES:
        cluster = Cluster(lab, size, folder, f"tick{size}")
        cluster("service", "create", "--name", "tick", "--mode", "global", "nginx")
        tick = tick_seconds(cluster)
        cluster("service", "rm", "tick", "--yes")
        times = found[size] = tick["times"]
        median, p90, least = (
            1000 * v for v in (statistics.median(times), percentile(times, 90), min(times))
        )
        nodes = f"{size} node{'s' if size > 1 else ''}"
        print(
            f"  {nodes:<8} median {median:4.0f} ms, p90 {p90:4.0f} ms, min {least:4.0f} ms"
            f" (first tick {tick['first'] * 1000:.0f} ms); this process's CPU per tick"
            f" {tick['cpu'] * 1000:.0f} ms; `true` on every node {tick['bare'] * 1000:.0f} ms",
            flush=True,
        )
    return found


# ----------------------------------------------------------------------- swarmctl


class Supervise:
    """`swarmctl supervise` with its defaults, in the background."""

    def __init__(self, cluster: Cluster, log: Path) -> None:
        self.log = log
        with open(log, "w") as out:
            self.proc = subprocess.Popen(
                cluster.argv([sys.executable, "-m", "swarmctl", "supervise"]),
                env=cluster.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.started = time.monotonic()

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise SystemExit(f"swarmctl supervise exited: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        lines = self.log.read_text(errors="replace").splitlines()
        warnings = [line for line in lines if "level=warning" in line]
        errors = [line for line in lines if "level=error" in line or "Traceback" in line]
        nodes = [line for line in lines if "node.id=" in line]
        print(
            f"supervisor log: {len(lines)} lines, {len(warnings)} warnings, {len(errors)} errors,"
            f" {len(nodes)} node state changes"
        )
        for line in (errors + warnings + nodes)[:12]:
            print(f"  {line[:240]}")


def swarmctl_container_kills(cluster: Cluster, trials: int, sup: Supervise) -> list[tuple]:
    cluster("service", "create", "--name", "web", "--replicas", str(trials), "nginx")
    found = []
    for slot in range(1, trials + 1):
        sup.check()
        tasks = poll(lambda: len(r := cluster.running("web")) == trials and r)
        if not tasks:
            raise SystemExit(f"web is not back to {trials} running tasks")
        (victim,) = [t for t in tasks if t["slot"] == slot]
        host = cluster.hostname[victim["node_id"]]
        killed = kill_container(cluster.lab, host, victim["container_id"])

        def replaced(slot: int = slot, victim: dict = victim) -> dict | None:
            return next(
                (
                    t
                    for t in cluster.running("web")
                    if t["slot"] == slot and t["id"] != victim["id"]
                ),
                None,
            )

        new = poll(replaced)
        seen = (datetime.now(UTC) - killed).total_seconds()
        found.append((seen, since(killed, new["timestamps"]["running"])) if new else None)
        time.sleep(0.5)
    cluster("service", "rm", "web", "--yes")
    cluster.settle()
    return found


def swarmctl_host_kills(cluster: Cluster, trials: int, sup: Supervise) -> list[tuple]:
    # Right after it starts, the supervisor waits for twice as many missed heartbeats.
    grace = 2 * Settings().misses * Settings().interval + 2
    time.sleep(max(0.0, sup.started + grace - time.monotonic()))
    found = []
    victim_id = next(i for i, h in cluster.hostname.items() if h == VICTIM)
    for trial in range(1, trials + 1):
        sup.check()
        service = f"hk{trial}"
        cluster("service", "create", "--name", service, "--replicas", str(HOST_REPLICAS), "nginx")
        lost = {t["id"] for t in cluster.running(service) if t["node_id"] == victim_id}
        cluster.lab.kill(VICTIM)
        killed = datetime.now(UTC)

        def elsewhere(service: str = service, lost: set = lost) -> list | None:
            tasks = cluster.running(service)
            ok = len(tasks) == HOST_REPLICAS and not any(
                t["id"] in lost or t["node_id"] == victim_id for t in tasks
            )
            return tasks if ok else None

        tasks = poll(elsewhere)
        seen = (datetime.now(UTC) - killed).total_seconds()
        if tasks and lost:
            found.append((seen, max(since(killed, t["timestamps"]["running"]) for t in tasks)))
        else:
            found.append(None)
        cluster.lab.start(VICTIM)
        poll(lambda: cluster.node_state(VICTIM) == "ready")
        cluster("service", "rm", service, "--yes")
        cluster.settle()
    return found


def swarmctl_kills(cluster: Cluster, trials: int, folder: Path, label: str) -> tuple[list, list]:
    """Container kills, then host kills, under one `swarmctl supervise`."""
    sup = Supervise(cluster, folder / f"supervise-{cluster.state.stem}.log")
    try:
        containers = swarmctl_container_kills(cluster, trials, sup)
        print(f"{label}: {trials} container kills done", flush=True)
        hosts = swarmctl_host_kills(cluster, trials, sup)
        print(f"{label}: {trials} host kills done", flush=True)
    finally:
        sup.stop()
    return containers, hosts


# -------------------------------------------------------------------------- swarm


class Swarm:
    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        manager = lab.host("manager1")
        self.ssh("manager1", f"docker swarm init --advertise-addr {manager.address}")
        token = self.ssh("manager1", "docker swarm join-token -q worker").strip()
        for host in lab.recorded_hosts()[1:]:
            self.ssh(host.name, f"docker swarm join --token {token} {manager.address}:2377")
        self.api = docker.APIClient(base_url=f"unix://{manager.docker_socket}")
        self.hostname = {n["ID"]: n["Description"]["Hostname"] for n in self.api.nodes()}

    def ssh(self, host: str, command: str) -> str:
        return run(self.lab.ssh_argv(host, [command]))

    def create(self, service: str, replicas: int) -> None:
        self.ssh(
            "manager1", f"docker service create -d --name {service} --replicas {replicas} nginx"
        )
        if not poll(lambda: len(self.running(service)) == replicas):
            raise SystemExit(f"swarm: {service} did not reach {replicas} running tasks")

    def running(self, service: str) -> list[dict[str, Any]]:
        tasks = self.api.tasks(filters={"service": service, "desired-state": "running"})
        return [t for t in tasks if t["Status"]["State"] == "running"]

    def node_ready(self, host: str) -> bool:
        return any(
            n["Description"]["Hostname"] == host and n["Status"]["State"] == "ready"
            for n in self.api.nodes()
        )

    def remove(self, service: str) -> None:
        self.ssh("manager1", f"docker service rm {service}")
        poll(lambda: not self.containers_of(service), timeout=30)

    def containers_of(self, service: str) -> int:
        label = {"label": f"com.docker.swarm.service.name={service}"}
        count = 0
        for host in self.lab.recorded_hosts():
            with docker.APIClient(base_url=f"unix://{host.docker_socket}") as client:
                count += len(client.containers(all=True, filters=label))
        return count

    def close(self) -> None:
        self.api.close()


def swarm_container_kills(swarm: Swarm, trials: int) -> list[tuple]:
    swarm.create("web", trials)
    found = []
    for slot in range(1, trials + 1):
        tasks = poll(lambda: len(r := swarm.running("web")) == trials and r)
        if not tasks:
            raise SystemExit(f"swarm: web is not back to {trials} running tasks")
        (victim,) = [t for t in tasks if t["Slot"] == slot]
        killed = kill_container(
            swarm.lab,
            swarm.hostname[victim["NodeID"]],
            victim["Status"]["ContainerStatus"]["ContainerID"],
        )

        def replaced(slot: int = slot, victim: dict = victim) -> dict | None:
            return next(
                (t for t in swarm.running("web") if t["Slot"] == slot and t["ID"] != victim["ID"]),
                None,
            )

        new = poll(replaced)
        seen = (datetime.now(UTC) - killed).total_seconds()
        found.append((seen, since(killed, new["Status"]["Timestamp"])) if new else None)
    swarm.remove("web")
    return found


def swarm_host_kills(swarm: Swarm, trials: int) -> list[tuple]:
    victim_id = next(i for i, h in swarm.hostname.items() if h == VICTIM)
    found = []
    for trial in range(1, trials + 1):
        service = f"hk{trial}"
        swarm.create(service, HOST_REPLICAS)
        lost = {t["ID"] for t in swarm.running(service) if t["NodeID"] == victim_id}
        swarm.lab.kill(VICTIM)
        killed = datetime.now(UTC)

        def elsewhere(service: str = service, lost: set = lost) -> list | None:
            tasks = swarm.running(service)
            ok = len(tasks) == HOST_REPLICAS and not any(
                t["ID"] in lost or t["NodeID"] == victim_id for t in tasks
            )
            return tasks if ok else None

        tasks = poll(elsewhere)
        seen = (datetime.now(UTC) - killed).total_seconds()
        if tasks and lost:
            last = max(since(killed, t["Status"]["Timestamp"]) for t in tasks)
            found.append((seen, last))
        else:
            found.append(None)
        swarm.lab.start(VICTIM)
        poll(lambda: swarm.node_ready(VICTIM))
        swarm.remove(service)
    return found


# ------------------------------------------------------------------------- report


def describe(name: str, results: list[tuple | None]) -> dict[str, float] | None:
    done = [r for r in results if r is not None]
    failed = len(results) - len(done)
    if not done:
        print(f"  {name:<9} no recovery within {TIMEOUT:g} s in {failed} trials")
        return None
    seen = [s for s, _ in done]
    recorded = [r for _, r in done]
    figures = {"p50": statistics.median(seen), "p90": percentile(seen, 90)}
    print(
        f"  {name:<9} seen p50 {figures['p50']:5.2f} s, p90 {figures['p90']:5.2f} s,"
        f" min {min(seen):5.2f} s, max {max(seen):5.2f} s;"
        f" recorded p50 {statistics.median(recorded):5.2f} s, p90 {percentile(recorded, 90):5.2f} s"
        + (f"; {failed} trials did not recover within {TIMEOUT:g} s" if failed else "")
    )
    return figures


def verdict(value: float, target: float) -> str:
    return "met" if value < target else "MISSED"


def report(what: str, title: str, mine: list, theirs: list | None) -> None:
    print(f"\n{title} ({len(mine)} trials)")
    ours = describe("swarmctl", mine)
    anchor = describe("swarm", theirs) if theirs is not None else None
    if theirs is None:
        print("  swarm     not run")
    if ours and anchor:
        print(
            f"  swarmctl/swarm: p50 {ours['p50'] / anchor['p50']:.2f},"
            f" p90 {ours['p90'] / anchor['p90']:.2f}"
        )
    target = TARGETS[what]
    if ours:
        print(
            f"  target < {target:g} s: {verdict(ours['p50'], target)} at p50,"
            f" {verdict(ours['p90'], target)} at p90 (swarm in lab-notes: {NOTES[what]})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--no-swarm", action="store_true", help="skip the swarm anchor")
    parser.add_argument(
        "--labs", default="online,offline", help="lab modes to time: online, offline or both"
    )
    parser.add_argument("--against", type=Path, help="another swarmctl source tree to time")
    args = parser.parse_args()
    modes = set(args.labs.split(","))
    labs: list[Lab] = []
    swarm = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            lab = up("br", max(SIZES))
            labs.append(lab)
            tick = ticks(lab, folder)
            ratio = statistics.median(tick[max(SIZES)]) / statistics.median(tick[1])
            print(
                f"  tick({max(SIZES)})/tick(1) = {ratio:.2f} (medians); "
                f"target < {TARGETS['tick']:g}",
                flush=True,
            )
            containers, hosts = swarmctl_kills(
                Cluster(lab, 3, folder, "recovery"), args.trials, folder, "swarmctl"
            )
            lab.down()
            labs.remove(lab)
            hostile_containers = hostile_hosts = None
            if "offline" in modes:
                hostile = up("bro", 3, offline=True)
                labs.append(hostile)
                hostile_containers, hostile_hosts = swarmctl_kills(
                    Cluster(hostile, 3, folder, "hostile", dead_dns=True),
                    args.trials,
                    folder,
                    "hostile lab",
                )
                hostile.down()
                labs.remove(hostile)
            old_containers = old_hosts = None
            if args.against:
                old = up("bra", 3)
                labs.append(old)
                old_containers, old_hosts = swarmctl_kills(
                    Cluster(old, 3, folder, "against", tree=args.against),
                    args.trials,
                    folder,
                    "the tree --against",
                )
                old.down()
                labs.remove(old)
            their_containers = their_hosts = None
            if not args.no_swarm:
                anchor = up("brs", 3)
                labs.append(anchor)
                try:
                    swarm = Swarm(anchor)
                    their_containers = swarm_container_kills(swarm, args.trials)
                    print(f"swarm: {args.trials} container kills done", flush=True)
                    their_hosts = swarm_host_kills(swarm, args.trials)
                    print(f"swarm: {args.trials} host kills done", flush=True)
                except Exception as exc:  # still report swarmctl's figures
                    print(f"swarm anchor failed: {exc!r}")
        report("container", "container killed -> replacement running", containers, their_containers)
        report("host", "host killed -> its replicas running elsewhere", hosts, their_hosts)
        if hostile_containers is not None:
            print("\nhostile lab (no registry, the control side's resolver drops every query):")
            report("container", "container killed -> replacement running", hostile_containers, None)
            report("host", "host killed -> its replicas running elsewhere", hostile_hosts, None)
        if old_containers is not None:
            print(f"\nthe tree --against ({args.against}), on a lab of its own:")
            report("container", "container killed -> replacement running", old_containers, None)
            report("host", "host killed -> its replicas running elsewhere", old_hosts, None)
        print(
            f"\ntick({max(SIZES)})/tick(1) = {ratio:.2f} (medians); target < {TARGETS['tick']:g}:"
            f" {verdict(ratio, TARGETS['tick'])}"
        )
    finally:
        if swarm is not None:
            swarm.close()
        for lab in labs:
            lab.down()
        print("labs br, bro, bra, brs: down")


if __name__ == "__main__":
    main()
