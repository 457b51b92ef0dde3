"""The cluster's nouns as frozen dataclasses: cluster, node, network, service, task.

Pure data with swarm's vocabulary. Who writes what (swarmkit's rule, one writer each):
the user writes specs (service spec, node availability and labels), the orchestrator
writes each task's desired state, the supervisor writes observed state (node status,
task state). Conversion to and from the state file's JSON lives in `codec`.
"""

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    MANAGER = "manager"
    WORKER = "worker"


class Availability(StrEnum):
    ACTIVE = "active"
    PAUSE = "pause"
    DRAIN = "drain"


class NodeState(StrEnum):
    UNKNOWN = "unknown"
    READY = "ready"
    DOWN = "down"


@dataclass(frozen=True)
class Cluster:
    id: str
    created_at: str
    default_addr_pool: tuple[str, ...] = ("10.0.0.0/8",)
    subnet_size: int = 24
    vxlan_port: int = 4789
    # Holds each service's virtual IP and name on every node (network/mesh.py): "" is the built-in
    # swarmctl/pause image (pause.py), which needs no registry; another image must have
    # a `sleep` and be on the nodes or pullable by them.
    helper_image: str = ""


@dataclass(frozen=True)
class Resources:
    nano_cpus: int = 0  # 1e9 per CPU, as Docker counts them
    memory_bytes: int = 0


@dataclass(frozen=True)
class NodeFacts:
    """What a node told us about itself when it joined (or was last provisioned)."""

    os: str = ""
    kernel: str = ""
    arch: str = ""
    engine_version: str = ""
    cpus: int = 0
    memory_bytes: int = 0
    iface: str = ""  # underlay interface
    address: str = ""  # underlay address: the VXLAN endpoint of this node
    network: str = ""  # the underlay's subnet, which overlay subnets must not overlap


@dataclass(frozen=True)
class Node:
    id: str
    hostname: str  # the inventory name
    role: Role
    address: str  # where the overlay reaches it (underlay address)
    created_at: str
    updated_at: str
    availability: Availability = Availability.ACTIVE
    labels: dict[str, str] = field(default_factory=dict)
    leader: bool = False
    facts: NodeFacts = field(default_factory=NodeFacts)
    host_key: str = ""  # "<type> <base64>" trusted on first use, when not in known_hosts
    state: NodeState = NodeState.READY  # observed
    message: str = ""  # why it is down or unknown
    last_seen: str = ""  # last successful contact (observed)
    version: int = 1

    @property
    def resources(self) -> Resources:
        return Resources(self.facts.cpus * 10**9, self.facts.memory_bytes)

    @property
    def manager_status(self) -> str:
        if self.role != Role.MANAGER:
            return ""
        return "Leader" if self.leader else "Reachable"


# ---------------------------------------------------------------------- networks


@dataclass(frozen=True)
class Network:
    id: str
    name: str
    subnet: str
    gateway: str
    vni: int
    created_at: str
    driver: str = "overlay"
    mtu: int = 1450
    vxlan_port: int = 4789
    attachable: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    node_ranges: dict[str, str] = field(default_factory=dict)  # node id -> CIDR inside subnet
    pending: dict[str, str] = field(default_factory=dict)  # node id -> why not applied yet


# ---------------------------------------------------------------------- services


class Mode(StrEnum):
    REPLICATED = "replicated"
    GLOBAL = "global"


class PublishMode(StrEnum):
    INGRESS = "ingress"
    HOST = "host"


class RestartCondition(StrEnum):
    NONE = "none"
    ON_FAILURE = "on-failure"
    ANY = "any"


@dataclass(frozen=True)
class PortSpec:
    target: int
    published: int | None = None  # None: pick one from the dynamic range
    protocol: str = "tcp"
    mode: PublishMode = PublishMode.INGRESS


@dataclass(frozen=True)
class MountSpec:
    """A `--mount`, with docker's options for its type (volume-*, tmpfs-*)."""

    type: str  # "bind", "volume" or "tmpfs"
    source: str  # a host path, a volume name ("" for an anonymous volume), or "" for tmpfs
    target: str
    readonly: bool = False
    volume_driver: str = ""  # "": the node's default, local
    volume_opts: dict[str, str] = field(default_factory=dict)  # the driver's options
    volume_labels: dict[str, str] = field(default_factory=dict)
    volume_nocopy: bool = False  # do not fill an empty volume from the image
    tmpfs_size: int = 0  # bytes; 0: docker's default (no limit)
    tmpfs_mode: int | None = None  # permission bits; None: docker's default (1777)


@dataclass(frozen=True)
class FileRef:
    """A secret or config as a task sees it: a file at `target` (a secret's relative target
    is under /run/secrets), owned and moded as asked."""

    source: str  # the secret's or config's name
    target: str
    uid: str = "0"
    gid: str = "0"
    mode: int = 0o444


@dataclass(frozen=True)
class StoredFile:
    """A secret or a config as the cluster keeps it. `data` is a secret's value encrypted
    (a Fernet token: secrets.py) or a config's value in base64; `version` counts its values."""

    id: str
    name: str
    created_at: str
    updated_at: str
    data: str
    version: int = 1
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SecretsKey:
    """What tells a right secrets key from a wrong one: the salt the key is derived with
    and a known text encrypted with it. The key itself is never in the state."""

    salt: str  # base64
    check: str  # a Fernet token of secrets.CHECK_TEXT


@dataclass(frozen=True)
class RestartPolicy:
    condition: RestartCondition = RestartCondition.ANY
    delay: float | None = None  # seconds; None: back off exponentially from zero
    max_attempts: int = 0  # 0: unlimited
    window: float = 0.0  # seconds; 0: attempts are counted forever


@dataclass(frozen=True)
class HealthCheck:
    """The service's health check; a value left None is the image's (or docker's default)."""

    command: str = ""  # run with the container's shell, as --health-cmd; "": the image's
    interval: float | None = None
    retries: int | None = None
    timeout: float | None = None
    start_period: float | None = None
    disabled: bool = False  # --no-healthcheck: not even the image's


class FailureAction(StrEnum):
    PAUSE = "pause"
    CONTINUE = "continue"
    ROLLBACK = "rollback"


class UpdateOrder(StrEnum):
    STOP_FIRST = "stop-first"
    START_FIRST = "start-first"


@dataclass(frozen=True)
class UpdatePolicy:
    """How a rolling update (or a rollback) replaces tasks; swarm's defaults."""

    parallelism: int = 1  # slots replaced at a time; 0: all at once
    delay: float = 0.0  # seconds between one slot's new task running and the next batch
    monitor: float = 5.0  # seconds a new task must run for before it counts as a success
    failure_action: FailureAction = FailureAction.PAUSE
    max_failure_ratio: float = 0.0  # failed slots / all slots tolerated
    order: UpdateOrder = UpdateOrder.STOP_FIRST


@dataclass(frozen=True)
class ServiceSpec:
    """What the user asked for; only the user changes it."""

    name: str
    image: str
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    mode: Mode = Mode.REPLICATED
    replicas: int = 1
    networks: tuple[str, ...] = ()
    ports: tuple[PortSpec, ...] = ()
    constraints: tuple[str, ...] = ()
    placement_prefs: tuple[str, ...] = ()  # "spread=node.labels.zone"
    max_replicas_per_node: int = 0  # 0: no limit
    reservations: Resources = field(default_factory=Resources)
    limits: Resources = field(default_factory=Resources)
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    mounts: tuple[MountSpec, ...] = ()
    workdir: str = ""
    user: str = ""
    health: HealthCheck | None = None  # None: the image's own HEALTHCHECK, if any
    stop_grace_period: float = 10.0  # seconds from the stop signal to SIGKILL (swarm's)
    stop_signal: str = ""  # "": the image's STOPSIGNAL, else SIGTERM
    update: UpdatePolicy = field(default_factory=UpdatePolicy)
    rollback: UpdatePolicy = field(default_factory=UpdatePolicy)
    secrets: tuple[FileRef, ...] = ()
    configs: tuple[FileRef, ...] = ()
    hostname: str = ""  # "": the container's id, as docker's default
    container_labels: dict[str, str] = field(default_factory=dict)  # on each task's container
    # More DNS names of the service on a network (name -> aliases), as a stack's service key
    network_aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)


class UpdateState(StrEnum):
    UPDATING = "updating"
    PAUSED = "paused"
    COMPLETED = "completed"
    ROLLBACK_STARTED = "rollback_started"
    ROLLBACK_PAUSED = "rollback_paused"
    ROLLBACK_COMPLETED = "rollback_completed"

    @property
    def in_progress(self) -> bool:
        return self in (UpdateState.UPDATING, UpdateState.ROLLBACK_STARTED)

    @property
    def rollback(self) -> bool:
        return self.value.startswith("rollback")


@dataclass(frozen=True)
class UpdateStatus:
    """The last rolling update or rollback of a service, as `service inspect` shows it."""

    state: UpdateState
    started_at: str
    completed_at: str = ""
    message: str = ""
    # Tasks made for this service version or a later one run the new spec.
    spec_version: int = 0


@dataclass(frozen=True)
class SpecVersion:
    """A spec the service ran before: `service rollback --to VERSION` returns to it."""

    version: int
    spec: ServiceSpec
    since: str  # when the service took it


SPEC_HISTORY = 10  # specs kept per service, the current one included


@dataclass(frozen=True)
class Service:
    id: str
    spec: ServiceSpec
    created_at: str
    updated_at: str
    version: int = 1
    vips: dict[str, str] = field(default_factory=dict)  # network id -> virtual IP
    published: dict[str, int] = field(default_factory=dict)  # "80/tcp" -> published port
    previous_spec: ServiceSpec | None = None  # what `service rollback` returns to
    update_status: UpdateStatus | None = None
    history: tuple[SpecVersion, ...] = ()  # older specs, oldest first (SPEC_HISTORY - 1)

    @property
    def update_policy(self) -> UpdatePolicy:
        """The policy of the update in progress: a rollback runs with the rollback's."""
        rollback = self.update_status is not None and self.update_status.state.rollback
        return self.spec.rollback if rollback else self.spec.update

    def superseded(self) -> tuple[SpecVersion, ...]:
        """The history once the current spec gives way to a new one."""
        kept = (*self.history, SpecVersion(self.version, self.spec, self.updated_at))
        return kept[-(SPEC_HISTORY - 1) :]

    def spec_at(self, version: int) -> ServiceSpec | None:
        if version == self.version:
            return self.spec
        return next((h.spec for h in self.history if h.version == version), None)


# ------------------------------------------------------------------------- tasks


class TaskState(StrEnum):
    NEW = "new"
    PENDING = "pending"
    ASSIGNED = "assigned"
    ACCEPTED = "accepted"
    PREPARING = "preparing"
    STARTING = "starting"
    RUNNING = "running"
    COMPLETE = "complete"
    SHUTDOWN = "shutdown"
    FAILED = "failed"
    REJECTED = "rejected"
    ORPHANED = "orphaned"

    @property
    def rank(self) -> int:
        return _TASK_STATE_ORDER.index(self)

    @property
    def terminal(self) -> bool:
        return self.rank >= TaskState.COMPLETE.rank


_TASK_STATE_ORDER = list(TaskState)

NODE_UNREACHABLE = "node unreachable"  # the error of a task whose node could not be reached


@dataclass(frozen=True)
class Task:
    id: str
    service_id: str
    slot: int  # replicated: 1..N; global: 0 (the node is the slot)
    created_at: str
    node_id: str = ""  # empty until assigned
    desired_state: TaskState = TaskState.RUNNING
    state: TaskState = TaskState.NEW
    timestamps: dict[str, str] = field(default_factory=dict)  # state -> when it was entered
    message: str = ""  # what happened last ("started", "no suitable node …")
    error: str = ""
    container_id: str = ""
    exit_code: int | None = None
    spec_version: int = 1  # service version it was made for: older is outdated in an update
    image: str = ""  # the image of the spec it was made for ("" in older state files)
    addresses: dict[str, str] = field(default_factory=dict)  # network name -> IP
    macs: dict[str, str] = field(default_factory=dict)  # network name -> MAC
    restarts: int = 0  # how many tasks of this slot failed or completed in a row before it

    @property
    def updated_at(self) -> str:
        return self.timestamps.get(self.state.value, self.created_at)

    @property
    def slot_key(self) -> int | str:
        """What the task stands for: its slot, or for a global task (slot 0) its node."""
        return self.slot or self.node_id

    @property
    def lost_with_node(self) -> bool:
        """Whether the task ended because its node went down or could not be reached to
        start it, not through anything of its own: swarm reschedules such a task, and a
        rolling update does not count it as a failure."""
        return self.state == TaskState.ORPHANED or (
            self.state == TaskState.REJECTED and self.error.startswith(NODE_UNREACHABLE)
        )


def replicas(
    service: Service, tasks: Iterable[Task], ready_nodes: Collection[str]
) -> tuple[int, int]:
    """(running, desired) tasks of the service, as `service ls` shows them.

    A task counts as running only on a node seen ready: on a node that is down or unknown,
    its last record says running, but nobody can tell."""
    current = [
        t for t in tasks if t.service_id == service.id and t.desired_state == TaskState.RUNNING
    ]
    running = sum(1 for t in current if t.state == TaskState.RUNNING and t.node_id in ready_nodes)
    desired = service.spec.replicas if service.spec.mode == Mode.REPLICATED else len(current)
    return running, desired


def ready_node_ids(nodes: Iterable[Node]) -> set[str]:
    return {n.id for n in nodes if n.state == NodeState.READY}
