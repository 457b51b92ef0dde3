#!/usr/bin/env python3
"""Time a rolling image update of 5 replicas behind the routing mesh on 3 hosts, count the
requests a client of the mesh saw fail meanwhile, and time swarm mode's own update.

Run as root: sudo .venv/bin/python bench/update.py [--runs 3] [--lab NAME] [--no-swarm]
Brings up 3-host labs of its own, "bu" for swarmctl and "bus" for Docker swarm mode (the
anchor, left out with --no-swarm; --lab NAME: NAME and NAMEs), both taken down at the end.
Every host has nginx and nginx:v2 (the same image under a second tag, pushed to the lab's
registry) before anything is timed. Each run, the systems take turns, so machine noise
hits all alike; each update goes nginx -> nginx:v2 at parallelism 1, then back at 2:
  - swarmctl, `service create --replicas 5 -p 8080:80 nginx`, stop-first;
  - swarm, `docker service create` with host-mode ports (`mode=host,target=80`: the lab
    has no IPVS, so no ingress mesh, and a fixed published port would fit one task per
    node), stop-first: `service update -d`, until the manager's UpdateStatus is completed;
  - swarmctl again, start-first, with a health check (the zero-downtime case).
swarmctl's time is `service update --image …` until it returns (it waits for the update
to complete). Both monitor each new task for MONITOR (a fixed tail at the end of every
update; swarm's default is 5 s). While swarmctl updates, a client in the lab's control
namespace sends GET http://<node>:8080/ to each node in turn (a new connection each) and
counts the answers that are not 200, from before the update until a second after it.
Prints figures only.
"""

import argparse
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from services import HOSTS, REPLICAS, Hosts, Swarm, Swarmctl, ms, tear_down, timed, up, wait_until

from swarmctl.lab.layout import LabLayout
from swarmctl.lab.manager import Lab, http_get

PORT = 8080
IMAGES = ("nginx", "nginx:v2")
MONITOR = "1s"
HEALTH = ("--health-cmd", "wget -q -O /dev/null http://127.0.0.1/", "--health-interval", "300ms")
PAUSE = 0.01  # between a client's requests, so that it does not take a core of its own
TAIL = 1.0  # the client goes on this long after an update returns


def second_tag(hosts: Hosts) -> None:
    """nginx:v2 on every host: nginx pushed to the lab registry (the hosts' mirror) under
    a second tag, then pulled, so both tags resolve to a digest and nothing is pulled
    during an update."""
    pushed = f"{hosts.lab.layout.registry}/library/{IMAGES[1]}"
    hosts.ssh("manager1", f"docker tag nginx {pushed} && docker push -q {pushed} >/dev/null")
    hosts.ssh("manager1", f"docker rmi {pushed} >/dev/null")
    hosts.on_all(f"docker pull -q {IMAGES[1]} >/dev/null")


def answered(hosts: Hosts, address: str) -> bool:
    """Whether GET / on the published port, from the control namespace, got a 200."""
    response = http_get(hosts.lab.layout.ctl_netns, address, PORT, "/", timeout=5.0)
    return response.split(None, 2)[1:2] == ["200"]


@contextmanager
def client(hosts: Hosts) -> Iterator[dict[str, int]]:
    """A client of the mesh, hammering every node in turn while the block runs (and TAIL
    after); yields its counts of requests sent and failed."""
    counts = {"sent": 0, "failed": 0}
    stop = threading.Event()
    addresses = [h.address for h in hosts.hosts]

    def hammer() -> None:
        while not stop.is_set():
            ok = answered(hosts, addresses[counts["sent"] % len(addresses)])
            counts["sent"] += 1
            counts["failed"] += not ok
            time.sleep(PAUSE)

    thread = threading.Thread(target=hammer, daemon=True)
    thread.start()
    try:
        yield counts
        time.sleep(TAIL)
    finally:
        stop.set()
        thread.join()


class Mesh:
    """A swarmctl service behind the routing mesh, updated with one order of its own."""

    def __init__(self, ctl: Swarmctl, order: str) -> None:
        self.ctl = ctl
        self.order = order

    def create(self) -> None:
        checks = HEALTH if self.order == "start-first" else ()
        self.ctl(
            "service", "create", "-q", "--name", "web", "--replicas", str(REPLICAS),
            "-p", f"{PORT}:80", "--update-order", self.order, "--update-monitor", MONITOR,
            *checks, IMAGES[0],
        )  # fmt: skip
        addresses = [h.address for h in self.ctl.hosts.hosts]
        wait_until(
            "web to answer on every node",
            lambda: all(answered(self.ctl.hosts, a) for a in addresses),
        )

    def update(self, image: str, parallelism: int) -> tuple[float, dict[str, int]]:
        """(seconds, the client's counts) of one rolling update to `image`."""
        argv = ("service", "update", "-q", "--update-parallelism", str(parallelism))
        with client(self.ctl.hosts) as counts:
            seconds = timed(lambda: self.ctl(*argv, "--image", image, "web"))
        return seconds, counts

    def remove(self) -> None:
        self.ctl.remove()


class SwarmMode(Swarm):
    """The same service in swarm mode, with host-mode ports."""

    def create(self) -> None:
        self.converge(
            f"docker service create -d --name web --replicas {REPLICAS}"
            f" --publish mode=host,target=80 --update-monitor {MONITOR} {IMAGES[0]}",
            REPLICAS,
        )

    def update_status(self) -> dict:
        return self.manager.inspect_service("web").get("UpdateStatus", {})

    def update(self, image: str, parallelism: int) -> tuple[float, None]:
        before = self.update_status()

        def completed() -> bool:
            status = self.update_status()
            if status.get("State", "").endswith("paused"):
                raise SystemExit(f"swarm: web's update paused: {status.get('Message')}")
            return status != before and status.get("State") == "completed"

        start = time.perf_counter()
        self.hosts.ssh(
            "manager1",
            f"docker service update -d --update-parallelism {parallelism} --image {image} web",
        )
        wait_until("swarm's update to complete", completed)
        return time.perf_counter() - start, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--lab", default="bu", help="name of swarmctl's lab (swarm's: +s)")
    parser.add_argument("--no-swarm", action="store_true", help="leave out the swarm anchor")
    args = parser.parse_args()
    figures: dict[str, list] = {}
    labs: list[Hosts] = []
    swarm = None
    try:
        mine = up(args.lab)
        labs.append(mine)
        second_tag(mine)
        systems: list[tuple[str, Mesh | SwarmMode]] = []
        with tempfile.TemporaryDirectory() as tmp:
            ctl = Swarmctl(mine, Path(tmp))
            systems.append(("stop-first", Mesh(ctl, "stop-first")))
            if not args.no_swarm:
                anchor = up(f"{args.lab}s")
                labs.append(anchor)
                second_tag(anchor)
                swarm = SwarmMode(anchor)
                swarm.join()
                systems.append(("swarm", swarm))
            systems.append(("start-first", Mesh(ctl, "start-first")))
            for run in range(1, args.runs + 1):
                for label, system in systems:
                    system.create()
                    for parallelism, image in zip((1, 2), (IMAGES[1], IMAGES[0]), strict=True):
                        seconds, counts = system.update(image, parallelism)
                        figures.setdefault(f"{label} {parallelism}", []).append(seconds)
                        if counts is not None:
                            figures.setdefault(f"{label} {parallelism} requests", []).append(
                                (counts["failed"], counts["sent"])
                            )
                    system.remove()
                print(f"run {run}/{args.runs} done", flush=True)
        report(figures)
    finally:
        tear_down(labs, swarm)
        names = [args.lab] + ([] if args.no_swarm else [f"{args.lab}s"])
        for name in names:  # a lab interrupted while it came up
            if name not in (h.lab.layout.name for h in labs):
                Lab(LabLayout(name), say=lambda _: None).down()


def report(f: dict[str, list]) -> None:
    print(
        f"\n{REPLICAS} replicas of nginx on {HOSTS} hosts, rolling update nginx -> nginx:v2"
        f" (parallelism 1) and back (2), monitor {MONITOR};\nmedian, min [each run, ms];"
        " requests through the mesh that failed / sent [each run]"
    )
    rows = [
        ("swarmctl stop-first, -p 8080:80", "stop-first"),
        ("swarm stop-first, host-mode ports", "swarm"),
        ("swarmctl start-first + health check, -p 8080:80", "start-first"),
    ]
    for title, label in rows:
        if f"{label} 1" not in f:  # --no-swarm
            continue
        print(title)
        for parallelism in (1, 2):
            print(f"  parallelism {parallelism}  {ms(f[f'{label} {parallelism}'])}")
            requests = f.get(f"{label} {parallelism} requests")
            if requests:
                failed = sum(r[0] for r in requests)
                sent = sum(r[1] for r in requests)
                each = " ".join(f"{r[0]}/{r[1]}" for r in requests)
                print(f"  {'':<15}failed requests {failed} of {sent}  [{each}]")
    if "swarm 1" in f:
        ratios = ", ".join(
            f"parallelism {p} "
            f"{statistics.median(f[f'stop-first {p}']) / statistics.median(f[f'swarm {p}']):.2f}"
            for p in (1, 2)
        )
        print(f"\nswarmctl / swarm, stop-first, ratio of medians: {ratios}")


if __name__ == "__main__":
    main()
