"""Applying a stack's plan (plan.py): record it all in one transaction, then converge.

Everything a deploy decides is written at once — networks, new, updated and pruned
services, the deploy's record — so a file that cannot be deployed whole changes
nothing, and a deploy cut short (Ctrl-C, a lost node) leaves only work that the next
deploy (or the supervisor) finishes: converging is level-triggered and `roll` takes an
update up where it stopped. Unchanged services are looked at, never touched.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from swarmctl import clock, convergence, pinning, rolling, secrets, services
from swarmctl.errors import SwarmctlError
from swarmctl.models import Network, NodeState, Service, UpdateState
from swarmctl.naming import new_id, valid_name
from swarmctl.network import networking
from swarmctl.runtime import engine
from swarmctl.stack.model import DEPLOYS_KEPT, NAMESPACE_LABEL, Stack, StackDeploy
from swarmctl.stack.plan import StackPlan, ownership, plan, stack_networks, stack_services
from swarmctl.state import StateStore
from swarmctl.state.repo import Repo
from swarmctl.transport.group import Pool

PAUSED = (UpdateState.PAUSED, UpdateState.ROLLBACK_PAUSED)


@dataclass
class Recorded:
    """What a deploy (or a rollback) wrote, for converging and reporting."""

    plan: StackPlan
    files: list[str] = field(default_factory=list)  # "Creating secret web_key", …
    record: StackDeploy | None = None
    networks: list[Network] = field(default_factory=list)
    created: list[Service] = field(default_factory=list)
    rolling: list[Service] = field(default_factory=list)  # an update or rollback to carry on
    others: list[Service] = field(default_factory=list)  # scaled or unchanged: converge only
    removed: list[Service] = field(default_factory=list)
    new_ingress: bool = False


def read_files(stack: Stack) -> dict[tuple[str, str], bytes]:
    """The values of the stack's secrets and configs that are not external, read from
    their files before anything is recorded (kind, name) -> bytes."""
    values = {}
    for kind, objects in (("secret", stack.secrets), ("config", stack.configs)):
        for item in objects:
            if not item.external:
                values[(kind, item.name)] = _named(
                    stack, f"{kind} {item.name}", secrets.read_source, kind, item.file
                )
    return values


def preview(store: StateStore, stack: Stack, prune: bool, ssh_ports: Iterable[int]) -> Recorded:
    """The deploy, checked as the deploy would check it (names, ports, networks, replicas,
    secrets) and recorded on a snapshot of the state that is never written: `--dry-run`,
    no connection."""
    values = read_files(stack)
    with store.read() as db:
        return _write(Repo(db), stack, prune, set(ssh_ports), values)


def record(
    store: StateStore,
    pool: Pool,
    stack: Stack,
    prune: bool,
    ssh_ports: Iterable[int],
    resolve: pinning.ResolveImage = pinning.ResolveImage.ALWAYS,
) -> tuple[Recorded, list[str]]:
    """Record the deploy; returns what was written and warnings. Converging is next."""
    ssh_ports = set(ssh_ports)
    values = read_files(stack)
    with store.read() as db:
        first = _write(Repo(db), stack, prune, ssh_ports, values).plan
    stack, warnings = _pinned(store, pool, stack, first, resolve)
    with store.transaction() as db:
        # Planned again under the lock: the one applied is the one the records allow now.
        return _write(Repo(db), stack, prune, ssh_ports, values), warnings


def _write(
    repo: Repo,
    stack: Stack,
    prune: bool,
    ssh_ports: set[int],
    values: dict[tuple[str, str], bytes],
) -> Recorded:
    """Plan the deploy and write it all in one transaction (or snapshot): secrets and
    configs first (a new value renews the services using it), then networks, services
    and the deploy's record."""
    repo.cluster()
    files = _put_files(repo, stack, values)
    planned = plan(repo.services.all(), repo.networks.all(), stack, prune)
    done = Recorded(planned, files=files)
    for network in planned.networks:
        if not valid_name(network.name):
            raise SwarmctlError(f"stack {stack.name}: network name {network.name!r} is invalid")
        options = networking.NetworkOptions(
            network.name,
            subnet=network.subnet or None,
            attachable=network.attachable,
            labels={**network.labels, NAMESPACE_LABEL: stack.name},
        )
        done.networks.append(
            _named(stack, f"network {network.name}", networking.record, repo, options)
        )
    repo.services.delete([s.id for s in planned.remove])
    done.removed = list(planned.remove)
    for spec in planned.create:
        service, ingress = _named(
            stack, f"service {spec.name}", services.record_create, repo, spec, ssh_ports
        )
        done.created.append(service)
        done.new_ingress |= ingress
    for update in planned.update:
        service, kind, ingress = _named(
            stack,
            f"service {update.spec.name}",
            services.record_update,
            repo,
            update.service,
            update.spec,
            ssh_ports,
        )
        (done.rolling if kind == services.Kind.UPDATING else done.others).append(service)
        done.new_ingress |= ingress
    for service in planned.unchanged:
        status = service.update_status
        in_progress = status is not None and status.state.in_progress
        (done.rolling if in_progress else done.others).append(service)
    done.record = _note(repo, stack, "")
    return done


def _put_files(repo: Repo, stack: Stack, values: dict[tuple[str, str], bytes]) -> list[str]:
    """Store the stack's secrets and configs; returns what changed, as `Creating secret
    web_key` would say it. External ones must exist already."""
    changed = []
    for kind, objects in (("secret", stack.secrets), ("config", stack.configs)):
        stored = {r.name: r for r in repo.files(kind).all()}
        for item in objects:
            if item.external:
                if item.name not in stored:
                    raise SwarmctlError(
                        f"stack {stack.name}: {kind} {item.name} is external but does not "
                        f"exist: create it with `swarmctl {kind} create {item.name} FILE`"
                    )
                continue
            found = stored.get(item.name)
            if found is not None and found.labels.get(NAMESPACE_LABEL) != stack.name:
                # Another's value: replacing it would roll its users, `stack rm` delete it.
                raise SwarmctlError(
                    f"stack {stack.name}: {kind} {item.name} already exists"
                    f"{ownership(found.labels)} (mark it external: true to use it)"
                )
            labels = {**item.labels, NAMESPACE_LABEL: stack.name}
            _, new = _named(
                stack, f"{kind} {item.name}", secrets.put, repo, kind, item.name,
                values[(kind, item.name)], labels,
            )  # fmt: skip
            if item.name not in stored:
                changed.append(f"Creating {kind} {item.name}")
            elif new:
                # Its users roll to get the new value, as after `secret update`.
                users = services.renew_users(repo, kind, item.name)
                rolls = ", ".join(sorted(s.spec.name for s in users)) or "no service"
                changed.append(f"Updating {kind} {item.name} (rolls {rolls})")
    return changed


def _named(stack: Stack, what: str, action, *args):
    """`action(*args)`, its error naming the stack and the thing it was about."""
    try:
        return action(*args)
    except SwarmctlError as error:
        raise SwarmctlError(f"stack {stack.name}: {what}: {error}") from None


def _note(repo: Repo, stack: Stack, note: str) -> StackDeploy:
    """Record the deploy (the stack's services at their versions now); keep the last few.
    A redeploy that changed nothing is counted on the deploy it repeats, so that unchanged
    redeploys do not push the deploys worth going back to out of the history."""
    before = deploys(repo, stack.name)
    entry = StackDeploy(
        id=new_id(),
        stack=stack.name,
        number=before[-1].number + 1 if before else 1,
        at=clock.now(),
        digest=stack.digest,
        files=stack.files,
        services={s.spec.name: s.version for s in stack_services(repo.services.all(), stack.name)},
        note=note,
    )
    last = before[-1] if before else None
    if (
        last
        and replace(entry, id=last.id, number=last.number, at=last.at, again=last.again) == last
    ):
        repeated = replace(last, at=entry.at, again=last.again + 1)
        repo.deploys.put(repeated)
        return repeated
    repo.deploys.put(entry)
    repo.deploys.delete([d.id for d in before[: max(0, len(before) + 1 - DEPLOYS_KEPT)]])
    return entry


def deploys(repo: Repo, stack: str) -> list[StackDeploy]:
    return sorted((d for d in repo.deploys.all() if d.stack == stack), key=lambda d: d.number)


def _pinned(
    store: StateStore, pool: Pool, stack: Stack, first: StackPlan, resolve: pinning.ResolveImage
) -> tuple[Stack, list[str]]:
    """The stack with the images of new services, and images that changed, pinned to
    their digests. An image a service already runs is not asked again: a redeploy of
    an unchanged file reaches no registry."""
    changed = {s.name for s in first.create} | {
        u.spec.name for u in first.update if u.spec.image != u.service.spec.image
    }
    wanted = [
        s for s in stack.services if s.name in changed and pinning.wants_digest(s.image, resolve)
    ]
    if not wanted:
        return stack, []
    with store.read() as db:
        ready = [n for n in Repo(db).nodes.all() if n.state == NodeState.READY]
    pool.connect([n.hostname for n in ready], engine=True)
    pins, warnings = {}, []
    unknown: list[str] = []

    def inspect(hostname: str, reference: str, timeout: float) -> dict:
        try:
            return engine.distribution(pool)(hostname, reference, timeout)
        except pinning.UnknownImage as error:
            unknown.append(str(error))
            raise

    for spec in wanted:
        if spec.image in pins:
            continue
        pins[spec.image], warning = pinning.pin(spec.image, ready, inspect)
        if unknown:
            raise SwarmctlError(
                f"stack {stack.name}: service {spec.name}: image {spec.image}: "
                f"its registry has no such image ({unknown[0]})"
            )
        warnings += [warning] if warning else []
    names = {s.name for s in wanted}
    pinned = tuple(
        replace(s, image=pins[s.image]) if s.name in names else s for s in stack.services
    )
    return replace(stack, services=pinned), warnings


def converge(
    store: StateStore,
    pool: Pool,
    done: Recorded,
    progress: convergence.Progress | None = None,
    detach: bool = False,
    want: UpdateState = UpdateState.COMPLETED,
) -> tuple[list[str], list[str]]:
    """Bring the nodes to what `done` recorded: networks, then services. Returns warnings
    and failures (one line per service that did not converge; none with `detach`)."""
    warnings: list[str] = []
    with store.read() as db:
        repo = Repo(db)
        nodes = repo.nodes.all()
        pending = any(n.pending for n in stack_networks(repo.networks.all(), done.plan.stack))
    if done.networks or done.new_ingress or pending:
        warnings += networking.converge(store, pool, nodes)
    if done.removed:
        warnings += convergence.converge(
            store, pool, {s.id for s in done.removed}, always_mesh=True
        )
    ids = {s.id for s in (*done.created, *done.others)}
    if ids:
        warnings += convergence.converge(
            store,
            pool,
            ids,
            progress,
            always_mesh=bool(done.created),
            wait_health=not detach,
        )
    if detach:
        return warnings, []
    failures = []
    for service in done.rolling:
        status, more = rolling.roll(store, pool, service.id, progress)
        warnings += more
        if status is None or status.state != want:
            state = status.state.value.replace("_", " ") if status else "gone"
            failures.append(f"service {service.spec.name}: {state}: {status and status.message}")
    rolled = {s.id for s in done.rolling}
    for report in convergence.status(store, ids | rolled):
        status = report.service.update_status
        if report.service.id in ids and status and status.state in PAUSED:
            # Its spec is the file's, but an earlier deploy's update of it stopped short.
            state = status.state.value.replace("_", " ")
            failures.append(f"service {report.service.spec.name}: {state}: {status.message}")
        elif not report.converged:
            details = "; ".join(report.problems) or "tasks are not running"
            failures.append(
                f"service {report.service.spec.name} did not converge "
                f"({report.running} of {report.desired} tasks running): {details}"
            )
    return warnings, failures


def rollback(store: StateStore, name: str, to: int | None = None) -> tuple[Recorded, list[str]]:
    """Record the stack's return to an earlier deploy (`to`, by number; by default the
    latest one whose services' versions differ from now): each of its services rolls
    back to the version that deploy left it on, with its rollback policy."""
    with store.transaction() as db:
        return record_rollback(Repo(db), name, to)


def record_rollback(repo: Repo, name: str, to: int | None) -> tuple[Recorded, list[str]]:
    """The rollback in the caller's transaction (or snapshot: `--dry-run`)."""
    warnings = []
    repo.cluster()
    history = deploys(repo, name)
    if not history:
        raise SwarmctlError(f"stack {name}: no deploy recorded")
    current = {s.spec.name: s for s in stack_services(repo.services.all(), name)}
    now = {n: s.version for n, s in current.items()}
    if to is None:
        target = next((d for d in reversed(history) if d.services != now), None)
        if target is None:
            raise SwarmctlError(f"stack {name}: no earlier deploy to roll back to")
    else:
        target = next((d for d in history if d.number == to), None)
        if target is None:
            kept = ", ".join(str(d.number) for d in history)
            raise SwarmctlError(f"stack {name}: no deploy {to} kept (kept: {kept})")
    done = Recorded(StackPlan(name))
    for service_name, version in sorted(target.services.items()):
        service = current.get(service_name)
        if service is None:
            warnings.append(
                f"service {service_name} was removed after deploy {target.number}: "
                "deploy its file again to bring it back"
            )
        elif service.version == version:
            done.others.append(service)
        else:
            try:
                changed = services.record_rollback(repo, service, version)
            except SwarmctlError as error:
                raise SwarmctlError(f"stack {name}: {error}") from None
            done.rolling.append(changed)
    warnings += [
        f"service {n} is not in deploy {target.number}: left as it is"
        for n in sorted(set(current) - set(target.services))
    ]
    again = Stack(name, (), files=target.files, digest=target.digest)
    done.record = _note(repo, again, f"rollback to deploy {target.number}")
    return done, warnings
