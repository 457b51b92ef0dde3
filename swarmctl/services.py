"""Services as the user writes them: create, scale, update, roll back, remove.

Each command records the user's spec (with its virtual IPs and published ports, from
network/endpoints) in one transaction, checked first: bad input changes nothing. The
`record_*` functions do it in the caller's transaction, for `stack deploy` and dry runs
on a snapshot. Carrying a change out is `convergence`'s (and `rolling`'s for updates).
"""

from collections.abc import Iterable, Sequence
from dataclasses import replace
from enum import StrEnum

from swarmctl import clock, pinning, secrets
from swarmctl.errors import SwarmctlError
from swarmctl.models import (
    Mode,
    NodeState,
    Service,
    ServiceSpec,
    UpdateState,
    UpdateStatus,
)
from swarmctl.naming import new_id
from swarmctl.network import endpoints, networking
from swarmctl.network.mesh import (
    INGRESS,
    task_networks,
)
from swarmctl.pinning import ResolveImage
from swarmctl.runtime import engine
from swarmctl.spec import Changes, check_replicas, updated_spec
from swarmctl.state import StateStore
from swarmctl.state.repo import Repo
from swarmctl.transport.group import Pool


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
    # The tasks' nodes are connected to meanwhile, in parallel, with their engines: each
    # task's container is read from its engine once started.
    pool.connect([n.hostname for n in ready], engine=True)
    store.prepare_to_write()
    if pinning.wants_digest(spec.image, resolve):
        image, warning = pinning.pin(spec.image, ready, engine.distribution(pool))
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
        vips=endpoints.vips(spec, networks, services),
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
    networks = check_networks(repo, spec)
    return services, networks, endpoints.publish(spec, services, set(ssh_ports))


def check_networks(repo: Repo, spec: ServiceSpec) -> dict:
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


# ----------------------------------------------------------------- rolling updates


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
        pool.connect([n.hostname for n in ready], engine=True)
        unknown: list[str] = []

        def inspect(hostname: str, reference: str, timeout: float) -> dict:
            try:
                return engine.distribution(pool)(hostname, reference, timeout)
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
    networks = check_networks(repo, spec)
    others = [s for s in repo.services.all() if s.id != service.id]
    published = endpoints.publish(endpoints.known_ports(spec, service), others, set(ssh_ports))
    vips = endpoints.vips(spec, networks, others, kept=service.vips)
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
    changed = rolled_back(repo, service, message, target)
    repo.services.put(changed)
    return changed


def rolled_back(
    repo: Repo, service: Service, message: str, target: ServiceSpec | None = None
) -> Service:
    """The service rolling back to `target` (by default its previous spec), with that
    spec's virtual IPs and published ports (the same ones where they are still free)."""
    previous = target or service.previous_spec
    assert previous is not None
    others = [s for s in repo.services.all() if s.id != service.id]
    try:
        networks = check_networks(repo, previous)
        published = endpoints.publish(endpoints.known_ports(previous, service), others, set())
    except SwarmctlError as error:
        raise SwarmctlError(f"cannot roll back service {service.spec.name}: {error}") from None
    vips = endpoints.vips(previous, networks, others, kept=service.vips)
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


# ------------------------------------------------------------------------- drains
