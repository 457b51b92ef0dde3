"""Services end to end: create, scale, remove, and converging them.

A command records the user's spec first (with its virtual IPs and published ports),
then converges: reconcile -> apply, a few rounds, so that tasks rejected by a node that
could not be reached are placed elsewhere; then every node's mesh and virtual IPs are
brought up to date. What does not converge is reported, not hidden: the caller exits
non-zero. The supervisor keeps doing the same afterwards.
"""

import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum

from swarmctl import (
    clock,
    executor,
    leases,
    networking,
    observe,
    pause,
    pinning,
    secrets,
    sightings,
    update,
)
from swarmctl.commands.render import render
from swarmctl.errors import SwarmctlError
from swarmctl.mesh import (
    INGRESS,
    MESH_MARK,
    NodeServices,
    node_services,
    probability,
    task_networks,
)
from swarmctl.models import (
    Availability,
    Mode,
    Node,
    NodeState,
    PublishMode,
    Service,
    ServiceSpec,
    Task,
    TaskState,
    UpdateState,
    UpdateStatus,
    ready_node_ids,
    replicas,
)
from swarmctl.naming import new_id
from swarmctl.network import ipam
from swarmctl.pinning import ResolveImage
from swarmctl.reconciler import Plan, reconcile
from swarmctl.repo import Repo
from swarmctl.spec import Changes, check_replicas, updated_spec
from swarmctl.state import StateStore
from swarmctl.transport.engine import Engine, NotFound, Refused
from swarmctl.transport.group import Pool

MAX_ROUNDS = 4
LEASE_WAIT = 30.0  # how long a command waits for a service the supervisor is acting on
LEASE_TTL = 600.0  # a command that dies mid-way blocks the service at most this long
DYNAMIC_PORTS = range(30000, 32768)  # swarm's range for ingress ports left unnamed
# The helpers' built-in image, carried by every converge script that may need it.
PAUSE_ARCHIVES = {arch: pause.archive_base64(arch) for arch in ("amd64", "arm64")}

Progress = Callable[[Task], None]


@dataclass(frozen=True)
class Convergence:
    service: Service
    running: int
    desired: int
    problems: list[str]  # one line per task that did not make it, with why

    @property
    def converged(self) -> bool:
        return self.running >= self.desired and not self.problems


def create(
    store: StateStore,
    pool: Pool,
    spec: ServiceSpec,
    ssh_ports: Iterable[int],
    resolve: ResolveImage = ResolveImage.ALWAYS,
) -> tuple[Service, list[str]]:
    """Record a new service; return it and warnings. Converging is the caller's next step.

    The image is pinned to its digest first (resolve), outside the state lock: a registry
    that does not answer holds no other command up. Bad input is refused before that, so
    it costs no registry request and no connection; the checks run again in the
    transaction."""
    warnings: list[str] = []
    ssh_ports = set(ssh_ports)
    with store.read() as db:
        _check(Repo(db), spec, ssh_ports)
        ready = [n for n in Repo(db).nodes.all() if n.state == NodeState.READY]
    # The tasks' nodes are connected to meanwhile, in parallel.
    pool.connect([n.hostname for n in ready])
    if pinning.wants_digest(spec.image, resolve):
        image, warning = pinning.pin(spec.image, ready, distribution(pool))
        spec = replace(spec, image=image)
        warnings += [warning] if warning else []
    with store.transaction() as db:
        repo = Repo(db)
        service, new_ingress = record_create(repo, spec, ssh_ports)
        nodes = repo.nodes.all()
    if new_ingress:
        warnings += networking.converge(store, pool, nodes)
    return service, warnings


def record_create(repo: Repo, spec: ServiceSpec, ssh_ports: Iterable[int]) -> tuple[Service, bool]:
    """Record a new service in the caller's transaction; returns it and whether the
    routing mesh's network was made for it (its nodes are then the caller's to converge)."""
    services, networks, published = _check(repo, spec, ssh_ports)
    now = clock.now()
    service = Service(
        id=new_id(),
        spec=spec,
        created_at=now,
        updated_at=now,
        published=published,
        vips=_vips(spec, networks, services),
    )
    repo.services.put(service)
    new_ingress = INGRESS in task_networks(spec) and INGRESS not in networks
    if new_ingress:
        networking.add_ingress(repo)
    return service, new_ingress


def _check(
    repo: Repo, spec: ServiceSpec, ssh_ports: Iterable[int]
) -> tuple[list[Service], dict, dict]:
    """The cluster's services and networks, and the spec's published ports, if it fits."""
    repo.cluster()
    check_replicas(f"--replicas {spec.replicas}", spec.replicas, len(repo.nodes.all()))
    services = repo.services.all()
    if any(s.spec.name == spec.name for s in services):
        raise SwarmctlError(f"service {spec.name} already exists")
    secrets.check_refs(repo, spec)
    networks = _check_networks(repo, spec)
    return services, networks, _publish(spec, services, set(ssh_ports))


def _check_networks(repo: Repo, spec: ServiceSpec) -> dict:
    """The cluster's networks by name, if the spec's can be attached to."""
    networks = {n.name: n for n in repo.networks.all()}
    for name in spec.networks:
        if name not in networks:
            raise SwarmctlError(f"network {name} not found")
        if name == INGRESS:
            raise SwarmctlError(
                "network ingress is the routing mesh's: publish a port "
                "with -p instead of attaching to it"
            )
    return networks


def distribution(pool: Pool) -> Callable[[str, str, float], dict]:
    """Ask a node's engine what its registry says a reference is (its digest)."""

    def inspect(hostname: str, reference: str, timeout: float) -> dict:
        if hostname not in pool.connections:
            raise SwarmctlError(f"{hostname}: not in the inventory")
        engine = Engine(pool[hostname], timeout)
        try:
            return engine.get(f"/distribution/{reference}/json")
        except NotFound as error:
            raise pinning.UnknownImage(str(error)) from None
        except Refused as error:
            raise pinning.RegistryUnreachable(str(error)) from None
        finally:
            engine.close()

    return inspect


def _publish(spec: ServiceSpec, services: Sequence[Service], ssh_ports: set[int]) -> dict:
    """Published port of each of the spec's ports, checked against the cluster's.

    An ingress port is taken on every node, so it conflicts with any other use of the
    port; two host-mode ports only meet on a node, which the scheduler keeps apart."""
    ingress: dict[tuple[int, str], str] = {}
    host: dict[tuple[int, str], str] = {}
    for other in services:
        for port in other.spec.ports:
            number = other.published.get(f"{port.target}/{port.protocol}", port.published)
            if number:
                taken = ingress if port.mode == PublishMode.INGRESS else host
                taken[(int(number), port.protocol)] = other.spec.name
    published = {}
    for port in spec.ports:
        number = port.published
        if number is None and port.mode == PublishMode.INGRESS:
            number = next(
                (
                    p
                    for p in DYNAMIC_PORTS
                    if (p, port.protocol) not in ingress
                    and (p, port.protocol) not in host
                    and p not in ssh_ports
                ),
                None,
            )
            if number is None:
                raise SwarmctlError("no free port left in 30000-32767 to publish on")
        if number is None:
            continue
        key = (number, port.protocol)
        other = ingress.get(key) or (host.get(key) if port.mode == PublishMode.INGRESS else None)
        if other:
            raise SwarmctlError(
                f"port {number}/{port.protocol} is already published by service {other}"
            )
        if port.mode == PublishMode.INGRESS and port.protocol == "tcp" and number in ssh_ports:
            raise SwarmctlError(
                f"port {number}/tcp is the SSH port swarmctl reaches nodes on: "
                "the routing mesh would take it over on every node"
            )
        (ingress if port.mode == PublishMode.INGRESS else host)[key] = spec.name
        published[f"{port.target}/{port.protocol}"] = number
    return published


def _vips(
    spec: ServiceSpec, networks: dict, services: Sequence[Service], kept: dict | None = None
) -> dict[str, str]:
    """A virtual IP on each of the spec's networks: those in `kept` (an updated service's
    own) stay, the others are allocated."""
    vips = {}
    for name in spec.networks:
        network = networks[name]
        if kept and network.id in kept:
            vips[network.id] = kept[network.id]
            continue
        taken = [s.vips[network.id] for s in services if network.id in s.vips]
        vips[network.id] = ipam.allocate_vip(network.subnet, network.gateway, taken)
    return vips


def scale(store: StateStore, targets: dict[str, int]) -> list[Service]:
    """Record new replica counts (`service scale nginx=5 web=2`)."""
    with store.transaction() as db:
        return record_scale(Repo(db), targets)


def record_scale(repo: Repo, targets: dict[str, int]) -> list[Service]:
    """Record new replica counts in the caller's transaction (or snapshot)."""
    changed = []
    repo.cluster()
    for ref, count in targets.items():
        service = repo.services.get(ref)
        if service.spec.mode != Mode.REPLICATED:
            raise SwarmctlError(f"{service.spec.name}: scale can only be used with replicated mode")
        check_replicas(f"{service.spec.name}={count}", count, len(repo.nodes.all()))
        if count == service.spec.replicas:
            changed.append(service)  # nothing to write: converging still checks it
            continue
        updated = replace(
            service,
            spec=replace(service.spec, replicas=count),
            updated_at=clock.now(),
            version=service.version + 1,
            history=service.superseded(),
        )
        repo.services.put(updated)
        changed.append(updated)
    return changed


def remove(store: StateStore, refs: Sequence[str]) -> list[Service]:
    with store.transaction() as db:
        return record_remove(Repo(db), refs)


def record_remove(repo: Repo, refs: Sequence[str]) -> list[Service]:
    found = [repo.services.get(ref) for ref in refs]
    repo.services.delete([s.id for s in found])
    return found


def converge(
    store: StateStore,
    pool: Pool,
    service_ids: set[str],
    progress: Progress | None = None,
    always_mesh: bool = False,
    wait_health: bool = True,
) -> list[str]:
    """Reconcile and apply the given services until nothing more can be done now, and
    (`wait_health`) until the new tasks' health checks tell; then, if anything changed
    (or `always_mesh`: a service's virtual IPs are new or gone) for a service the mesh
    carries, bring every node's mesh up to date. Returns warnings."""
    if (
        not always_mesh
        and _plan(store, service_ids)[0].empty
        and not _unsettled(store, service_ids)
    ):
        return []  # nothing to do: no lease taken, nothing written
    with leased(store, service_ids):
        return _converge(store, pool, service_ids, progress, always_mesh, wait_health)


def _plan(store: StateStore, service_ids: set[str]) -> tuple[Plan, bool]:
    """What reconciling the services would do now, and whether the mesh carries any of
    them (records already removed by `service rm` say nothing: then it may)."""
    with store.read() as db:
        repo = Repo(db)
        touched = [s for s in repo.services.all() if s.id in service_ids]
        plan = reconcile_now(repo, datetime.now(UTC), only=service_ids)
    return plan, not touched or any(s.spec.ports or s.spec.networks for s in touched)


def _unsettled(store: StateStore, service_ids: set[str]) -> bool:
    with store.read() as db:
        return observe.unsettled(t for t in Repo(db).tasks.all() if t.service_id in service_ids)


def reconcile_now(
    repo: Repo, now: datetime, only: set[str] | None = None, renew: dict | None = None
) -> Plan:
    """The reconciler's plan for the records of one snapshot or transaction."""
    return reconcile(
        repo.services.all(),
        repo.tasks.all(),
        repo.nodes.all(),
        now,
        new_id,
        only=only,
        networks=repo.networks.all(),
        renew=renew,
    )


@contextmanager
def leased(store: StateStore, service_ids: set[str], wait: float = LEASE_WAIT) -> Iterator[None]:
    """Hold the services' leases (a supervisor mid-tick on them holds them briefly)."""
    holder = leases.me()
    names = [leases.service_lease(i) for i in sorted(service_ids)]
    deadline = time.monotonic() + wait
    while True:
        with store.transaction() as db:
            now = datetime.now(UTC)
            held = [h for n in names if (h := leases.get(db, n)) and h.held_by_other(holder, now)]
            if not held:
                for name in names:
                    leases.take(db, name, holder, LEASE_TTL, now)
                break
        if time.monotonic() > deadline:
            raise SwarmctlError(
                f"{held[0].name} is being changed by {held[0].holder}: try again in a moment"
            )
        time.sleep(0.1)
    try:
        yield
    finally:
        with store.transaction() as db:
            for name in names:
                leases.release(db, name, holder)


def unreachable_warning(plan: Plan, node_id: str, error: str) -> str:
    """What becomes of a node's share of the plan when the node cannot be reached."""
    starts = any(t.node_id == node_id for t in plan.create)
    stops = any(t.node_id == node_id for t in plan.shutdown)
    fates = (["its new tasks go elsewhere"] if starts else []) + (
        ["its containers to stop are removed when it is back"] if stops else []
    )
    return f"{error}: {' and '.join(fates) or 'nothing changed there'}"


def _converge(
    store: StateStore,
    pool: Pool,
    service_ids: set[str],
    progress: Progress | None,
    always_mesh: bool,
    wait_health: bool,
) -> list[str]:
    # What an interrupted command left is taken over first, not planned around.
    acted, restart, warnings = sightings.catch_up(store, pool, service_ids)
    meshed = False
    for _ in range(MAX_ROUNDS):
        plan, meshed = _plan(store, service_ids)
        if restart:  # unless this plan ends them (their node went down meanwhile)
            planned = {t.id for t in (*plan.shutdown, *plan.update)}
            again = tuple(t for t in restart if t.id not in planned)
            plan, restart = replace(plan, update=plan.update + again), []
        if plan.empty:
            break
        acted = True
        outcome = executor.apply(store, pool, plan, progress)
        warnings += [unreachable_warning(plan, node, e) for node, e in outcome.unreachable.items()]
        # Another round helps tasks that a lost node turned away, and finishes removals
        # (records of tasks whose containers are now gone); other failures wait for the
        # restart policy, which the supervisor applies.
        if not outcome.unreachable and not plan.shutdown:
            break
    if acted and wait_health:
        # New tasks join the mesh and their VIPs once their health check passes.
        with store.read() as db:
            checks = [s.spec.health for s in Repo(db).services.all() if s.id in service_ids]
        wait = max((sightings.health_wait(h) for h in checks), default=0.0)
        sightings.await_health(store, pool, service_ids, time.monotonic() + wait, progress)
    # A service with neither ports nor networks has no mesh rule, virtual IP or neighbour.
    if (acted or always_mesh) and meshed:
        warnings += converge_mesh(store, pool)
    return warnings


def converge_mesh(store: StateStore, pool: Pool, skip: Collection[str] = ()) -> list[str]:
    """Every reachable node but those in `skip` (ids of nodes known not to answer now,
    brought up to date when they are back): virtual-IP helpers, ingress and VIP rules
    as they should be."""
    with store.read() as db:
        repo = Repo(db)
        cluster, nodes = repo.cluster(), repo.nodes.all()
        services, tasks, networks = repo.services.all(), repo.tasks.all(), repo.networks.all()
    targets = [n for n in nodes if n.state != NodeState.DOWN and n.id not in skip]
    scripts = {
        n.hostname: mesh_script(
            node_services(cluster.id, n, services, tasks, networks, cluster.helper_image)
        )
        for n in targets
    }
    results = pool.each(
        lambda conn: conn.run(scripts[conn.name], timeout=120, check=False), list(scripts)
    )
    warnings = []
    for name, result in results.items():
        if isinstance(result, SwarmctlError):
            warnings.append(f"{result}: its routing mesh will be updated at the next change")
        elif result.exit_code != 0:  # one line per failed step; the other steps were done
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            warnings += [f"{name}: {line}" for line in lines or [f"exit {result.exit_code}"]]
    return warnings


def mesh_script(wanted: NodeServices) -> str:
    return render(
        "services/converge.sh.j2",
        s=wanted,
        mark=MESH_MARK,
        probability=probability,
        pause_image=pause.IMAGE,
        pause=PAUSE_ARCHIVES,
        at_once=executor.PER_NODE,
    )


FAILED_STATES = (TaskState.FAILED, TaskState.REJECTED)


def status(store: StateStore, service_ids: Iterable[str]) -> list[Convergence]:
    with store.read() as db:
        repo = Repo(db)
        services = {s.id: s for s in repo.services.all()}
        tasks = repo.tasks.all()
        all_nodes = repo.nodes.all()
    ready = ready_node_ids(all_nodes)
    report = []
    for service_id in service_ids:
        service = services.get(service_id)
        if service is not None:
            running, desired = replicas(service, tasks, ready)
            why = problems(service, tasks, all_nodes, running < desired)
            report.append(Convergence(service, running, desired, why))
    return report


def problems(
    service: Service, tasks: Iterable[Task], all_nodes: Sequence[Node], short: bool
) -> list[str]:
    """One line per task of the service that did not make it, with why; `short`: fewer
    replicas run than desired, so a current task's failure or state is the reason."""
    nodes = {n.id: n.hostname for n in all_nodes}
    states = {n.id: n.state.value for n in all_nodes}
    ready = ready_node_ids(all_nodes)
    found: dict[str, str] = {}  # one line per slot: its latest task's
    for task in sorted(tasks, key=lambda t: t.created_at):
        current = task.desired_state == TaskState.RUNNING
        if task.service_id != service.id or not (current or task.state in FAILED_STATES):
            continue
        where = nodes.get(task.node_id, "no node")
        name = f"{service.spec.name}.{task.slot_key}"
        if task.state == TaskState.RUNNING:
            found.pop(name, None)  # what an earlier task of the slot met is over
            if task.node_id not in ready and task.node_id in states:
                found[name] = (
                    f"{name} on {where}: running when last seen, node {states[task.node_id]}"
                )
        elif task.error and short:
            found[name] = f"{name} on {where}: {task.state.value}: {task.error}"
        elif task.state == TaskState.STARTING and task.container_id:
            found[name] = f"{name} on {where}: starting: its health check has not passed"
        elif current and short:
            # e.g. complete: its command ended with status 0, which a service never expects
            found[name] = f"{name} on {where}: {task.state.value}"
    return sorted(found.values())


# ----------------------------------------------------------------- rolling updates

UPDATE_POLL = 0.5  # seconds between looks at an update's new tasks
ROLLED_BACK = "update rolled back"


class Kind(StrEnum):
    NOTHING = "nothing"  # the spec is as asked: no task touched
    SCALED = "scaled"  # only the replica count changed
    UPDATING = "updating"  # a rolling update (or rollback) was recorded, or is going on


def update_service(
    store: StateStore,
    pool: Pool,
    ref: str,
    changes: Changes,
    ssh_ports: Iterable[int],
    resolve: ResolveImage = ResolveImage.ALWAYS,
    force: bool = False,
) -> tuple[Service, Kind, list[str]]:
    """Record `service update`'s new spec; return the service, what kind of change it is,
    and warnings. Rolling it out is `roll`'s. Bad input changes nothing; an image its
    registry says does not exist is bad input."""
    warnings: list[str] = []
    with store.read() as db:
        repo = Repo(db)
        repo.cluster()
        before = repo.services.get(ref)
        spec = updated_spec(before.spec, changes)
        ready = [n for n in repo.nodes.all() if n.state == NodeState.READY]
    if pinning.wants_digest(spec.image, resolve, before.spec.image):
        pool.connect([n.hostname for n in ready])
        unknown: list[str] = []

        def inspect(hostname: str, reference: str, timeout: float) -> dict:
            try:
                return distribution(pool)(hostname, reference, timeout)
            except pinning.UnknownImage as error:
                unknown.append(str(error))
                raise

        image, warning = pinning.pin(spec.image, ready, inspect)
        if unknown:
            raise SwarmctlError(
                f"image {spec.image}: its registry has no such image ({unknown[0]})"
            )
        spec = replace(spec, image=image)
        warnings += [warning] if warning else []
    with store.transaction() as db:
        repo = Repo(db)
        service = repo.services.get(before.id)
        if service.version != before.version:
            raise SwarmctlError(f"service {service.spec.name} changed meanwhile: try again")
        changed, kind, new_ingress = record_update(repo, service, spec, ssh_ports, force)
        nodes = repo.nodes.all()
    if new_ingress:
        warnings += networking.converge(store, pool, nodes)
    return changed, kind, warnings


def record_update(
    repo: Repo,
    service: Service,
    spec: ServiceSpec,
    ssh_ports: Iterable[int],
    force: bool = False,
) -> tuple[Service, Kind, bool]:
    """Record the service's whole new spec in the caller's transaction: nothing, a scale,
    or a rolling update (`roll` carries it out). Returns the service, the kind of change
    and whether the routing mesh's network was made for it."""
    in_progress = service.update_status and service.update_status.state.in_progress
    if spec == service.spec and not force:
        return service, Kind.UPDATING if in_progress else Kind.NOTHING, False
    check_replicas(f"--replicas {spec.replicas}", spec.replicas, len(repo.nodes.all()))
    secrets.check_refs(repo, spec)
    networks = _check_networks(repo, spec)
    others = [s for s in repo.services.all() if s.id != service.id]
    published = _publish(_known_ports(spec, service), others, set(ssh_ports))
    vips = _vips(spec, networks, others, kept=service.vips)
    if replace(spec, replicas=service.spec.replicas) == service.spec and not force:
        # As docker, a scale can be rolled back; but while some tasks still run the
        # previous spec (an update unfinished), that spec stays the one to go back to.
        settled = service.update_status is None or service.update_status.completed_at
        previous = service.spec if settled else service.previous_spec
        changed = replace(
            service,
            spec=spec,
            previous_spec=previous,
            updated_at=clock.now(),
            version=service.version + 1,
            history=service.superseded(),
        )
        repo.services.put(changed)
        return changed, Kind.SCALED, False
    changed = _new_version(
        service, spec, published, vips, UpdateState.UPDATING, "update in progress"
    )
    repo.services.put(changed)
    new_ingress = INGRESS in task_networks(spec) and INGRESS not in {
        n.name for n in repo.networks.all()
    }
    if new_ingress:
        networking.add_ingress(repo)
    return changed, Kind.UPDATING, new_ingress


def renew_users(repo: Repo, kind: str, name: str) -> list[Service]:
    """Start a rolling update of every service using the secret or config `name`, whose
    value just changed: a new version of the same spec, so that each task is replaced
    with that service's update policy and the new one gets the new value. Recorded in the
    caller's transaction, with the value: an interrupted command leaves no service behind."""
    renewed = [
        _new_version(s, s.spec, {}, s.vips, UpdateState.UPDATING, f"{kind} {name} updated")
        for s in secrets.users(repo.services.all(), kind, name)
    ]
    repo.services.put_many(renewed)
    return renewed


def _known_ports(spec: ServiceSpec, service: Service) -> ServiceSpec:
    """The spec with the ports the service already published under their numbers, so
    that an update keeps a port the cluster picked for it."""
    ports = tuple(
        replace(p, published=service.published.get(f"{p.target}/{p.protocol}"))
        if p.published is None
        else p
        for p in spec.ports
    )
    return replace(spec, ports=ports)


def rollback(store: StateStore, ref: str, to: int | None = None) -> Service:
    """Record a rollback to the previous spec (`service rollback`), or to the spec of
    version `to` among those the service keeps (`--to`)."""
    with store.transaction() as db:
        repo = Repo(db)
        repo.cluster()
        service = repo.services.get(ref)
        changed = record_rollback(repo, service, to)
    return changed


def record_rollback(repo: Repo, service: Service, to: int | None) -> Service:
    """Record, in the caller's transaction, the service rolling back to version `to`
    (None: its previous spec)."""
    name = service.spec.name
    if to is None:
        target = service.previous_spec
        if target is None:
            raise SwarmctlError(f"service {name}: no previous spec to roll back to")
    else:
        target = service.spec_at(to)
        if target is None:
            kept = ", ".join(str(h.version) for h in (*service.history, service))
            raise SwarmctlError(f"service {name}: no version {to} kept (kept: {kept})")
        if to == service.version:
            raise SwarmctlError(f"service {name}: version {to} is the current one")
    try:  # a secret or config it used may be gone: its tasks could not start
        secrets.check_refs(repo, target)
    except SwarmctlError as error:
        raise SwarmctlError(f"cannot roll back service {name}: {error}") from None
    message = "manually requested rollback" + (f" to version {to}" if to else "")
    changed = _rolled_back(repo, service, message, target)
    repo.services.put(changed)
    return changed


def _rolled_back(
    repo: Repo, service: Service, message: str, target: ServiceSpec | None = None
) -> Service:
    """The service rolling back to `target` (by default its previous spec), with that
    spec's virtual IPs and published ports (the same ones where they are still free)."""
    previous = target or service.previous_spec
    assert previous is not None
    others = [s for s in repo.services.all() if s.id != service.id]
    try:
        networks = _check_networks(repo, previous)
        published = _publish(_known_ports(previous, service), others, set())
    except SwarmctlError as error:
        raise SwarmctlError(f"cannot roll back service {service.spec.name}: {error}") from None
    vips = _vips(previous, networks, others, kept=service.vips)
    return _new_version(service, previous, published, vips, UpdateState.ROLLBACK_STARTED, message)


def _new_version(
    service: Service,
    spec: ServiceSpec,
    published: dict,
    vips: dict,
    state: UpdateState,
    message: str,
) -> Service:
    """The service on a new version of `spec`, its rolling update (or rollback) begun
    now; the spec it leaves is the one to go back to."""
    version, now = service.version + 1, clock.now()
    return replace(
        service,
        spec=spec,
        previous_spec=service.spec,
        history=service.superseded(),
        updated_at=now,
        version=version,
        # A port published before keeps its number for a rollback to take up again.
        published={**service.published, **published},
        vips=vips,
        update_status=UpdateStatus(state, now, message=message, spec_version=version),
    )


def roll(
    store: StateStore, pool: Pool, service_id: str, progress: Progress | None = None
) -> tuple[UpdateStatus | None, list[str]]:
    """Carry the service's update (or rollback) on until it completes or pauses; returns
    its last status and warnings. Everything it goes by is in the state, so a rerun (or
    the supervisor) takes over where an interrupted one stopped, without repeating a batch."""
    warnings: list[str] = []
    endpoints = _endpoints(store, service_id)
    while True:
        # The lease is taken round by round, not for the whole update: between rounds
        # the supervisor may carry the update on too, and one killed in a sleep holds none.
        with leased(store, {service_id}):
            status, wake_at = advance(store, pool, service_id, progress)
        serving = _endpoints(store, service_id)
        if serving is not None and serving != endpoints:
            warnings += converge_mesh(store, pool)  # new tasks in, old ones out
        endpoints = serving
        if status is None or not status.state.in_progress:
            if _reached_differently(store, service_id):
                warnings += converge_mesh(store, pool)  # virtual IPs or ports gone too
            return status, warnings
        pause_for = UPDATE_POLL
        if wake_at is not None:
            pause_for = min(pause_for, (wake_at - datetime.now(UTC)).total_seconds())
        time.sleep(max(0.05, pause_for))


def _reached_differently(store: StateStore, service_id: str) -> bool:
    """Whether the service's networks or ports differ from its previous spec's."""
    with store.read() as db:
        service = Repo(db).services.find(service_id)
    before = service.previous_spec if service else None
    return before is not None and (before.networks, before.ports) != (
        service.spec.networks,
        service.spec.ports,
    )


def _endpoints(store: StateStore, service_id: str) -> frozenset | None:
    """The service's running endpoints, or None when the mesh does not carry it."""
    with store.read() as db:
        repo = Repo(db)
        service = repo.services.find(service_id)
        if service is None or not (service.spec.ports or service.spec.networks):
            return None
        return observe.running_endpoints(t for t in repo.tasks.all() if t.service_id == service_id)


def advance(
    store: StateStore, pool: Pool, service_id: str, progress: Progress | None = None
) -> tuple[UpdateStatus | None, datetime | None]:
    """One round of the service's update, under its lease: look at its tasks, then renew
    the slots the planner names, or record the update's end. Returns its status and when
    to look again."""
    _, restart, _ = sightings.catch_up(store, pool, {service_id}, always=True)
    now = datetime.now(UTC)
    with store.read() as db:
        repo = Repo(db)
        service = repo.services.find(service_id)
        decided = decide(service, repo.tasks.all(), now) if service else None
        if service is None or decided is None:
            return service.update_status if service else None, None
        plan = reconcile_now(repo, now, only={service_id}, renew={service_id: decided.renew})
    if decided.outcome is not None:
        return finish(store, service_id, decided, service.update_status), None
    if restart:
        plan = replace(plan, update=plan.update + tuple(restart))
    leave_mesh_first(store, pool, plan)
    if not plan.empty:
        executor.apply(store, pool, plan, progress)
    return service.update_status, decided.wake_at


def leave_mesh_first(
    store: StateStore, pool: Pool, plan: Plan, skip: Collection[str] = ()
) -> list[str]:
    """Take the plan's running tasks out of the routing mesh and their virtual IPs before
    they are stopped, so that no new connection reaches a container going away (on the
    nodes but those in `skip`, as converge_mesh)."""
    serving = [t for t in plan.shutdown if t.state == TaskState.RUNNING and t.addresses]
    if not serving:
        return []
    executor.save(store, serving)
    return converge_mesh(store, pool, skip)


def decide(service: Service, tasks: Iterable[Task], now: datetime) -> update.Step | None:
    """The planner's next step of the service's update, if one is in progress."""
    status = service.update_status
    if status is None or not status.state.in_progress:
        return None
    return update.step(
        _slots(service, [t for t in tasks if t.service_id == service.id]),
        status.spec_version,
        clock.parse(status.started_at),
        service.update_policy,
        now,
        sightings.health_wait(service.spec.health),
    )


def _slots(service: Service, tasks: list[Task]) -> dict:
    """The service's tasks by slot, for the slots it wants, in slot order."""
    if service.spec.mode == Mode.REPLICATED:
        keys: list = list(range(1, service.spec.replicas + 1))
    else:
        keys = sorted({t.slot_key for t in tasks if t.desired_state == TaskState.RUNNING}, key=str)
    return {key: [t for t in tasks if t.slot_key == key] for key in keys}


def finish(
    store: StateStore, service_id: str, decided: update.Step, on: UpdateStatus
) -> UpdateStatus | None:
    """Record the end of the update `decided` was made `on`: completed, paused, or a
    rollback begun. A command records a new update (or rollback) without the service's
    lease: if one came meanwhile, it is left going on, not ended with the old one."""
    with store.transaction() as db:
        repo = Repo(db)
        service = repo.services.find(service_id)
        if service is None or service.update_status != on:
            return service.update_status if service else None
        status = on
        now = clock.now()
        rolling_back = status.state.rollback
        if decided.outcome == update.Outcome.COMPLETED:
            state = UpdateState.ROLLBACK_COMPLETED if rolling_back else UpdateState.COMPLETED
            done = "rollback completed" if rolling_back else "update completed"
            why = status.message if status.message.startswith(ROLLED_BACK) else ""
            message = f"{done} ({why})" if why else done
            changed = replace(
                service,
                update_status=replace(status, state=state, completed_at=now, message=message),
            )
        else:
            first = decided.failures[0]
            names = {n.id: n.hostname for n in repo.nodes.all()}
            name = f"{service.spec.name}.{first.task.slot_key}"
            where = names.get(first.task.node_id, "no node")
            why = f"failure of task {name} ({first.task.id[:12]}) on {where}: {first.reason}"
            rollback_now = (
                not rolling_back and service.spec.update.failure_action.value == "rollback"
            )
            paused = f"update paused due to {why}"
            if rollback_now:
                try:
                    changed = _rolled_back(repo, service, f"{ROLLED_BACK} due to {why}")
                except SwarmctlError as error:
                    rollback_now, paused = False, f"{paused}; {error}"
            if not rollback_now:
                state = UpdateState.ROLLBACK_PAUSED if rolling_back else UpdateState.PAUSED
                message = f"rollback paused due to {why}" if rolling_back else paused
                changed = replace(
                    service, update_status=replace(status, state=state, message=message)
                )
        repo.services.put(changed)
    return changed.update_status


# ------------------------------------------------------------------------- drains


def decide_drain(
    service: Service, tasks: Iterable[Task], nodes: Iterable[Node], now: datetime
) -> update.Step | None:
    """The planner's next step moving the service's tasks off drained nodes with its
    update policy, if it is replicated and a task of it is or was on one (a global
    service's task there just ends: the reconciler ends it)."""
    drained = {n.id for n in nodes if n.availability == Availability.DRAIN}
    mine = [t for t in tasks if t.service_id == service.id]
    if service.spec.mode != Mode.REPLICATED or not any(t.node_id in drained for t in mine):
        return None
    return update.drain_step(
        _slots(service, mine),
        drained,
        service.spec.update,
        now,
        sightings.health_wait(service.spec.health),
    )


def drain_due(repo: Repo, now: datetime) -> bool:
    """Whether a drain has a slot to move now (a cheap look first: a task meant to run on
    a drained node)."""
    nodes = repo.nodes.all()
    drained = {n.id for n in nodes if n.availability == Availability.DRAIN}
    tasks = repo.tasks.all()
    on_drained = {
        t.service_id for t in tasks if t.node_id in drained and t.desired_state == TaskState.RUNNING
    }
    return any(
        (step := decide_drain(s, tasks, nodes, now)) and step.renew
        for s in repo.services.all()
        if s.id in on_drained
    )


def drain(
    store: StateStore,
    pool: Pool,
    service_ids: set[str],
    wait_for: set[str],
    progress: Progress | None = None,
) -> tuple[list[update.Failure], list[str]]:
    """Move the services' tasks off drained nodes, each service with its update policy,
    round by round as `roll` does, until none of `wait_for` has a slot left to move or
    moving; returns the moves that failed and warnings. A rerun, or the supervisor,
    carries on an interrupted drain: everything it goes by is in the state."""
    warnings: list[str] = []
    endpoints = _serving(store, service_ids)
    while True:
        with leased(store, service_ids):
            steps, pending, more = _drain_round(store, pool, service_ids, progress)
        warnings += more
        serving = _serving(store, service_ids)
        if serving != endpoints:
            warnings += converge_mesh(store, pool)  # new tasks in
        endpoints = serving
        # A new task no node can take now holds its slot's place until the start timeout
        # (as in an update), but the command does not wait for the cluster to change.
        busy = [
            s
            for i, s in steps.items()
            if i in wait_for and (s.renew or set(s.in_flight) - pending.get(i, set()))
        ]
        if not busy:
            failures = [f for s in steps.values() for f in s.failures]
            # Records of stopped tasks, health checks and the mesh, as any command ends.
            return failures, warnings + converge(store, pool, service_ids, progress)
        wakes = [s.wake_at for s in busy if s.wake_at]
        pause_for = min([UPDATE_POLL, *((w - datetime.now(UTC)).total_seconds() for w in wakes)])
        time.sleep(max(0.05, pause_for))


def _drain_round(
    store: StateStore, pool: Pool, service_ids: set[str], progress: Progress | None
) -> tuple[dict[str, update.Step], dict[str, set], list[str]]:
    """One round of a drain, under the services' leases: look at their tasks, then move
    the slots the planner names (and end global tasks on drained nodes). Returns the
    planner's steps, the slots whose task is pending, by service, and warnings."""
    _, restart, warnings = sightings.catch_up(store, pool, service_ids, always=True)
    now = datetime.now(UTC)
    with store.read() as db:
        repo = Repo(db)
        tasks, nodes = repo.tasks.all(), repo.nodes.all()
        steps = {
            s.id: step
            for s in repo.services.all()
            if s.id in service_ids and (step := decide_drain(s, tasks, nodes, now))
        }
        renew = {i: step.renew for i, step in steps.items()}
        plan = reconcile_now(repo, now, only=service_ids, renew=renew)
    pending: dict[str, set] = {}
    for task in {t.id: t for t in (*tasks, *plan.create, *plan.update)}.values():
        if task.state == TaskState.PENDING and task.desired_state == TaskState.RUNNING:
            pending.setdefault(task.service_id, set()).add(task.slot_key)
    if restart:
        planned = {t.id for t in (*plan.shutdown, *plan.update)}
        plan = replace(plan, update=plan.update + tuple(t for t in restart if t.id not in planned))
    warnings += leave_mesh_first(store, pool, plan)
    if not plan.empty:
        outcome = executor.apply(store, pool, plan, progress)
        warnings += [unreachable_warning(plan, node, e) for node, e in outcome.unreachable.items()]
    return steps, pending, warnings


def _serving(store: StateStore, service_ids: set[str]) -> frozenset:
    with store.read() as db:
        return observe.running_endpoints(
            t for t in Repo(db).tasks.all() if t.service_id in service_ids
        )
