#!/usr/bin/env python3
"""Time `stack deploy` of 10 services x 3 replicas on 8 hosts: the first deploy and a
redeploy of the unchanged file, swarmctl beside `docker stack deploy` on real swarm mode.

Run as root: sudo .venv/bin/python bench/stack.py [--runs 3] [--lab NAME] [--no-swarm]
[--labs online,offline]
Brings up 8-host labs of its own, "bk" for swarmctl and "bks" for Docker swarm mode (the
anchor, left out with --no-swarm), and with --labs …offline "bkx" in the hostile mode (no
registry, a control side whose resolver drops every query); all taken down at the end.
Each run, the systems take turns, so machine noise hits all alike:
  - first deploy: swarmctl's `stack deploy` until it returns (it waits for the tasks);
    swarm's `docker stack deploy` over ssh, until every service shows 3/3;
  - redeploy of the same file: the same, plus the container events it caused on the
    hosts (swarmctl's goal: 0, and under 0.35 s);
  - `stack rm`, until no container of the stack is left (not timed).
Every service is nginx (resolved to a digest by both) on the stack's default network.
Prints figures only.
"""

import argparse
import tempfile
import time
from pathlib import Path

import yaml
from services import Hosts, Swarm, Swarmctl, ms, tear_down, timed, up, wait_until

HOSTS = 8
SERVICES = 10
REPLICAS = 3
STACK = "bench"
NAMESPACE = {"label": f"com.docker.stack.namespace={STACK}"}


def compose_file(folder: Path) -> Path:
    services = {
        f"s{i}": {"image": "nginx", "deploy": {"replicas": REPLICAS}} for i in range(SERVICES)
    }
    path = folder / "stack.yml"
    path.write_text(yaml.safe_dump({"version": "3.8", "services": services}))
    return path


class CtlStack:
    def __init__(self, ctl: Swarmctl, file: Path) -> None:
        self.ctl, self.hosts, self.file = ctl, ctl.hosts, file

    def deploy(self) -> None:
        self.ctl("stack", "deploy", "-c", str(self.file), STACK)

    def remove(self) -> None:
        self.ctl("stack", "rm", "-f", STACK)
        wait_until("the stack's containers gone", lambda: not self.hosts.containers(**NAMESPACE))


class SwarmStack:
    def __init__(self, swarm: Swarm, file: Path) -> None:
        self.swarm, self.hosts = swarm, swarm.hosts
        self.hosts.ssh("manager1", f"cat > /tmp/stack.yml <<'EOF'\n{file.read_text()}EOF")

    def converged(self) -> bool:
        services = self.swarm.manager.services(filters=NAMESPACE, status=True)
        return len(services) == SERVICES and all(
            s["ServiceStatus"]["RunningTasks"] == REPLICAS
            and s.get("UpdateStatus", {}).get("State", "completed") == "completed"
            for s in services
        )

    def deploy(self) -> None:
        self.hosts.ssh("manager1", f"docker stack deploy -c /tmp/stack.yml {STACK} >/dev/null")
        wait_until(f"{SERVICES} services {REPLICAS}/{REPLICAS}", self.converged)

    def remove(self) -> None:
        self.hosts.ssh("manager1", f"docker stack rm {STACK} >/dev/null")
        wait_until("the stack's containers gone", lambda: not self.hosts.containers(**NAMESPACE))


def redeploy(system: CtlStack | SwarmStack) -> tuple[float, int]:
    """(seconds, container events on the hosts) of deploying the unchanged file again."""
    since = time.time()
    seconds = timed(system.deploy)
    time.sleep(0.5)  # events in flight; swarm may go on updating after its command returns
    return seconds, len(system.hosts.container_events(since, time.time()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--lab", default="bk", help="name of swarmctl's lab (the others: +s, +x)")
    parser.add_argument("--labs", default="online", help="online, offline or both")
    parser.add_argument("--no-swarm", action="store_true", help="leave out the swarm anchor")
    args = parser.parse_args()
    modes = set(args.labs.split(","))
    figures: dict[str, list] = {}
    labs: list[Hosts] = []
    swarm = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            file = compose_file(folder)
            systems: list[tuple[str, CtlStack | SwarmStack]] = []
            if "online" in modes:
                labs.append(up(args.lab, count=HOSTS))
                (folder / "online").mkdir()
                systems.append(("ctl", CtlStack(Swarmctl(labs[-1], folder / "online"), file)))
            if not args.no_swarm:
                labs.append(up(f"{args.lab}s", count=HOSTS))
                swarm = Swarm(labs[-1])
                swarm.join()
                systems.append(("swarm", SwarmStack(swarm, file)))
            if "offline" in modes:
                labs.append(up(f"{args.lab}x", offline=True, count=HOSTS))
                (folder / "offline").mkdir()
                systems.append(("off", CtlStack(Swarmctl(labs[-1], folder / "offline"), file)))
            for _ in range(args.runs):
                for label, system in systems:
                    figures.setdefault(f"{label} first", []).append(timed(system.deploy))
                    seconds, events = redeploy(system)
                    figures.setdefault(f"{label} again", []).append(seconds)
                    figures.setdefault(f"{label} events", []).append(events)
                    system.remove()
        report(figures)
    finally:
        tear_down(labs, swarm)


def report(f: dict[str, list]) -> None:
    names = {"ctl": "swarmctl", "swarm": "swarm", "off": "swarmctl, hostile lab"}
    print(f"\n{SERVICES} services x {REPLICAS} replicas on {HOSTS} hosts; median, min [runs]")
    for label, name in names.items():
        if f"{label} first" not in f:
            continue
        print(f"{name + ' first deploy':<40}{ms(f[label + ' first'])}")
        print(
            f"{name + ' unchanged redeploy':<40}{ms(f[label + ' again'])}"
            f"  container events: {f[label + ' events']}"
        )
    if "ctl again" in f and "swarm again" in f:
        ratio = min(f["ctl again"]) / min(f["swarm again"])
        print(f"unchanged redeploy, swarmctl / swarm (min): {ratio:.2f}")


if __name__ == "__main__":
    main()
