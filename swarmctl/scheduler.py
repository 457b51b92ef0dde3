"""Choose the node of each new task of a service: a pipeline of filters, then a spread.

Owns placement and its explanation ("no suitable node (…)"), as swarmkit's
manager/scheduler does. It does not decide how many tasks a service needs nor which tasks
are active: the reconciler does, and hands over one NodeLoad per node. Pure and
deterministic: the same service and loads, in any order, give the same decisions.
"""

import heapq
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise

from swarmctl.constraints import parse_constraint, parse_preference
from swarmctl.models import (
    Availability,
    Node,
    NodeState,
    PublishMode,
    Resources,
    Service,
    ServiceSpec,
    Task,
    TaskState,
)

NOT_AVAILABLE = "not available for new tasks"
CONSTRAINTS_NOT_SATISFIED = "scheduling constraints not satisfied"
INSUFFICIENT_RESOURCES = "insufficient resources"
MAX_REPLICAS_REACHED = "max replicas per node reached"
FAILING = "the service failed repeatedly"
NO_ADDRESSES = "no address range on the service's networks"
NO_NODES = "no suitable node (no nodes in the cluster)"
# Filesystems the local volume driver mounts from the network: the data is everywhere.
SHARED_FILESYSTEMS = frozenset({"nfs", "nfs4", "cifs", "smb3"})


@dataclass(frozen=True)
class NodeLoad:
    """A node and what already runs there: all the scheduler knows of it."""

    node: Node
    service_tasks: dict[str, int] = field(default_factory=dict)  # service id -> active tasks
    reserved: Resources = field(default_factory=Resources)  # reservations of active tasks
    host_ports: frozenset[tuple[int, str]] = frozenset()  # (published, protocol), host mode
    failing: frozenset[str] = frozenset()  # services that failed repeatedly here of late
    homeless: frozenset[str] = frozenset()  # services with a network that has no block here

    @property
    def total_tasks(self) -> int:
        return sum(self.service_tasks.values())


@dataclass(frozen=True)
class Decision:
    node_id: str | None  # None: no node can take the task; it stays pending
    reason: str = ""  # why not, when node_id is None


def schedule(
    service: Service, count: int, nodes: Sequence[NodeLoad], homes: Sequence[str] = ()
) -> list[Decision]:
    """Place `count` new tasks of `service` one after another, each seeing the ones before.

    Greedy, like swarm: every placement adds its task to the node's load before the next
    task is placed. homes[i], when given and not "", is the node that holds the data of
    task i's slot (volume_home): with a local volume, the task goes there or nowhere.
    Raises SwarmctlError if a constraint or preference is invalid.
    """
    volume = local_volume(service.spec)
    pinned = {i: home for i, home in enumerate(homes[:count]) if home and volume}
    if not pinned:
        return _spread(service, count, nodes)
    # Pinned tasks first: the free ones then spread around the load they add.
    filters = _Filters(service)
    loads = list(nodes)
    decisions: dict[int, Decision] = {}
    for i, home in pinned.items():
        index = next((j for j, load in enumerate(loads) if load.node.id == home), None)
        if index is None or filters.reason(loads[index]):
            name = home if index is None else loads[index].node.hostname
            decisions[i] = Decision(None, f"pinned to {name} by volume {volume}")
        else:
            loads[index] = filters.add_task(loads[index])
            decisions[i] = Decision(home)
    free = iter(_spread(service, count - len(pinned), loads))
    return [decisions[i] if i in decisions else next(free) for i in range(count)]


def local_volume(spec: ServiceSpec) -> str:
    """The service's first named volume whose data stays on the node that made it ("" if
    none). A volume of another driver, or of the local driver mounting NFS or CIFS, is
    reachable from any node: it does not tie the task to one."""
    for mount in spec.mounts:
        if (
            mount.type == "volume"
            and mount.source
            and mount.volume_driver in ("", "local")
            and mount.volume_opts.get("type", "").lower() not in SHARED_FILESYSTEMS
        ):
            return mount.source
    return ""


def volume_home(history: Iterable[Task]) -> str:
    """The node of a slot's latest task that ran: where the slot's volume data is ("" if
    no task of it ever ran, so no data was written)."""
    ran = [t for t in history if t.node_id and TaskState.RUNNING.value in t.timestamps]
    return max(ran, key=lambda t: t.created_at).node_id if ran else ""


def _spread(service: Service, count: int, nodes: Sequence[NodeLoad]) -> list[Decision]:
    filters = _Filters(service)
    spread = [parse_preference(text) for text in service.spec.placement_prefs]
    loads = list(nodes)
    refused: Counter[str] = Counter()
    root = _Group("")
    for index, load in enumerate(loads):
        reason = filters.reason(load)
        if reason:
            refused[reason] += 1
        root.add(load, index, spread, service.id, eligible=not reason)
    root.heapify(loads, service.id)

    decisions: list[Decision] = []
    while len(decisions) < count and root.heap:
        path, index = root.descend()
        load = loads[index] = filters.add_task(loads[index])
        decisions.append(Decision(load.node.id))
        # Placing a task only adds load: a node that fails now fails for good, and the
        # filters that placing cannot change (status, availability, constraints) still pass.
        reason = filters.load_reason(load)
        if reason:
            refused[reason] += 1
        else:
            heapq.heappush(path[-1].heap, _node_key(load, service.id, index))
        # Back up the tree: each group walked holds one more task, and goes back into its
        # parent's heap, keyed by that count, while it has a node that can take one.
        for parent, group in reversed(list(pairwise(path))):
            group.tasks += 1
            if group.heap:
                heapq.heappush(parent.heap, group.key())
    if len(decisions) < count:
        # No node can take a task any more and nothing changes: the rest share one reason.
        unplaced = Decision(None, _explain(refused, filters.reasons, len(loads)))
        decisions += [unplaced] * (count - len(decisions))
    return decisions


def global_nodes(service: Service, nodes: Sequence[NodeLoad]) -> dict[str, str]:
    """For a global service: node id -> "" if the node should run its task, else why not.

    A node's own task of the service is left out of its load first, so that a node is
    not refused for the room or the port its own task takes.
    """
    filters = _Filters(service)
    return {load.node.id: filters.reason(filters.without_service(load)) for load in nodes}


def node_passes(service: Service, load: NodeLoad) -> str:
    """The reason the node refuses one more task of `service`: its first failing filter's.

    Empty when the node accepts the task.
    """
    return _Filters(service).reason(load)


class _Filters:
    """The filter pipeline of one service, parsed once and applied to many nodes."""

    def __init__(self, service: Service) -> None:
        spec = service.spec
        self.service_id = service.id
        self.constraints = [parse_constraint(text) for text in spec.constraints]
        self.reservations = spec.reservations
        self.ports = {
            (port.published, port.protocol): f"has port {port.published}/{port.protocol} in use"
            for port in spec.ports
            if port.mode == PublishMode.HOST and port.published is not None
        }
        self.max_per_node = spec.max_replicas_per_node
        # Every reason a node can be refused for, in pipeline order: the explanation's order.
        self.reasons = [
            NOT_AVAILABLE,
            CONSTRAINTS_NOT_SATISFIED,
            NO_ADDRESSES,
            FAILING,
            INSUFFICIENT_RESOURCES,
            *self.ports.values(),
            MAX_REPLICAS_REACHED,
        ]

    def reason(self, load: NodeLoad) -> str:
        return self.node_reason(load) or self.load_reason(load)

    def node_reason(self, load: NodeLoad) -> str:
        node = load.node
        if node.state != NodeState.READY or node.availability != Availability.ACTIVE:
            return NOT_AVAILABLE
        if not all(constraint.holds(node) for constraint in self.constraints):
            return CONSTRAINTS_NOT_SATISFIED
        if self.service_id in load.homeless:
            return NO_ADDRESSES
        if self.service_id in load.failing:
            return FAILING
        return ""

    def load_reason(self, load: NodeLoad) -> str:
        node = load.node
        if not _fits(self.reservations, load.reserved, node.resources):
            return INSUFFICIENT_RESOURCES
        taken = next((why for port, why in self.ports.items() if port in load.host_ports), "")
        if taken:
            return taken
        if self.max_per_node and _tasks_of(load, self.service_id) >= self.max_per_node:
            return MAX_REPLICAS_REACHED
        return ""

    def add_task(self, load: NodeLoad) -> NodeLoad:
        return replace(
            load,
            service_tasks={
                **load.service_tasks,
                self.service_id: _tasks_of(load, self.service_id) + 1,
            },
            reserved=_add(load.reserved, self.reservations, 1),
            host_ports=load.host_ports | self.ports.keys(),
        )

    def without_service(self, load: NodeLoad) -> NodeLoad:
        tasks = _tasks_of(load, self.service_id)
        if not tasks:
            return load
        return replace(
            load,
            service_tasks={s: n for s, n in load.service_tasks.items() if s != self.service_id},
            reserved=_add(load.reserved, self.reservations, -tasks),
            host_ports=load.host_ports - self.ports.keys(),
        )


def _fits(wanted: Resources, reserved: Resources, capacity: Resources) -> bool:
    # A node that did not report a resource has a capacity of 0: nothing to reserve there.
    cpus = not wanted.nano_cpus or reserved.nano_cpus + wanted.nano_cpus <= capacity.nano_cpus
    memory = (
        not wanted.memory_bytes
        or reserved.memory_bytes + wanted.memory_bytes <= capacity.memory_bytes
    )
    return cpus and memory


def _add(reserved: Resources, reservations: Resources, times: int) -> Resources:
    return Resources(
        max(0, reserved.nano_cpus + times * reservations.nano_cpus),
        max(0, reserved.memory_bytes + times * reservations.memory_bytes),
    )


def _tasks_of(load: NodeLoad, service_id: str) -> int:
    return load.service_tasks.get(service_id, 0)


def _node_key(load: NodeLoad, service_id: str, index: int) -> tuple[int, int, str, str, int]:
    # Fewest tasks of the service, then fewest tasks overall, then by name; the index
    # (into the caller's list) keeps keys unique even if two nodes share a name and id.
    return (_tasks_of(load, service_id), load.total_tasks, load.node.hostname, load.node.id, index)


class _Group:
    """Nodes sharing their values of the spread labels so far: a node of the spread tree.

    With no preference the tree is a single leaf. A leaf's heap holds the keys of its
    nodes that can take a task; an inner group's heap holds those of its children that
    still have such a node, ordered by tasks of the service in the child.
    """

    def __init__(self, value: str) -> None:
        self.value = value  # the label value; siblings with as many tasks go by it
        self.tasks = 0  # of the service, on every node of the group, eligible or not
        self.children: dict[str, _Group] = {}
        self.members: list[int] = []  # indexes of eligible nodes, when a leaf
        self.heap: list[tuple] = []

    def key(self) -> tuple[int, str, "_Group"]:
        # Sibling values differ, so comparison never reaches the group itself.
        return (self.tasks, self.value, self)

    def add(
        self, load: NodeLoad, index: int, spread: list[str], service_id: str, eligible: bool
    ) -> None:
        self.tasks += _tasks_of(load, service_id)
        if not spread:
            if eligible:
                self.members.append(index)
            return
        # As in swarm, nodes without the label group with those whose label is empty.
        value = load.node.labels.get(spread[0], "")
        child = self.children.get(value)
        if child is None:
            child = self.children[value] = _Group(value)
        child.add(load, index, spread[1:], service_id, eligible)

    def heapify(self, loads: list[NodeLoad], service_id: str) -> None:
        self.heap = [_node_key(loads[i], service_id, i) for i in self.members]
        for child in self.children.values():
            child.heapify(loads, service_id)
            if child.heap:
                self.heap.append(child.key())
        heapq.heapify(self.heap)

    def descend(self) -> tuple[list["_Group"], int]:
        """Pop the best entry at every level down to a node: the groups walked and its index.

        The caller pushes back whatever can still take a task, with its new key.
        """
        path, group = [self], self
        while group.children:
            group = heapq.heappop(group.heap)[-1]
            path.append(group)
        return path, heapq.heappop(group.heap)[-1]


def _explain(refused: Counter[str], reasons: list[str], nodes: int) -> str:
    if not nodes:
        return NO_NODES
    return f"no suitable node ({'; '.join(_count(refused[r], r) for r in reasons if refused[r])})"


def _count(nodes: int, reason: str) -> str:
    """Swarm's phrasing: "1 node has port 80/tcp in use", "… not satisfied on 2 nodes"."""
    subject = "1 node" if nodes == 1 else f"{nodes} nodes"
    if reason.startswith("has "):
        return f"{subject} {reason if nodes == 1 else 'have' + reason[3:]}"
    if reason == NOT_AVAILABLE:
        return f"{subject} {reason}"
    return f"{reason} on {subject}"
