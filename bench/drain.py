#!/usr/bin/env python3
"""Time a drain of a node holding 5 replicas of nginx, watch how many run meanwhile, and
time swarm mode's own drain of the same.

Run as root: sudo .venv/bin/python bench/drain.py [--runs 3] [--lab NAME] [--swarm-lab NAME]
  [--no-swarm]
Brings up 3-host labs of its own, "bd" for swarmctl and "bds" for Docker swarm mode (the
anchor, left out with --no-swarm), both taken down at the end. Each run, the systems
take turns: the service is created with every other node paused, so its 5 tasks all run
on worker1, the others are made active again, and worker1 is drained:
  - swarmctl, `-p 8080:80`, stop-first, parallelism 1 and 2;
  - swarmctl, `-p 8080:80`, start-first with a health check, parallelism 1 and 2;
  - swarm, host-mode ports (the lab has no IPVS), `docker node update --availability
    drain`, until its 5 tasks run elsewhere (swarm's command returns at once).
swarmctl's time is `node update --availability drain worker1` until it returns (it waits
until the tasks run elsewhere). Meanwhile a thread counts the service's running
containers on all hosts through their docker sockets, and for swarmctl a client in the
lab's control namespace sends GET http://<node>:8080/ to each node in turn and counts the
answers that are not 200. Prints figures only.
"""

import argparse
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from services import HOSTS, REPLICAS, Hosts, Swarm, Swarmctl, ms, tear_down, timed, up, wait_until
from update import HEALTH, PORT, answered, client

from swarmctl.lab.layout import LabLayout
from swarmctl.lab.manager import Lab

OTHERS = ("manager1", "worker2")


@contextmanager
def lowest(count: Callable[[], int]) -> Iterator[list[int]]:
    """Counts `count()` in a thread while the block runs; yields the list it fills."""
    seen: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.append(count())
            time.sleep(0.01)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join()


class Drained:
    """swarmctl's service behind the mesh, all on worker1, then worker1 drained."""

    def __init__(self, ctl: Swarmctl, order: str) -> None:
        self.ctl = ctl
        self.order = order

    def running(self) -> int:
        return self.ctl.hosts.containers(label="swarmctl.service.name=web", status="running")

    def drain(self, parallelism: int) -> tuple[float, int, dict[str, int]]:
        """(seconds, fewest running, the client's counts) of draining worker1."""
        checks = HEALTH if self.order == "start-first" else ()
        for name in OTHERS:
            self.ctl("node", "update", "--availability", "pause", name)
        self.ctl(
            "service", "create", "-q", "--name", "web", "--replicas", str(REPLICAS),
            "-p", f"{PORT}:80", "--update-order", self.order,
            "--update-parallelism", str(parallelism), *checks, "nginx",
        )  # fmt: skip
        for name in OTHERS:
            self.ctl("node", "update", "--availability", "active", name)
        addresses = [h.address for h in self.ctl.hosts.hosts]
        wait_until("web to answer", lambda: all(answered(self.ctl.hosts, a) for a in addresses))
        with client(self.ctl.hosts) as counts, lowest(self.running) as seen:
            seconds = timed(
                lambda: self.ctl("node", "update", "--availability", "drain", "worker1")
            )
        self.ctl("node", "update", "--availability", "active", "worker1")
        self.ctl.remove()
        return seconds, min(seen), counts


class SwarmDrained(Swarm):
    def running(self) -> int:
        return self.hosts.containers(label="com.docker.swarm.service.name=web", status="running")

    def elsewhere(self) -> bool:
        tasks = self.manager.tasks(filters={"service": "web", "desired-state": "running"})
        worker1 = self.manager.inspect_node("worker1")["ID"]
        return len(tasks) == REPLICAS and all(
            t["Status"]["State"] == "running" and t["NodeID"] != worker1 for t in tasks
        )

    def drain(self, parallelism: int) -> tuple[float, int, None]:
        for name in OTHERS:
            self.hosts.ssh("manager1", f"docker node update --availability pause {name}")
        self.converge(
            f"docker service create -d --name web --replicas {REPLICAS}"
            f" --publish mode=host,target=80 --update-parallelism {parallelism} nginx",
            REPLICAS,
        )
        for name in OTHERS:
            self.hosts.ssh("manager1", f"docker node update --availability active {name}")
        with lowest(self.running) as seen:
            start = time.perf_counter()
            self.hosts.ssh("manager1", "docker node update --availability drain worker1")
            wait_until("swarm's tasks elsewhere", self.elsewhere)
            seconds = time.perf_counter() - start
        self.hosts.ssh("manager1", "docker node update --availability active worker1")
        self.remove()
        return seconds, min(seen), None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--lab", default="bd", help="name of swarmctl's lab")
    parser.add_argument("--swarm-lab", default="", help="name of swarm's lab (default: LAB + s)")
    parser.add_argument("--no-swarm", action="store_true", help="leave out the swarm anchor")
    args = parser.parse_args()
    swarm_lab = args.swarm_lab or f"{args.lab}s"
    figures: dict[str, list] = {}
    labs: list[Hosts] = []
    swarm = None
    try:
        mine = up(args.lab)
        labs.append(mine)
        with tempfile.TemporaryDirectory() as tmp:
            ctl = Swarmctl(mine, Path(tmp))
            systems: list[tuple[str, Drained | SwarmDrained]] = [
                ("swarmctl stop-first, -p 8080:80", Drained(ctl, "stop-first"))
            ]
            if not args.no_swarm:
                anchor = up(swarm_lab)
                labs.append(anchor)
                swarm = SwarmDrained(anchor)
                swarm.join()
                systems.append(("swarm, host-mode ports", swarm))
            systems.append(
                ("swarmctl start-first + health check, -p 8080:80", Drained(ctl, "start-first"))
            )
            for run in range(1, args.runs + 1):
                for label, system in systems:
                    for parallelism in (1, 2):
                        figures.setdefault(f"{label}|{parallelism}", []).append(
                            system.drain(parallelism)
                        )
                print(f"run {run}/{args.runs} done", flush=True)
        report(figures)
    finally:
        tear_down(labs, swarm)
        for name in [args.lab] + ([] if args.no_swarm else [swarm_lab]):
            if name not in (h.lab.layout.name for h in labs):  # interrupted while coming up
                Lab(LabLayout(name), say=lambda _: None).down()


def report(figures: dict[str, list]) -> None:
    print(
        f"\nDrain of worker1 holding all {REPLICAS} replicas of nginx, {HOSTS} hosts;"
        " median, min [each run, ms]; fewest running containers seen [each run];"
        " requests through the mesh that failed / sent [each run]"
    )
    for key, results in figures.items():
        label, parallelism = key.split("|")
        print(f"{label}, parallelism {parallelism}")
        print(f"  {ms([r[0] for r in results])}")
        fewest = [r[1] for r in results]
        print(f"  fewest running {min(fewest)}  [{' '.join(map(str, fewest))}]")
        counts = [r[2] for r in results if r[2] is not None]
        if counts:
            each = " ".join(f"{c['failed']}/{c['sent']}" for c in counts)
            print(f"  failed requests {sum(c['failed'] for c in counts)}  [{each}]")


if __name__ == "__main__":
    main()
