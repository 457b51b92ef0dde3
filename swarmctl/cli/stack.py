"""`swarmctl stack deploy|ls|services|ps|rm|history|rollback`."""

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from swarmctl.cli.common import DryRunOpt, FormatOpt, QuietOpt, new_app
from swarmctl.cli.context import env
from swarmctl.cli.output import warn
from swarmctl.errors import SwarmctlError

app = new_app("Manage stacks: services deployed together from Compose files.")

Name = Annotated[str, typer.Argument(metavar="STACK")]
Detach = Annotated[
    bool, typer.Option("--detach", "-d", help="Exit at once, without waiting for the tasks.")
]


@app.command()
def deploy(
    ctx: typer.Context,
    name: Name,
    compose_file: Annotated[
        list[str],
        typer.Option("--compose-file", "-c", help="Compose file; several are merged in order."),
    ],
    prune: Annotated[
        bool, typer.Option("--prune", help="Remove services no longer in the files.")
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Print the plan, change nothing; exit 0 if nothing would change, 2 if "
            "something would.",
        ),
    ] = False,
    resolve_image: Annotated[
        str,
        typer.Option(
            help="Pin new and changed images to their digests: always, changed or never "
            "(an image a service already runs is not asked again)."
        ),
    ] = "always",
    detach: Detach = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress.")] = False,
) -> None:
    """Deploy a stack, or update it: only what changed is touched, a changed service is
    rolled with its update policy (exits non-zero if a service does not converge)."""
    from swarmctl.pinning import resolve_mode
    from swarmctl.stack import deploy as engine
    from swarmctl.stack.compose import load

    resolve = resolve_mode(resolve_image, False)
    stack = load([Path(c) for c in compose_file], name, dict(os.environ))
    if stack.ignored:
        warn([f"stack {name}: ignored (swarm ignores or swarmctl does not support them): "
              + ", ".join(stack.ignored)])  # fmt: skip
    e = env(ctx)
    ssh_ports = {h.port for h in e.inventory.hosts.values()}
    if dry_run:
        from swarmctl.cli.plan import CHANGES_PLANNED, print_stack_plan

        planned = engine.preview(e.store, stack, prune, ssh_ports)
        print_stack_plan(planned.plan, planned.files)
        if planned.files or not planned.plan.empty:
            raise typer.Exit(CHANGES_PLANNED)
        return
    with e.pool() as pool:
        done, warnings = engine.record(e.store, pool, stack, prune, ssh_ports, resolve)
        warn(warnings)
        for line in done.files:
            typer.echo(line)
        for network in done.networks:
            typer.echo(f"Creating network {network.name}")
        for service in done.removed:
            typer.echo(f"Removing service {service.spec.name}")
        for service in done.created:
            typer.echo(f"Creating service {service.spec.name}")
        for update in done.plan.update:
            typer.echo(f"Updating service {update.spec.name} (id: {update.service.id[:12]})")
        if not (done.files or done.networks or done.removed or done.created or done.plan.update):
            unchanged = len(done.plan.unchanged)
            typer.echo(f"Stack {name}: nothing to change ({unchanged} service(s) unchanged)")
        _converge(e, pool, name, done, detach, quiet)


def _converge(e, pool, name: str, done, detach: bool, quiet: bool, want=None) -> None:
    from swarmctl.models import UpdateState
    from swarmctl.stack import deploy as engine

    names = {s.id: s.spec.name for s in (*done.created, *done.rolling, *done.others)}

    def progress(task) -> None:
        text = task.state.value + (f": {task.error}" if task.error else "")
        typer.echo(f"{names.get(task.service_id, task.service_id[:12])}.{task.slot_key}: {text}")

    warnings, failures = engine.converge(
        e.store,
        pool,
        done,
        None if quiet or detach else progress,
        detach,
        want or UpdateState.COMPLETED,
    )
    warn(warnings)
    if failures:
        raise SwarmctlError(f"stack {name}: " + "; ".join(failures))


@app.command("ls")
def ls(ctx: typer.Context, fmt: FormatOpt = "table") -> None:
    """List stacks."""
    from collections import Counter

    from swarmctl.cli.goformat import render_rows
    from swarmctl.cli.output import table
    from swarmctl.stack.model import NAMESPACE_LABEL
    from swarmctl.state.repo import Repo

    with env(ctx).store.read() as db:
        repo = Repo(db)
        repo.cluster()
        counts = Counter(
            s.spec.labels[NAMESPACE_LABEL]
            for s in repo.services.all()
            if NAMESPACE_LABEL in s.spec.labels
        )
    rows = [{"Name": n, "Services": str(counts[n])} for n in sorted(counts)]
    render_rows(fmt, rows, lambda: table(("NAME", "SERVICES"), [list(r.values()) for r in rows]))


def _members(repo, name: str) -> list:
    from swarmctl.stack.plan import stack_services

    found = stack_services(repo.services.all(), name)
    if not found:
        raise SwarmctlError(f"nothing found in stack: {name}")
    return found


@app.command()
def services(
    ctx: typer.Context, name: Name, fmt: FormatOpt = "table", quiet: QuietOpt = False
) -> None:
    """List the services of a stack, as `service ls` does."""
    from swarmctl.cli.service import print_services
    from swarmctl.state.repo import Repo

    with env(ctx).store.read() as db:
        repo = Repo(db)
        repo.cluster()
        found = _members(repo, name)
        tasks, nodes = repo.tasks.all(), repo.nodes.all()
    print_services(found, tasks, nodes, fmt, quiet)


@app.command()
def ps(
    ctx: typer.Context,
    name: Name,
    no_trunc: Annotated[bool, typer.Option("--no-trunc", help="Full IDs and errors.")] = False,
    fmt: FormatOpt = "table",
    quiet: QuietOpt = False,
) -> None:
    """List the tasks of a stack, as `service ps` does."""
    from swarmctl.cli.taskview import print_tasks
    from swarmctl.state.repo import Repo

    with env(ctx).store.read() as db:
        repo = Repo(db)
        repo.cluster()
        found = {s.id: s for s in _members(repo, name)}
        nodes = {n.id: n for n in repo.nodes.all()}
        tasks = [t for t in repo.tasks.all() if t.service_id in found]
    print_tasks(tasks, found, nodes, no_trunc=no_trunc, quiet=quiet, fmt=fmt)


@app.command()
def rm(
    ctx: typer.Context,
    names: Annotated[list[str], typer.Argument(metavar="STACK…")],
    yes: Annotated[
        bool, typer.Option("--force", "-f", "--yes", help="Do not ask for confirmation.")
    ] = False,
    dry_run: DryRunOpt = False,
) -> None:
    """Remove stacks: their services and every container of them, then their networks,
    secrets and configs (asks first on a terminal)."""
    from swarmctl import convergence
    from swarmctl import services as engine
    from swarmctl.network import networking
    from swarmctl.stack.plan import stack_networks, stack_services
    from swarmctl.state.repo import Repo

    e = env(ctx)
    with e.store.read() as db:
        repo = Repo(db)
        repo.cluster()
        found = {n: stack_services(repo.services.all(), n) for n in names}
        networks = {n: stack_networks(repo.networks.all(), n) for n in names}
        recorded = {d.stack for d in repo.deploys.all()}
    for name in names:
        if not found[name] and not networks[name] and name not in recorded:
            raise SwarmctlError(f"nothing found in stack: {name}")
    if dry_run:  # asks nothing: it removes nothing
        from swarmctl.cli.plan import dry_run as preview

        preview(e.store, lambda repo: _removing(repo, names))
    if not yes:
        if not sys.stdin.isatty():
            raise SwarmctlError(
                "stack rm removes every container of the stack's services: "
                "confirm with --force (or run it on a terminal)"
            )
        if not typer.confirm(f"Remove stack {', '.join(names)} and all of its tasks?"):
            raise SwarmctlError("nothing removed")
    with e.pool() as pool:
        for name in names:
            for service in found[name]:
                typer.echo(f"Removing service {service.spec.name}")
            if found[name]:
                removed = engine.remove(e.store, [s.id for s in found[name]])
                warn(convergence.converge(e.store, pool, {s.id for s in removed}, always_mesh=True))
            for network in networks[name]:
                typer.echo(f"Removing network {network.name}")
                warn(networking.remove(e.store, pool, network.id)[1])
            for line in _forget(e.store, name):
                typer.echo(line)


def _removing(repo, names: list[str]):
    """`stack rm` recorded on a snapshot (`--dry-run`), step by step as it removes."""
    from swarmctl import services as engine
    from swarmctl.cli.plan import Change
    from swarmctl.network import networking
    from swarmctl.stack.plan import stack_networks, stack_services

    notes = []
    for name in names:
        engine.record_remove(repo, [s.id for s in stack_services(repo.services.all(), name)])
        for network in stack_networks(repo.networks.all(), name):
            networking.record_remove(repo, network.id)
        deploys = sum(1 for d in repo.deploys.all() if d.stack == name)
        _, kept = _forget_in(repo, name)
        notes += [f"  {line}" for line in kept]
        if deploys:
            notes.append(f"- deploy history of stack {name} ({deploys} deploy(s))")
    return Change(notes=notes)


def _forget(store, name: str) -> list[str]:
    """Remove the stack's secrets and configs (its services are gone) and its deploys."""
    from swarmctl.state.repo import Repo

    with store.transaction() as db:
        removed, kept = _forget_in(Repo(db), name)
    warn(kept)
    return removed


def _forget_in(repo, name: str) -> tuple[list[str], list[str]]:
    """What _forget does, in the caller's transaction or snapshot: what it removed, and
    what it keeps because a service outside the stack uses it."""
    from swarmctl import secrets
    from swarmctl.stack.model import NAMESPACE_LABEL

    removed, kept = [], []
    services = repo.services.all()
    for kind in secrets.KINDS:
        free = []
        for record in repo.files(kind).all():
            if record.labels.get(NAMESPACE_LABEL) != name:
                continue
            # One a service outside the stack uses stays, said so.
            if using := secrets.users(services, kind, record.name):
                users = ", ".join(sorted(s.spec.name for s in using))
                kept.append(f"{kind} {record.name} is kept: service {users} uses it")
            else:
                free.append(record.id)
        removed += [f"Removing {kind} {r.name}" for r in secrets.remove(repo, kind, free)]
    repo.deploys.delete([d.id for d in repo.deploys.all() if d.stack == name])
    return removed, kept


@app.command()
def history(ctx: typer.Context, name: Name, fmt: FormatOpt = "table") -> None:
    """The stack's recorded deploys, newest last, with each service's spec version
    (`stack rollback --to DEPLOY`, `service rollback --to VERSION`)."""
    from swarmctl import clock
    from swarmctl.cli.goformat import render_rows
    from swarmctl.cli.output import table
    from swarmctl.stack.deploy import deploys
    from swarmctl.state.repo import Repo

    with env(ctx).store.read() as db:
        repo = Repo(db)
        repo.cluster()
        found = deploys(repo, name)
    if not found:
        raise SwarmctlError(f"stack {name}: no deploy recorded")
    rows = [
        {
            "Deploy": str(d.number),
            "Deployed": clock.ago(d.at),
            "Digest": d.digest.removeprefix("sha256:")[:12],
            "Services": " ".join(f"{s}:{v}" for s, v in sorted(d.services.items())),
            "Note": (d.note or " ".join(Path(f).name for f in d.files))
            + (f" (and {d.again} unchanged redeploy(s))" if d.again else ""),
        }
        for d in found
    ]
    headers = ("DEPLOY", "DEPLOYED", "DIGEST", "SERVICES (NAME:VERSION)", "FILES / NOTE")
    render_rows(fmt, rows, lambda: table(headers, [list(r.values()) for r in rows]))


@app.command()
def rollback(
    ctx: typer.Context,
    name: Name,
    to: Annotated[
        int | None, typer.Option("--to", help="A deploy's number (see `stack history`).")
    ] = None,
    detach: Detach = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress.")] = False,
    dry_run: DryRunOpt = False,
) -> None:
    """Return the stack's services to the versions of an earlier deploy (by default the
    latest that differs from now), each with its rollback policy."""
    from swarmctl.models import UpdateState
    from swarmctl.stack import deploy as engine

    e = env(ctx)
    if dry_run:
        from swarmctl.cli.plan import dry_run as preview

        def rolling(repo) -> None:
            warn(engine.record_rollback(repo, name, to)[1])

        preview(e.store, rolling)
    done, warnings = engine.rollback(e.store, name, to)
    warn(warnings)
    for service in done.rolling:
        typer.echo(f"Rolling back service {service.spec.name} (id: {service.id[:12]})")
    if not done.rolling:
        typer.echo(f"stack {name}: its services already run those versions")
    with e.pool() as pool:
        _converge(e, pool, name, done, detach, quiet, UpdateState.ROLLBACK_COMPLETED)
