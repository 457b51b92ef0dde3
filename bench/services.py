#!/usr/bin/env python3
"""Time 5 replicas of nginx on 3 hosts: a bare ssh loop, swarmctl and real swarm mode.

Run as root: sudo .venv/bin/python bench/services.py [--runs 5] [--scale-runs 3]
[--labs online,offline] [--lab NAME] [--no-swarm] [--against DIR]
Brings up 3-host labs of its own, "bs" for swarmctl and "bss" for Docker swarm mode
(the anchor, left out with --no-swarm), and "bso" in the hostile mode (--lab NAME:
NAME, NAMEs and NAMEx instead) (`lab up --offline`: no registry, nginx
arrived by docker load, and swarmctl and the ssh loop run from a control side whose
resolver drops every query), all taken down at the end; nginx is on every host before
anything is timed. The hostile lab times (a) and (b) only: swarm mode is its anchor
online, as it needs a registry to resolve. Each run, the systems take turns, so machine
noise hits all alike:
  (a) a user's shell loop: 5 x `ssh host docker run -d nginx` in parallel (2/2/1), fresh
      connections from the lab's control namespace, until the last one returns;
  (b) `swarmctl service create --replicas 5 nginx`, until it returns (it waits for the
      tasks); swarm: `docker service create -d …` over ssh, until `docker service ls`
      (asked on the manager's socket) shows 5/5: once as swarm does by default (the image
      resolved to a digest, so nodes that have it do not pull), once with
      --no-resolve-image (every task pulls the tag first);
  (c) the same scale again with nothing to change: `service scale web=5`, with the
      container events it caused on the hosts (should be none);
  (d) `service scale web=30` from 5.
Everything is removed between runs. swarmctl's figures include starting the CLI (see
`service ls`). With --against DIR, another swarmctl source tree (say, an export of main
before a change) takes its turn too, on a 3-host lab of its own (NAMEa), for before and
after under the same noise. The scheduler alone: bench/scheduler.py. Prints figures only.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path

import docker

from swarmctl.lab.layout import LabHost, LabLayout
from swarmctl.lab.manager import Lab

HOSTS = 3
REPLICAS = 5
SCALED = 30
LOOP = ("manager1", "manager1", "worker1", "worker1", "worker2")  # 2/2/1, as a spread
TIMEOUT = 120.0


def run(argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=TIMEOUT)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)}: {result.stderr.strip()}")
    return result.stdout


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def wait_until(what: str, check: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


class Hosts:
    """A lab's hosts, over ssh as a user reaches them and over their sockets for checks."""

    def __init__(self, lab: Lab, hosts: list[LabHost], dead_dns: bool = False) -> None:
        self.lab = lab
        self.dead_dns = dead_dns
        self.hosts = hosts
        self.docker = {
            h.name: docker.APIClient(base_url=f"unix://{h.docker_socket}") for h in hosts
        }

    def argv(self, argv: list[str]) -> list[str]:
        """argv as run from the control side, through the dead resolver in hostile mode."""
        return self.lab.control_argv(argv) if self.dead_dns else argv

    def ssh(self, host: str, command: str) -> str:
        return run(self.lab.ssh_argv(host, [command]))

    def on_all(self, command: str) -> None:
        with ThreadPoolExecutor(len(self.hosts)) as pool:
            list(pool.map(lambda h: self.ssh(h.name, command), self.hosts))

    def containers(self, **filters: str) -> int:
        return sum(len(c.containers(all=True, filters=filters)) for c in self.docker.values())

    def container_events(self, since: float, until: float) -> list[str]:
        actions = []
        for client in self.docker.values():
            events = client.events(
                since=since, until=until, filters={"type": "container"}, decode=True
            )
            actions += [e["Action"] for e in events]
        return actions

    def close(self) -> None:
        for client in self.docker.values():
            client.close()


class Swarmctl:
    def __init__(self, hosts: Hosts, folder: Path, tree: Path | None = None) -> None:
        self.hosts = hosts
        self.env = {
            **os.environ,
            "SWARMCTL_INVENTORY": str(hosts.lab.layout.inventory),
            "SWARMCTL_STATE": str(folder / "state.json"),
        }
        self.env.pop("SWARMCTL_LAB", None)
        # Another source tree's swarmctl, before the installed one; run from that tree, as
        # `python -m` puts the working directory (this checkout, say) first on the path.
        self.tree = tree.resolve() if tree is not None else None
        if self.tree is not None:
            self.env["PYTHONPATH"] = str(self.tree)
        self("init", "manager1")
        self("join", "--all")

    def __call__(self, *args: str) -> str:
        argv = self.hosts.argv([sys.executable, "-m", "swarmctl", *args])
        return run(argv, env=self.env, cwd=self.tree)

    def create(self) -> None:
        self("service", "create", "--name", "web", "--replicas", str(REPLICAS), "nginx")

    def scale(self, replicas: int) -> None:
        self("service", "scale", f"web={replicas}")

    def remove(self) -> None:
        self("service", "rm", "web", "--yes")
        gone = {"label": "swarmctl.service.name=web"}
        wait_until("web's containers gone", lambda: not self.hosts.containers(**gone))


class Swarm:
    """Docker swarm mode on the other lab: the reference.

    By default `docker service create` resolves the image to a digest (through the lab's
    registry, at once), and a node that has the image does not pull it again. With
    `resolve=False` (--no-resolve-image, a tag) every task pulls "nginx" before it
    starts; in this lab a node's second task then starts about 5 s after its first.
    """

    def __init__(self, hosts: Hosts, resolve: bool = True) -> None:
        self.hosts = hosts
        self.options = "" if resolve else "--no-resolve-image "
        self.manager = hosts.docker["manager1"]

    def join(self) -> None:
        manager = self.hosts.lab.host("manager1").address
        self.hosts.ssh("manager1", f"docker swarm init --advertise-addr {manager}")
        token = self.hosts.ssh("manager1", "docker swarm join-token -q worker").strip()
        for host in self.hosts.hosts[1:]:
            self.hosts.ssh(host.name, f"docker swarm join --token {token} {manager}:2377")

    def running(self) -> int:
        services = self.manager.services(filters={"name": "web"}, status=True)
        return services[0]["ServiceStatus"]["RunningTasks"] if services else -1

    def converge(self, command: str, replicas: int) -> None:
        self.hosts.ssh("manager1", command)
        wait_until(f"web {replicas}/{replicas}", lambda: self.running() == replicas)

    def create(self) -> None:
        self.converge(
            f"docker service create -d --name web --replicas {REPLICAS} {self.options}nginx",
            REPLICAS,
        )

    def scale(self, replicas: int) -> None:
        self.converge(f"docker service scale -d web={replicas}", replicas)

    def remove(self) -> None:
        self.hosts.ssh("manager1", "docker service rm web")
        gone = {"label": "com.docker.swarm.service.name=web"}
        wait_until("web's containers gone", lambda: not self.hosts.containers(**gone))

    def leave(self) -> None:
        for host in reversed(self.hosts.hosts):
            with suppress(SystemExit):
                self.hosts.ssh(host.name, "docker swarm leave --force")


def ssh_loop(hosts: Hosts) -> float:
    argvs = [hosts.argv(hosts.lab.ssh_argv(h, ["docker", "run", "-d", "nginx"])) for h in LOOP]
    start = time.perf_counter()
    procs = [subprocess.Popen(a, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for a in argvs]
    for proc in procs:
        _, err = proc.communicate(timeout=TIMEOUT)
        if proc.returncode != 0:
            raise SystemExit(f"ssh docker run -d nginx: {err.decode().strip()}")
    seconds = time.perf_counter() - start
    hosts.on_all("docker ps -aq | xargs -r docker rm -f >/dev/null")
    return seconds


def scale_again(system: Swarmctl | Swarm, hosts: Hosts) -> tuple[float, int]:
    """(seconds, container events on the hosts) of scaling to what it already is."""
    since = time.time()
    seconds = timed(lambda: system.scale(REPLICAS))
    time.sleep(0.2)  # events in flight
    return seconds, len(hosts.container_events(since, time.time()))


def up(name: str, offline: bool = False, count: int = HOSTS) -> Hosts:
    lab = Lab(LabLayout(name), say=lambda _: None)
    lab.down()  # leftovers of an interrupted run
    started = time.perf_counter()
    hosts = Hosts(lab, lab.up(count, offline=offline), dead_dns=offline)
    print(f"lab {name}: {count} hosts up in {time.perf_counter() - started:.1f} s")
    if not offline:  # offline, the lab loaded it: nothing can be pulled
        hosts.on_all("docker pull -q nginx >/dev/null")
    return hosts


def ms(values: list[float]) -> str:
    listed = " ".join(f"{v * 1000:.0f}" for v in values)
    return (
        f"median {statistics.median(values) * 1000:6.0f} ms, min {min(values) * 1000:6.0f} ms"
        f"  [{listed}]"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of (a), (b) and (c)")
    parser.add_argument("--scale-runs", type=int, default=3, help="runs of (d)")
    parser.add_argument(
        "--labs", default="online,offline", help="lab modes to time: online, offline or both"
    )
    parser.add_argument("--lab", default="bs", help="name of swarmctl's lab (the others: +s, +x)")
    parser.add_argument("--no-swarm", action="store_true", help="leave out the swarm anchor")
    parser.add_argument("--against", type=Path, help="another swarmctl source tree to time")
    args = parser.parse_args()
    modes = set(args.labs.split(","))
    figures: dict[str, list] = {}

    def note(key: str, value: object) -> None:
        figures.setdefault(key, []).append(value)

    labs: list[Hosts] = []
    swarm = None
    try:
        mine = up(args.lab)
        labs.append(mine)
        anchor = None
        if not args.no_swarm:
            anchor = up(f"{args.lab}s")
            labs.append(anchor)
        hostile = None
        if "offline" in modes:
            hostile = up(f"{args.lab}x" if args.lab != "bs" else "bso", offline=True)
            labs.append(hostile)
        before = None
        if args.against:
            before = up(f"{args.lab}a")
            labs.append(before)
        with tempfile.TemporaryDirectory() as tmp:
            for mode in ("online", "offline", "against"):
                (Path(tmp) / mode).mkdir()
            ctl = Swarmctl(mine, Path(tmp) / "online")
            systems: list[tuple[str, Swarmctl | Swarm, Hosts]] = [("ctl", ctl, mine)]
            if anchor is not None:
                swarm = Swarm(anchor)
                swarm.join()
                systems += [("swarm", swarm, anchor), ("tag", Swarm(anchor, resolve=False), anchor)]
            if hostile is not None:
                systems.append(("off", Swarmctl(hostile, Path(tmp) / "offline"), hostile))
            if before is not None:
                old = Swarmctl(before, Path(tmp) / "against", args.against)
                systems.append(("old", old, before))
            for _ in range(args.runs):
                note("ls", timed(lambda: ctl("service", "ls")))
                note("loop", ssh_loop(mine))
                if hostile is not None:
                    note("off loop", ssh_loop(hostile))
                if before is not None:
                    note("old loop", ssh_loop(before))
                for label, system, hosts in systems:
                    note(f"{label} create", timed(system.create))
                    seconds, events = scale_again(system, hosts)
                    note(f"{label} again", seconds)
                    note(f"{label} again events", events)
                    if len(figures.get(f"{label} scale", [])) < args.scale_runs:
                        note(f"{label} scale", timed(lambda s=system: s.scale(SCALED)))
                    system.remove()
        report(figures)
    finally:
        tear_down(labs, swarm)


def tear_down(labs: list[Hosts], swarm: Swarm | None) -> None:
    """Leave swarm mode and take every lab of the run down."""
    if swarm is not None:
        swarm.leave()
    for hosts in labs:
        hosts.close()
        hosts.lab.down()
    print(f"labs {', '.join(h.lab.layout.name for h in labs)}: down")


def report(f: dict[str, list]) -> None:
    rows = [
        ("swarmctl service ls (CLI start-up, state read)", "ls", None),
        ("(a) ssh loop: 5 x docker run -d, in parallel", "loop", None),
        (f"(b) swarmctl service create --replicas {REPLICAS}", "ctl create", None),
        (f"    swarm service create, until {REPLICAS}/{REPLICAS}", "swarm create", None),
        (
            f"(c) swarmctl service scale web={REPLICAS} (is {REPLICAS})",
            "ctl again",
            "ctl again events",
        ),
        (
            f"    swarm service scale web={REPLICAS} (is {REPLICAS})",
            "swarm again",
            "swarm again events",
        ),
        (f"(d) swarmctl service scale web={SCALED} (from {REPLICAS})", "ctl scale", None),
        (f"    swarm service scale web={SCALED}, until {SCALED}/{SCALED}", "swarm scale", None),
        ("swarm with --no-resolve-image (every task pulls the tag):", None, None),
        (f"(b)   create, until {REPLICAS}/{REPLICAS}", "tag create", None),
        (f"(c)   scale web={REPLICAS} (is {REPLICAS})", "tag again", "tag again events"),
        (f"(d)   scale web={SCALED}, until {SCALED}/{SCALED}", "tag scale", None),
    ]
    print(f"\n{REPLICAS} replicas of nginx on {HOSTS} hosts; median, min [each run, ms]")
    for label, key, events in rows:
        if key is None:
            if "tag create" in f:
                print(label)
            continue
        if key not in f:  # --no-swarm
            continue
        extra = f"  container events: {f[events]}" if events else ""
        print(f"{label:<48}{ms(f[key])}{extra}")
    if "off create" in f:
        print("hostile lab (no registry, control side's resolver drops every query):")
        for label, key in (
            ("(a)   ssh loop: 5 x docker run -d, in parallel", "off loop"),
            (f"(b)   swarmctl service create --replicas {REPLICAS}", "off create"),
            (f"(c)   swarmctl service scale web={REPLICAS} (is {REPLICAS})", "off again"),
            (f"(d)   swarmctl service scale web={SCALED} (from {REPLICAS})", "off scale"),
        ):
            print(f"{label:<48}{ms(f[key])}")
    if "old create" in f:
        print("the tree --against, on a lab of its own:")
        for label, key in (
            ("(a)   ssh loop: 5 x docker run -d, in parallel", "old loop"),
            (f"(b)   swarmctl service create --replicas {REPLICAS}", "old create"),
            (f"(c)   swarmctl service scale web={REPLICAS} (is {REPLICAS})", "old again"),
            (f"(d)   swarmctl service scale web={SCALED} (from {REPLICAS})", "old scale"),
        ):
            print(f"{label:<48}{ms(f[key])}")
    print("(e) the scheduler alone: python bench/scheduler.py")

    def ratio(a: str, b: str) -> str:
        return f"{statistics.median(f[a]) / statistics.median(f[b]):.2f}"

    print("\nratios of medians:")
    print(f"  swarmctl create / ssh loop: {ratio('ctl create', 'loop')}")
    if "off create" in f:
        print(f"  hostile lab: swarmctl create / ssh loop: {ratio('off create', 'off loop')}")
    if "old create" in f:
        print(
            f"  the tree --against: create / its ssh loop: {ratio('old create', 'old loop')};"
            f" this tree / it: create {ratio('ctl create', 'old create')},"
            f" scale again {ratio('ctl again', 'old again')},"
            f" scale to {SCALED} {ratio('ctl scale', 'old scale')}"
        )
    for other, name in (("swarm", "swarm"), ("tag", "swarm --no-resolve-image")):
        if f"{other} create" not in f:
            continue
        print(
            f"  swarmctl / {name}: create {ratio('ctl create', f'{other} create')},"
            f" scale again {ratio('ctl again', f'{other} again')},"
            f" scale to {SCALED} {ratio('ctl scale', f'{other} scale')}"
        )


if __name__ == "__main__":
    main()
