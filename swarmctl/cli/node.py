"""`swarmctl node ls|inspect|update|rm|ps|trust`."""

from dataclasses import dataclass, replace
from typing import Annotated, Any

import typer

from swarmctl.cli.common import DryRunOpt, FormatOpt, InspectFormatOpt, QuietOpt, new_app
from swarmctl.cli.context import env
from swarmctl.cli.output import warn
from swarmctl.errors import SwarmctlError

app = new_app("Manage the cluster's nodes.")

NodeArg = Annotated[str, typer.Argument(help="Node name, ID or unique ID prefix.")]


def _read(ctx: typer.Context):
    from swarmctl.state.repo import Repo

    e = env(ctx)
    with e.store.read() as db:
        repo = Repo(db)
        repo.cluster()
        return repo.nodes.all(), repo.services.all(), repo.tasks.all()


@app.command("ls")
def ls(ctx: typer.Context, fmt: FormatOpt = "table", quiet: QuietOpt = False) -> None:
    """List nodes, as `docker node ls`."""
    from swarmctl.cli.goformat import render_rows
    from swarmctl.cli.output import table

    nodes = sorted(_read(ctx)[0], key=lambda n: n.hostname)
    if quiet:
        for node in nodes:
            typer.echo(node.id)
        return
    rows = [ls_row(n) for n in nodes]
    render_rows(
        fmt,
        rows,
        lambda: table(
            ("ID", "NAME", "MEMBERSHIP", "STATUS", "AVAILABILITY", "MANAGER STATUS"),
            [
                (
                    r["ID"],
                    r["Hostname"],
                    "Accepted",
                    r["Status"],
                    r["Availability"],
                    r["ManagerStatus"],
                )
                for r in rows
            ],
        ),
    )


def ls_row(node) -> dict:
    """A `node ls` row keyed as docker's. Self: the leader, the node swarmctl's
    decisions speak for (docker's is the node the CLI's daemon runs on)."""
    return {
        "ID": node.id,
        "Hostname": node.hostname,
        "Status": node.state.value.capitalize(),
        "Availability": node.availability.value.capitalize(),
        "ManagerStatus": node.manager_status,
        "EngineVersion": node.facts.engine_version,
        "TLSStatus": "Ready",
        "Self": node.leader,
    }


@app.command()
def inspect(
    ctx: typer.Context,
    nodes: Annotated[list[str], typer.Argument(help="Nodes.")],
    pretty: Annotated[bool, typer.Option(help="Human-readable.")] = False,
    fmt: InspectFormatOpt = None,
) -> None:
    """Show nodes in detail (JSON, a --format template, or --pretty)."""
    from swarmctl.cli.goformat import render_documents
    from swarmctl.state.repo import Repo

    e = env(ctx)
    with e.store.read() as db:
        found = [Repo(db).nodes.get(ref) for ref in nodes]
    if not pretty:
        render_documents(fmt, [inspect_json(n) for n in found])
        return
    for index, node in enumerate(found):
        if index:
            typer.echo("")
        _pretty(node)


def inspect_json(node) -> dict:
    status = {"State": node.state.value, "Addr": node.address}
    if node.message:
        status["Message"] = node.message
    doc = {
        "ID": node.id,
        "Version": {"Index": node.version},
        "CreatedAt": node.created_at,
        "UpdatedAt": node.updated_at,
        "Spec": {
            "Labels": node.labels,
            "Role": node.role.value,
            "Availability": node.availability.value,
        },
        "Description": {
            "Hostname": node.hostname,
            "Platform": {"Architecture": node.facts.arch, "OS": "linux"},
            "Resources": {
                "NanoCPUs": node.resources.nano_cpus,
                "MemoryBytes": node.resources.memory_bytes,
            },
            "Engine": {"EngineVersion": node.facts.engine_version},
            "OperatingSystem": node.facts.os,
            "KernelVersion": node.facts.kernel,
            "Underlay": {"Interface": node.facts.iface, "Addr": node.facts.address},
        },
        "Status": status,
    }
    if node.last_seen:
        doc["Status"]["LastSeen"] = node.last_seen
    if node.manager_status:
        doc["ManagerStatus"] = {
            "Leader": node.leader,
            "Reachability": "reachable",
            "Addr": node.address,
        }
    return doc


def _pretty(node) -> None:
    gib = node.facts.memory_bytes / 2**30
    lines = [
        f"ID:\t\t\t{node.id}",
        f"Hostname:\t\t{node.hostname}",
        f"Joined at:\t\t{node.created_at}",
        "Status:",
        f" State:\t\t\t{node.state.value.capitalize()}",
        f" Availability:\t\t{node.availability.value.capitalize()}",
        f" Address:\t\t{node.address}",
    ]
    if node.message:
        lines.append(f" Message:\t\t{node.message}")
    if node.manager_status:
        lines += [
            "Manager Status:",
            f" Address:\t\t{node.address}",
            f" Leader:\t\t{'Yes' if node.leader else 'No'}",
        ]
    lines += [
        "Platform:",
        f" Operating System:\t{node.facts.os}",
        f" Architecture:\t\t{node.facts.arch}",
        f" Kernel:\t\t{node.facts.kernel}",
        "Resources:",
        f" CPUs:\t\t\t{node.facts.cpus}",
        f" Memory:\t\t{gib:.4g} GiB",
        f"Engine Version:\t\t{node.facts.engine_version}",
    ]
    if node.labels:
        lines.append("Labels:")
        lines += [f" - {key}={value}" for key, value in sorted(node.labels.items())]
    typer.echo("\n".join(lines).expandtabs(8))


@app.command()
def update(
    ctx: typer.Context,
    node: NodeArg,
    availability: Annotated[str | None, typer.Option(help="active, pause or drain.")] = None,
    label_add: Annotated[
        list[str] | None, typer.Option(help="Add or update a node label (key=value).")
    ] = None,
    label_rm: Annotated[
        list[str] | None, typer.Option(help="Remove a node label if it exists.")
    ] = None,
    role: Annotated[str | None, typer.Option(help="worker or manager.")] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", "-f", help="Drain even tasks pinned to the node by a local volume."
        ),
    ] = False,
    dry_run: DryRunOpt = False,
) -> None:
    """Change a node's availability, labels or role. Drain moves its tasks elsewhere, each
    service's with its update policy, and waits until they run there (a rerun finishes an
    interrupted drain); active lets global services start their task on it again."""
    from swarmctl.models import Availability, Role
    from swarmctl.naming import parse_key_values
    from swarmctl.state.repo import Repo

    if availability is not None and availability not in {a.value for a in Availability}:
        raise SwarmctlError(f"--availability {availability!r}: use active, pause or drain")
    if role is not None and role not in {r.value for r in Role}:
        raise SwarmctlError(f"--role {role!r}: use worker or manager")
    wanted = _NodeChange(
        availability and Availability(availability),
        parse_key_values(label_add, "--label-add"),
        label_rm or [],
        role and Role(role),
        force,
    )
    e = env(ctx)
    if dry_run:
        from swarmctl.cli.plan import dry_run as preview

        preview(e.store, lambda repo: _record_update(repo, node, wanted)[-1])
    with e.store.transaction() as db:
        current, changed, moving, pinned, _ = _record_update(Repo(db), node, wanted)
    typer.echo(current.hostname)
    warn([f"{why}: it waits, stopped, until the node is active again" for why in pinned.values()])
    if changed.availability == Availability.DRAIN:
        # A pinned task's service stays short of a replica by design: only the others move.
        _move_away(e, current, {s.id for s, _ in moving}, excused={sid for sid, _ in pinned})
    elif (
        changed.availability == Availability.ACTIVE and current.availability != changed.availability
    ):
        _start_global(e)


@dataclass(frozen=True)
class _NodeChange:
    availability: Any
    additions: dict[str, str]
    removals: list[str]
    role: Any
    force: bool


def _record_update(repo, ref: str, wanted: _NodeChange):
    """Record `node update` in the caller's transaction (or snapshot); returns the node
    before and after, the (service, task) a drain moves, those a local volume pins, and
    what the command then converges (a drain: the services it moves; an activation: the
    global services)."""
    from swarmctl import clock
    from swarmctl.cli.plan import Change
    from swarmctl.models import Availability, Mode, Role

    current = repo.nodes.get(ref)
    labels = {k: v for k, v in current.labels.items() if k not in wanted.removals}
    labels.update(wanted.additions)
    changed = replace(
        current,
        labels=labels,
        availability=wanted.availability or current.availability,
        role=wanted.role or current.role,
    )
    if changed.role == Role.WORKER and current.leader:
        raise SwarmctlError(f"node {current.hostname} is the leader: it cannot be demoted")
    draining = changed.availability == Availability.DRAIN
    moving = _tasks_on(repo, current.id) if draining else []
    pinned = _pinned(current.hostname, moving)
    if pinned and not wanted.force:
        raise SwarmctlError(
            f"{next(iter(pinned.values()))}: drained, it would wait, stopped, until "
            f"{current.hostname} is active again; --force drains anyway"
        )
    if changed != current:
        repo.nodes.put(replace(changed, updated_at=clock.now(), version=current.version + 1))
    converge = {s.id for s, _ in moving}
    if changed.availability == Availability.ACTIVE != current.availability:
        converge = {s.id for s in repo.services.all() if s.spec.mode == Mode.GLOBAL}
    return current, changed, moving, pinned, Change(converge)


def _tasks_on(repo, node_id: str) -> list:
    """(service, task) of every task meant to run on the node."""
    from swarmctl.models import TaskState

    services = {s.id: s for s in repo.services.all()}
    return [
        (services[t.service_id], t)
        for t in repo.tasks.all()
        if t.node_id == node_id
        and t.desired_state == TaskState.RUNNING
        and t.service_id in services
    ]


def _pinned(hostname: str, moving: list) -> dict[tuple[str, str], str]:
    """(service id, task id) -> why, for each replicated task a local volume holds on the
    node (its data is there): draining cannot move it. A global service's task there just
    ends, its data kept for when the node is active again."""
    from swarmctl.models import Mode
    from swarmctl.scheduler import local_volume

    return {
        (service.id, task.id): f"task {service.spec.name}.{task.slot_key} is pinned to "
        f"{hostname} by volume {volume}"
        for service, task in moving
        if service.spec.mode == Mode.REPLICATED and (volume := local_volume(service.spec))
    }


def _move_away(e, node, service_ids: set[str], excused: set[str]) -> None:
    """Move the tasks of the services the drain ends off the node; non-zero if one of a
    service not `excused` is still on it (its move failed) or a service falls short."""
    from swarmctl import convergence, rolling
    from swarmctl.models import TaskState
    from swarmctl.state.repo import Repo

    if not service_ids:
        return
    with e.pool() as pool:
        failures, warnings = rolling.drain(e.store, pool, service_ids, service_ids - excused)
    warn(warnings)
    why = {(f.task.service_id, f.task.slot_key): f"its move failed: {f.reason}" for f in failures}
    with e.store.read() as db:
        names = {s.id: s.spec.name for s in Repo(db).services.all()}
        found = Repo(db).tasks.all()
        why.update(
            {
                (t.service_id, t.slot_key): f"its replacement is pending: {t.error}"
                for t in found
                if t.state == TaskState.PENDING and t.desired_state == TaskState.RUNNING
            }
        )
        left = [
            f"task {names[t.service_id]}.{t.slot_key} is still on {node.hostname}"
            + (f": {reason}" if (reason := why.get((t.service_id, t.slot_key))) else "")
            for t in found
            if t.node_id == node.id
            and t.desired_state == TaskState.RUNNING
            and t.service_id in service_ids - excused
        ]
    short = [
        r for r in convergence.status(e.store, sorted(service_ids - excused)) if not r.converged
    ]
    if left or short:
        raise SwarmctlError(
            "; ".join(
                left
                + [
                    f"service {r.service.spec.name} did not converge after the drain "
                    f"({r.running} of {r.desired} tasks running)"
                    + (f": {', '.join(r.problems)}" if r.problems else "")
                    for r in short
                ]
            )
        )


def _start_global(e) -> None:
    """Start the global services' tasks on a node that takes tasks again."""
    from swarmctl import convergence
    from swarmctl.models import Mode
    from swarmctl.state.repo import Repo

    with e.store.read() as db:
        wanted = {s.id for s in Repo(db).services.all() if s.spec.mode == Mode.GLOBAL}
    if wanted:
        with e.pool() as pool:
            warn(convergence.converge(e.store, pool, wanted))


@app.command()
def rm(
    ctx: typer.Context,
    nodes: Annotated[list[str], typer.Argument(help="Nodes.")],
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Remove a node that is not down.")
    ] = False,
    dry_run: DryRunOpt = False,
) -> None:
    """Remove nodes that are down (or any node, with --force)."""
    from swarmctl.membership import leave
    from swarmctl.models import NodeState
    from swarmctl.state.repo import Repo

    e = env(ctx)
    with e.store.read() as db:
        found = [Repo(db).nodes.get(ref) for ref in nodes]
    for node in found:
        if node.state != NodeState.DOWN and not force:
            raise SwarmctlError(
                f"node {node.hostname} is not down and can't be removed: "
                f"`swarmctl leave {node.hostname}` cleans and removes it, or pass --force"
            )
    if dry_run:
        from swarmctl.cli.plan import dry_run as preview
        from swarmctl.cli.plan import leaving

        preview(e.store, lambda repo: leaving(repo, found, e.inventory.hosts))
    with e.pool() as pool:
        for node in found:
            warn(leave(e.store, e.inventory, pool, node.id, force=True, say=lambda _: None)[1])
            typer.echo(node.hostname)


@app.command()
def trust(
    ctx: typer.Context,
    node: NodeArg,
    forget: Annotated[
        bool, typer.Option("--forget", help="Forget the key recorded for the node.")
    ] = False,
) -> None:
    """Record the node's current SSH host key (trust on first use), or forget the recorded one.

    After a host was reinstalled, `--forget` and then a command run with
    --accept-new-host-keys (or `node trust` itself) trust its new key.
    """
    from swarmctl import clock
    from swarmctl.state.repo import Repo
    from swarmctl.transport.ssh import Trust, fingerprint

    e = env(ctx)
    with e.store.read() as db:
        target = Repo(db).nodes.get(node)
    key = ""
    if not forget:
        from swarmctl.transport.group import Pool

        seen = Trust(accept_new=True)
        with Pool([e.inventory.get(target.hostname)], seen) as pool:
            pool[target.hostname].run(["true"])
        key = seen.learned.get(target.hostname, "")
        if not key:
            typer.echo(f"{target.hostname}: its key is in known_hosts; nothing to record")
            return
    with e.store.transaction() as db:
        repo = Repo(db)
        current = repo.nodes.get(target.id)
        if current.host_key != key:
            repo.nodes.put(
                replace(current, host_key=key, updated_at=clock.now(), version=current.version + 1)
            )
    typer.echo(f"{target.hostname}: {fingerprint(*key.split()[:2]) if key else 'key forgotten'}")


@app.command()
def ps(
    ctx: typer.Context,
    node: NodeArg,
    no_trunc: Annotated[bool, typer.Option("--no-trunc", help="Full IDs and errors.")] = False,
    fmt: FormatOpt = "table",
    quiet: QuietOpt = False,
) -> None:
    """List the tasks of one node."""
    from swarmctl.cli.taskview import print_tasks
    from swarmctl.state.repo import Repo

    with env(ctx).store.read() as db:
        repo = Repo(db)
        target = repo.nodes.get(node)
        services, nodes = repo.services.all(), repo.nodes.all()
        tasks = [t for t in repo.tasks.all() if t.node_id == target.id]
    print_tasks(
        tasks,
        {s.id: s for s in services},
        {n.id: n for n in nodes},
        no_trunc=no_trunc,
        quiet=quiet,
        fmt=fmt,
    )
