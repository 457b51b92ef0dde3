"""Volumes across the nodes: list, inspect, create and remove them where they live.

A volume belongs to one node's engine; nothing about it is kept in the cluster state.
Listing reads each node's engine (GET /volumes, one request a node, in parallel) and
keeps the cluster's volumes: those labelled with its id (made by `volume create` or by
a task's mount) and any other that a service mounts by name. Whether a volume is in
use is read from the state: a service that mounts it and has a task on that node, now
or in its slot's history (volume affinity brings its next task back there).
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from swarmctl import executor
from swarmctl.commands import volume as commands
from swarmctl.errors import SwarmctlError
from swarmctl.hoststep import HostStep, Kind
from swarmctl.models import Node, Service, Task
from swarmctl.naming import LABEL_CLUSTER


@dataclass(frozen=True)
class Volume:
    node: str  # the node's hostname
    name: str
    driver: str
    document: dict[str, Any] = field(default_factory=dict)  # the engine's, as `docker inspect`

    @property
    def labels(self) -> dict[str, str]:
        return self.document.get("Labels") or {}


def mounted_names(services: Iterable[Service]) -> set[str]:
    return {m.source for s in services for m in s.spec.mounts if m.type == "volume" and m.source}


def ours(document: Mapping[str, Any], cluster_id: str, mounted: set[str]) -> bool:
    labels = document.get("Labels") or {}
    return labels.get(LABEL_CLUSTER) == cluster_id or document.get("Name") in mounted


def users(name: str, node: Node, services: Sequence[Service], tasks: Sequence[Task]) -> list[str]:
    """Names of the services whose tasks use (or will use again) volume `name` on `node`."""
    mounting = {s.id: s.spec.name for s in services if name in mounted_names([s])}
    return sorted(
        {mounting[t.service_id] for t in tasks if t.service_id in mounting and t.node_id == node.id}
    )


def read(pool, nodes: Sequence[Node]) -> tuple[list[Volume], dict[str, SwarmctlError]]:
    """Every volume on the nodes that answered, and the error of each node that did not."""

    def volumes_of(host) -> list[dict[str, Any]]:
        return host.engine().get("/volumes").get("Volumes") or []

    found: list[Volume] = []
    failed: dict[str, SwarmctlError] = {}
    for hostname, result in pool.each(volumes_of, [n.hostname for n in nodes]).items():
        if isinstance(result, SwarmctlError):
            failed[hostname] = result
            continue
        found += [Volume(hostname, d["Name"], d.get("Driver", ""), d) for d in result]
    found.sort(key=lambda v: (v.name, v.node))
    return found, failed


def create(
    pool, nodes: Sequence[Node], name: str, cluster_id: str, driver: str, options: Mapping[str, str]
) -> dict[str, SwarmctlError]:
    argv = commands.create(name, cluster_id, driver, options)
    made = [HostStep(n.hostname, Kind.CREATE_VOLUME, tuple(argv), None) for n in nodes]
    results = executor.run_steps(pool, made)
    return {h: r for h, r in results.items() if isinstance(r, SwarmctlError)}


def remove(pool, volumes: Sequence[Volume]) -> dict[str, SwarmctlError]:
    by_node = {v.node: v.name for v in volumes}
    gone = [
        HostStep(node, Kind.REMOVE_VOLUME, tuple(commands.remove(name)), None)
        for node, name in by_node.items()
    ]
    results = executor.run_steps(pool, gone)
    return {h: r for h, r in results.items() if isinstance(r, SwarmctlError)}
