"""Time the scheduler placing many tasks of one service; prints figures, asserts nothing.

Run: .venv/bin/python bench/scheduler.py
Each case runs a few times and shows its best, to leave out warm-up and machine noise.
"""

import time

from swarmctl.models import Node, NodeFacts, Resources, Role, Service, ServiceSpec
from swarmctl.scheduler import NodeLoad, schedule

RUNS = 5
GIB = 2**30
ZONES = ("a", "b", "c")


def cluster(size: int, small_every: int = 0) -> list[NodeLoad]:
    """`size` nodes of 8 CPUs in three zones, with other services' tasks on them.

    With `small_every`, one node in that many has 1 CPU instead: the ones that fill up.
    """
    loads = []
    for i in range(size):
        cpus = 1 if small_every and i % small_every == 0 else 8
        node = Node(
            id=f"node{i:05d}",
            hostname=f"host{i:05d}",
            role=Role.WORKER,
            address=f"10.{i // 250}.{i % 250}.1",
            created_at="",
            updated_at="",
            labels={"zone": ZONES[i % len(ZONES)]},
            facts=NodeFacts(cpus=cpus, memory_bytes=32 * GIB),
        )
        loads.append(NodeLoad(node, service_tasks={"other": i % 4}))
    return loads


def service(**spec: object) -> Service:
    return Service("web", ServiceSpec("web", "nginx", **spec), "", "")


def best_seconds(svc: Service, tasks: int, loads: list[NodeLoad]) -> tuple[float, int]:
    times, placed = [], 0
    for _ in range(RUNS):
        start = time.perf_counter()
        decisions = schedule(svc, tasks, loads)
        times.append(time.perf_counter() - start)
        placed = sum(d.node_id is not None for d in decisions)
    return min(times), placed


def main() -> None:
    quarter_cpu = Resources(nano_cpus=250_000_000)
    cases = [
        ("spread only", service(), 10_000, cluster(1_000)),
        ("spread=node.labels.zone", service(placement_prefs=("spread=node.labels.zone",)),
         10_000, cluster(1_000)),
        ("0.25 CPU each, 1 node in 4 has 1 CPU", service(reservations=quarter_cpu),
         10_000, cluster(1_000, small_every=4)),
        ("0.25 CPU each, cluster full at 25,000", service(reservations=quarter_cpu),
         30_000, cluster(1_000, small_every=4)),
    ]  # fmt: skip
    print(f"{'case':<40} {'nodes':>6} {'tasks':>7} {'placed':>7} {'seconds':>8} {'tasks/s':>9}")
    for name, svc, tasks, loads in cases:
        seconds, placed = best_seconds(svc, tasks, loads)
        print(
            f"{name:<40} {len(loads):>6} {tasks:>7} {placed:>7} {seconds:>8.3f}"
            f" {tasks / seconds:>9,.0f}"
        )


if __name__ == "__main__":
    main()
