"""`swarmctl service create|update|rollback|ls|ps|tasks|inspect|logs|scale|rm`."""

import os
import re
import sys
from typing import Annotated

import typer

from swarmctl.cli.common import DryRunOpt, FormatOpt, InspectFormatOpt, QuietOpt, new_app
from swarmctl.cli.context import env
from swarmctl.cli.output import warn
from swarmctl.errors import SwarmctlError, cut
from swarmctl.spec import ImageRef

app = new_app("Manage services.")

Detach = Annotated[
    bool, typer.Option("--detach", "-d", help="Exit at once, without waiting for the tasks.")
]
Strings = list[str] | None


def _policy_options(kind: str):
    """The --update-* or --rollback-* options, as one Annotated type per option."""
    return {
        "parallelism": Annotated[
            int | None,
            typer.Option(f"--{kind}-parallelism", help="Tasks at a time (0: all; default 1)."),
        ],
        "delay": Annotated[
            str | None, typer.Option(f"--{kind}-delay", help="Between batches (default 0s).")
        ],
        "monitor": Annotated[
            str | None,
            typer.Option(f"--{kind}-monitor", help="How long a new task is watched (5s)."),
        ],
        "failure_action": Annotated[
            str | None,
            typer.Option(
                f"--{kind}-failure-action",
                help="pause|continue" + ("|rollback" if kind == "update" else "") + " (pause).",
            ),
        ],
        "max_failure_ratio": Annotated[
            str | None,
            typer.Option(f"--{kind}-max-failure-ratio", help="Failures tolerated, 0 to 1 (0)."),
        ],
        "order": Annotated[
            str | None,
            typer.Option(f"--{kind}-order", help="stop-first|start-first (stop-first)."),
        ],
    }


_U = _policy_options("update")
_R = _policy_options("rollback")
UpdateParallelism = _U["parallelism"]
UpdateDelay = _U["delay"]
UpdateMonitor = _U["monitor"]
UpdateFailureAction = _U["failure_action"]
UpdateMaxFailureRatio = _U["max_failure_ratio"]
UpdateOrder = _U["order"]
RollbackParallelism = _R["parallelism"]
RollbackDelay = _R["delay"]
RollbackMonitor = _R["monitor"]
RollbackFailureAction = _R["failure_action"]
RollbackMaxFailureRatio = _R["max_failure_ratio"]
RollbackOrder = _R["order"]


@app.command(context_settings={"allow_interspersed_args": False})
def create(
    ctx: typer.Context,
    image: Annotated[str, typer.Argument(help="The image to run.")],
    args: Annotated[list[str] | None, typer.Argument(help="COMMAND [ARG…]")] = None,
    name: Annotated[str | None, typer.Option(help="Service name (default: the image's).")] = None,
    replicas: Annotated[int | None, typer.Option(help="Number of tasks.")] = None,
    mode: Annotated[str, typer.Option(help="replicated or global.")] = "replicated",
    network: Annotated[list[str] | None, typer.Option(help="Overlay network to attach.")] = None,
    publish: Annotated[
        list[str] | None,
        typer.Option(
            "--publish", "-p", help="[PUBLISHED:]TARGET[/PROTOCOL], or published=…,target=…."
        ),
    ] = None,
    env_: Annotated[list[str] | None, typer.Option("--env", "-e", help="KEY=VALUE.")] = None,
    label: Annotated[list[str] | None, typer.Option(help="Service label key=value.")] = None,
    constraint: Annotated[list[str] | None, typer.Option(help="node.labels.zone==a …")] = None,
    placement_pref: Annotated[list[str] | None, typer.Option(help="spread=node.labels.KEY")] = None,
    replicas_max_per_node: Annotated[int, typer.Option(help="0: no limit.")] = 0,
    reserve_cpu: Annotated[str | None, typer.Option(help="CPUs, e.g. 0.5.")] = None,
    reserve_memory: Annotated[str | None, typer.Option(help="Bytes, e.g. 256M.")] = None,
    limit_cpu: Annotated[str | None, typer.Option()] = None,
    limit_memory: Annotated[str | None, typer.Option()] = None,
    restart_condition: Annotated[str, typer.Option(help="none, on-failure or any.")] = "any",
    restart_delay: Annotated[
        str | None, typer.Option(help="Fixed delay between restarts (default: back off from zero).")
    ] = None,
    restart_max_attempts: Annotated[int, typer.Option(help="0: unlimited.")] = 0,
    restart_window: Annotated[str | None, typer.Option()] = None,
    mount: Annotated[
        list[str] | None,
        typer.Option(help="type=bind|volume|tmpfs,source=…,target=…[,readonly], as docker's."),
    ] = None,
    secret: Annotated[
        list[str] | None,
        typer.Option(help="NAME or source=NAME,target=…,uid=…,gid=…,mode=0400: /run/secrets/…"),
    ] = None,
    config: Annotated[
        list[str] | None,
        typer.Option(help="NAME or source=NAME,target=/PATH,uid=…,gid=…,mode=0444."),
    ] = None,
    workdir: Annotated[str, typer.Option("--workdir", "-w")] = "",
    user: Annotated[str, typer.Option("--user", "-u")] = "",
    health_cmd: Annotated[str | None, typer.Option(help="Command that checks health.")] = None,
    health_interval: Annotated[
        str | None, typer.Option(help="Time between checks, e.g. 30s.")
    ] = None,
    health_retries: Annotated[
        int | None,
        typer.Option(help="Failures in a row that make a task unhealthy (and replaced)."),
    ] = None,
    health_timeout: Annotated[str | None, typer.Option(help="Longest a check may run.")] = None,
    health_start_period: Annotated[
        str | None, typer.Option(help="Failures in this time after start do not count.")
    ] = None,
    no_healthcheck: Annotated[
        bool, typer.Option("--no-healthcheck", help="Not even the image's HEALTHCHECK.")
    ] = False,
    stop_grace_period: Annotated[
        str | None,
        typer.Option(help="Time a task has to stop before it is killed.  [default: 10s]"),
    ] = None,
    stop_signal: Annotated[
        str, typer.Option(help="Signal that stops a task (default: the image's, or SIGTERM).")
    ] = "",
    resolve_image: Annotated[
        str,
        typer.Option(
            help="Pin the image to its registry digest: always, changed or never "
            "(a registry that cannot be reached leaves the tag, with a warning)."
        ),
    ] = "always",
    no_resolve_image: Annotated[
        bool, typer.Option("--no-resolve-image", help="Keep the tag: --resolve-image never.")
    ] = False,
    update_parallelism: UpdateParallelism = None,
    update_delay: UpdateDelay = None,
    update_monitor: UpdateMonitor = None,
    update_failure_action: UpdateFailureAction = None,
    update_max_failure_ratio: UpdateMaxFailureRatio = None,
    update_order: UpdateOrder = None,
    rollback_parallelism: RollbackParallelism = None,
    rollback_delay: RollbackDelay = None,
    rollback_monitor: RollbackMonitor = None,
    rollback_failure_action: RollbackFailureAction = None,
    rollback_max_failure_ratio: RollbackMaxFailureRatio = None,
    rollback_order: RollbackOrder = None,
    detach: Detach = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress.")] = False,
    dry_run: DryRunOpt = False,
) -> None:
    """Create a service and wait until its tasks run (unless --detach)."""
    from swarmctl import services
    from swarmctl.pinning import resolve_mode
    from swarmctl.spec import PolicyOptions, build_spec, default_name

    resolve = resolve_mode(resolve_image, no_resolve_image)
    given = locals()

    spec = build_spec(
        name=default_name(image) if name is None else name,
        image=image,
        args=args or [],
        replicas=replicas,
        mode=mode,
        networks=network or [],
        publish=publish or [],
        env=env_ or [],
        labels=label or [],
        constraints=constraint or [],
        placement_prefs=placement_pref or [],
        replicas_max_per_node=replicas_max_per_node,
        reserve_cpu=reserve_cpu,
        reserve_memory=reserve_memory,
        limit_cpu=limit_cpu,
        limit_memory=limit_memory,
        restart_condition=restart_condition,
        restart_delay=restart_delay,
        restart_max_attempts=restart_max_attempts,
        restart_window=restart_window,
        mounts=mount or [],
        secrets=secret or [],
        configs=config or [],
        workdir=workdir,
        user=user,
        health_cmd=health_cmd,
        health_interval=health_interval,
        health_retries=health_retries,
        health_timeout=health_timeout,
        health_start_period=health_start_period,
        no_healthcheck=no_healthcheck,
        stop_grace_period=stop_grace_period,
        stop_signal=stop_signal,
        update=_policy(PolicyOptions, given, "update"),
        rollback=_policy(PolicyOptions, given, "rollback"),
    )
    e = env(ctx)
    ssh_ports = {h.port for h in e.inventory.hosts.values()}
    if dry_run:
        from swarmctl.cli.plan import dry_run as preview

        preview(e.store, lambda repo: services.record_create(repo, spec, ssh_ports))
    with e.pool() as pool:
        service, warnings = services.create(e.store, pool, spec, ssh_ports, resolve)
        typer.echo(service.id)
        _converge(e, pool, [service.id], detach, quiet, warnings, always_mesh=True)


def _policy(options_type, given: dict, kind: str):
    """The `--{kind}-*` options among a command's arguments, as spec.PolicyOptions."""
    return options_type(**{name: given[f"{kind}_{name}"] for name in _U})


@app.command(context_settings={"allow_interspersed_args": True})
def update(
    ctx: typer.Context,
    service: Annotated[str, typer.Argument(metavar="SERVICE")],
    image: Annotated[str | None, typer.Option(help="The new image.")] = None,
    args: Annotated[str | None, typer.Option(help="The command's arguments (one string).")] = None,
    replicas: Annotated[int | None, typer.Option(help="Number of tasks.")] = None,
    env_add: Annotated[Strings, typer.Option(help="KEY=VALUE to add or change.")] = None,
    env_rm: Annotated[Strings, typer.Option(help="KEY to remove.")] = None,
    label_add: Annotated[Strings, typer.Option(help="Service label key=value.")] = None,
    label_rm: Annotated[Strings, typer.Option(help="Service label key to remove.")] = None,
    publish_add: Annotated[Strings, typer.Option(help="A port, as --publish.")] = None,
    publish_rm: Annotated[Strings, typer.Option(help="TARGET[/PROTOCOL] to unpublish.")] = None,
    constraint_add: Annotated[Strings, typer.Option(help="node.labels.zone==a …")] = None,
    constraint_rm: Annotated[Strings, typer.Option(help="A constraint to remove.")] = None,
    mount_add: Annotated[Strings, typer.Option(help="A mount, as --mount.")] = None,
    mount_rm: Annotated[Strings, typer.Option(help="A mount's target to remove.")] = None,
    secret_add: Annotated[Strings, typer.Option(help="A secret, as --secret.")] = None,
    secret_rm: Annotated[Strings, typer.Option(help="A secret's name to remove.")] = None,
    config_add: Annotated[Strings, typer.Option(help="A config, as --config.")] = None,
    config_rm: Annotated[Strings, typer.Option(help="A config's name to remove.")] = None,
    network_add: Annotated[Strings, typer.Option(help="An overlay network to attach.")] = None,
    network_rm: Annotated[Strings, typer.Option(help="A network to detach.")] = None,
    reserve_cpu: Annotated[str | None, typer.Option()] = None,
    reserve_memory: Annotated[str | None, typer.Option()] = None,
    limit_cpu: Annotated[str | None, typer.Option()] = None,
    limit_memory: Annotated[str | None, typer.Option()] = None,
    restart_condition: Annotated[str | None, typer.Option(help="none, on-failure or any.")] = None,
    restart_delay: Annotated[str | None, typer.Option()] = None,
    restart_max_attempts: Annotated[int | None, typer.Option()] = None,
    restart_window: Annotated[str | None, typer.Option()] = None,
    health_cmd: Annotated[str | None, typer.Option()] = None,
    health_interval: Annotated[str | None, typer.Option()] = None,
    health_retries: Annotated[int | None, typer.Option()] = None,
    health_timeout: Annotated[str | None, typer.Option()] = None,
    health_start_period: Annotated[str | None, typer.Option()] = None,
    no_healthcheck: Annotated[bool, typer.Option("--no-healthcheck")] = False,
    stop_grace_period: Annotated[str | None, typer.Option()] = None,
    stop_signal: Annotated[str | None, typer.Option()] = None,
    resolve_image: Annotated[
        str, typer.Option(help="Pin a new image to its digest: always, changed or never.")
    ] = "always",
    no_resolve_image: Annotated[bool, typer.Option("--no-resolve-image")] = False,
    update_parallelism: UpdateParallelism = None,
    update_delay: UpdateDelay = None,
    update_monitor: UpdateMonitor = None,
    update_failure_action: UpdateFailureAction = None,
    update_max_failure_ratio: UpdateMaxFailureRatio = None,
    update_order: UpdateOrder = None,
    rollback_parallelism: RollbackParallelism = None,
    rollback_delay: RollbackDelay = None,
    rollback_monitor: RollbackMonitor = None,
    rollback_failure_action: RollbackFailureAction = None,
    rollback_max_failure_ratio: RollbackMaxFailureRatio = None,
    rollback_order: RollbackOrder = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace every task, even with nothing changed.")
    ] = False,
    rollback_: Annotated[
        bool, typer.Option("--rollback", help="Roll back to the previous spec.")
    ] = False,
    detach: Detach = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress.")] = False,
    dry_run: DryRunOpt = False,
) -> None:
    """Change a service; a rolling update replaces its tasks batch by batch (exits
    non-zero when the update paused or rolled back)."""
    given = dict(locals())
    import shlex

    from swarmctl import services
    from swarmctl.pinning import resolve_mode
    from swarmctl.spec import Changes, PolicyOptions

    resolve = resolve_mode(resolve_image, no_resolve_image)
    e = env(ctx)
    if rollback_:
        changed = {
            k: v for k, v in given.items() if k not in _NOT_CHANGES and v not in (None, [], False)
        }
        if changed:
            raise SwarmctlError(
                f"--rollback cannot be given with --{next(iter(changed)).replace('_', '-')}"
            )
        _rollback(e, service, detach, quiet, dry_run=dry_run)
        return
    try:
        split_args = None if args is None else shlex.split(args)
    except ValueError as error:
        raise SwarmctlError(f"--args {cut(args)!r}: {error}") from None
    changes = Changes(
        image=image,
        args=split_args,
        replicas=replicas,
        env_add=env_add or (),
        env_rm=env_rm or (),
        label_add=label_add or (),
        label_rm=label_rm or (),
        publish_add=publish_add or (),
        publish_rm=publish_rm or (),
        constraint_add=constraint_add or (),
        constraint_rm=constraint_rm or (),
        mount_add=mount_add or (),
        mount_rm=mount_rm or (),
        secret_add=secret_add or (),
        secret_rm=secret_rm or (),
        config_add=config_add or (),
        config_rm=config_rm or (),
        network_add=network_add or (),
        network_rm=network_rm or (),
        reserve_cpu=reserve_cpu,
        reserve_memory=reserve_memory,
        limit_cpu=limit_cpu,
        limit_memory=limit_memory,
        restart_condition=restart_condition,
        restart_delay=restart_delay,
        restart_max_attempts=restart_max_attempts,
        restart_window=restart_window,
        health_cmd=health_cmd,
        health_interval=health_interval,
        health_retries=health_retries,
        health_timeout=health_timeout,
        health_start_period=health_start_period,
        no_healthcheck=no_healthcheck,
        stop_grace_period=stop_grace_period,
        stop_signal=stop_signal,
        update=_policy(PolicyOptions, given, "update"),
        rollback=_policy(PolicyOptions, given, "rollback"),
    )
    ssh_ports = {h.port for h in e.inventory.hosts.values()}
    if dry_run:
        from swarmctl.cli.plan import Change
        from swarmctl.cli.plan import dry_run as preview
        from swarmctl.spec import updated_spec

        def change(repo) -> Change:
            before = repo.services.get(service)
            spec = updated_spec(before.spec, changes)
            changed = services.record_update(repo, before, spec, ssh_ports, force)[0]
            return Change({changed.id})

        preview(e.store, change)
    with e.pool() as pool:
        found, kind, warnings = services.update_service(
            e.store, pool, service, changes, ssh_ports, resolve, force
        )
        name = found.spec.name
        if kind == services.Kind.NOTHING:
            warn(warnings)
            typer.echo(f"{name}: nothing changed, no task replaced")
            return
        if kind == services.Kind.SCALED:
            typer.echo(f"{name} scaled to {found.spec.replicas}")
            _converge(e, pool, [found.id], detach, quiet, warnings)
            return
        typer.echo(name)
        warn(warnings)
        if detach:
            return
        _roll(e, pool, found, quiet, want="completed")


_NOT_CHANGES = {"ctx", "service", "rollback_", "detach", "quiet", "resolve_image", "dry_run"}


@app.command()
def rollback(
    ctx: typer.Context,
    service: Annotated[str, typer.Argument(metavar="SERVICE")],
    to: Annotated[
        int | None,
        typer.Option("--to", help="A version the service keeps (see `service history`)."),
    ] = None,
    detach: Detach = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress.")] = False,
    dry_run: DryRunOpt = False,
) -> None:
    """Return a service to its previous spec, or to a kept version, with its rollback
    policy."""
    _rollback(env(ctx), service, detach, quiet, to, dry_run)


def _rollback(
    e, ref: str, detach: bool, quiet: bool, to: int | None = None, dry_run: bool = False
) -> None:
    from swarmctl import services

    if dry_run:
        from swarmctl.cli.plan import Change
        from swarmctl.cli.plan import dry_run as preview

        preview(
            e.store,
            lambda repo: Change({services.record_rollback(repo, repo.services.get(ref), to).id}),
        )
    found = services.rollback(e.store, ref, to)
    typer.echo(found.spec.name)
    if detach:
        return
    with e.pool() as pool:
        _roll(e, pool, found, quiet, want="rollback_completed")


def _roll(e, pool, found, quiet: bool, want: str) -> None:
    """Carry the update on with per-slot progress; exit non-zero unless it ended `want`
    (an update rolled back after a failure ends rollback_completed: it failed)."""
    from swarmctl import convergence, rolling

    progress = None if quiet else _roll_progress(e, found)
    try:
        waiting = progress.waited_on if progress else None
        status, warnings = rolling.roll(e.store, pool, found.id, progress, waiting)
    finally:
        if progress:
            progress.close()
    warn(warnings)
    state = status.state.value if status else "gone"
    message = status.message if status else "the service was removed"
    if state != want:
        raise SwarmctlError(f"service {found.spec.name}: {state.replace('_', ' ')}: {message}")
    # With --update-failure-action continue an update completes over failed tasks: it is
    # done, but the service is not serving as asked, and a script must hear of it.
    (report,) = convergence.status(e.store, [found.id]) or [None]
    if report is not None and not report.converged:
        details = "; ".join(report.problems) or "tasks are not running"
        raise SwarmctlError(
            f"service {found.spec.name}: {message}, but it did not converge "
            f"({report.running} of {report.desired} tasks running): {details}"
        )
    if progress and progress.live:
        typer.echo("verify: Service converged")
    elif progress:
        typer.echo(f"verify: {message}")


def _roll_progress(e, found):
    """Swarm's progress bars on a terminal, a line per slot that runs or fails elsewhere."""
    import sys

    from rich.console import Console

    from swarmctl.cli.progress import RollProgress
    from swarmctl.state.repo import Repo

    with e.store.read() as db:
        tasks = [t for t in Repo(db).tasks.all() if t.service_id == found.id]
    return RollProgress(found, tasks, Console() if sys.stdout.isatty() else None)


def _converge(
    e,
    pool,
    service_ids: list[str],
    detach: bool,
    quiet: bool,
    warnings: list[str],
    always_mesh: bool = False,
) -> None:
    """Converge the services; report per slot; exit non-zero when they did not converge."""
    from swarmctl import convergence

    show = None if quiet or detach else _progress_line
    warnings += convergence.converge(
        e.store,
        pool,
        set(service_ids),
        progress=show,
        always_mesh=always_mesh,
        wait_health=not detach,
    )
    warn(warnings)
    report = convergence.status(e.store, service_ids)
    if not quiet and not detach:
        for item in report:
            typer.echo(f"overall progress: {item.running} out of {item.desired} tasks")
            typer.echo(
                "verify: Service converged"
                if item.converged
                else "verify: Service did not converge"
            )
    failed = [r for r in report if not r.converged]
    if failed and not detach:
        details = "; ".join(p for r in failed for p in r.problems) or "tasks are not running"
        raise SwarmctlError(
            ", ".join(
                f"service {r.service.spec.name} did not converge "
                f"({r.running} of {r.desired} tasks running)"
                for r in failed
            )
            + f": {details}"
        )


def _progress_line(task) -> None:
    from swarmctl.cli.progress import plain_line

    typer.echo(plain_line(task))


@app.command("ls")
def ls(
    ctx: typer.Context,
    fmt: FormatOpt = "table",
    quiet: QuietOpt = False,
) -> None:
    """List services."""
    from swarmctl.state.repo import Repo

    with env(ctx).store.read() as db:
        repo = Repo(db)
        repo.cluster()
        found, tasks, nodes = repo.services.all(), repo.tasks.all(), repo.nodes.all()
    print_services(found, tasks, nodes, fmt, quiet)


def print_services(found, tasks, nodes, fmt: str, quiet: bool) -> None:
    """The services as `service ls` shows them (`stack services` too)."""
    from swarmctl.cli.goformat import render_rows
    from swarmctl.cli.output import table
    from swarmctl.models import ready_node_ids, replicas

    found = sorted(found, key=lambda s: s.spec.name)
    ready = ready_node_ids(nodes)
    if quiet:
        for service in found:
            typer.echo(service.id)
        return
    rows = []
    for s in found:
        running, desired = replicas(s, tasks, ready)
        rows.append(
            {
                "ID": s.id[:12],
                "Name": s.spec.name,
                "Mode": s.spec.mode.value,
                "Replicas": f"{running}/{desired}",
                "Image": ImageRef.parse(s.spec.image).brief(),
                "Ports": ports_text(s),
            }
        )
    render_rows(
        fmt,
        rows,
        lambda: table(
            ("ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"), [list(r.values()) for r in rows]
        ),
    )


def ports_text(service) -> str:
    parts = []
    for port in service.spec.ports:
        published = service.published.get(f"{port.target}/{port.protocol}", port.published)
        where = f"*:{published}->" if published else ""
        host = " (host)" if port.mode.value == "host" else ""
        parts.append(f"{where}{port.target}/{port.protocol}{host}")
    return ", ".join(parts)


@app.command()
def history(
    ctx: typer.Context,
    service: Annotated[str, typer.Argument(metavar="SERVICE")],
    fmt: FormatOpt = "table",
) -> None:
    """The specs a service keeps (its last 10), oldest first, each with what it changed:
    `service rollback --to VERSION` returns to one."""
    from swarmctl import clock
    from swarmctl.cli.goformat import render_rows
    from swarmctl.cli.output import table
    from swarmctl.models import SpecVersion
    from swarmctl.stack.plan import diff
    from swarmctl.state.repo import Repo

    with env(ctx).store.read() as db:
        found = Repo(db).services.get(service)
    kept = [*found.history, SpecVersion(found.version, found.spec, found.updated_at)]
    rows = []
    for index, entry in enumerate(kept):
        changes = diff(kept[index - 1].spec, entry.spec) if index else ["(oldest kept)"]
        rows.append(
            {
                "Version": str(entry.version) + (" (current)" if entry is kept[-1] else ""),
                "Since": clock.ago(entry.since),
                "Image": ImageRef.parse(entry.spec.image).brief(),
                "Changes": "; ".join(changes) or "(none)",
            }
        )
    render_rows(
        fmt,
        rows,
        lambda: table(("VERSION", "SINCE", "IMAGE", "CHANGES"), [list(r.values()) for r in rows]),
    )


@app.command()
def ps(
    ctx: typer.Context,
    services_: Annotated[list[str], typer.Argument(metavar="SERVICE…", help="Services.")],
    no_trunc: Annotated[bool, typer.Option("--no-trunc", help="Full IDs and errors.")] = False,
    filter_: Annotated[
        list[str] | None,
        typer.Option("--filter", "-f", help="desired-state=running|shutdown|accepted, node=…"),
    ] = None,
    fmt: FormatOpt = "table",
    quiet: QuietOpt = False,
) -> None:
    """List the tasks of services (alias: tasks)."""
    from swarmctl.cli.taskview import print_tasks
    from swarmctl.state.repo import Repo

    with env(ctx).store.read() as db:
        repo = Repo(db)
        wanted = [repo.services.get(ref) for ref in services_]
        nodes = {n.id: n for n in repo.nodes.all()}
        tasks = [t for t in repo.tasks.all() if t.service_id in {s.id for s in wanted}]
    tasks = _filter(tasks, filter_ or [], nodes)
    print_tasks(tasks, {s.id: s for s in wanted}, nodes, no_trunc=no_trunc, quiet=quiet, fmt=fmt)


def _filter(tasks, filters: list[str], nodes) -> list:
    from swarmctl.models import TaskState

    for item in filters:
        key, _, value = item.partition("=")
        if key == "desired-state":
            if value not in ("running", "shutdown", "accepted"):
                raise SwarmctlError(
                    f"--filter {item!r}: desired-state is running, shutdown or accepted"
                )
            wanted = {
                "running": {TaskState.RUNNING},
                "shutdown": {TaskState.SHUTDOWN},
                "accepted": {TaskState.ACCEPTED, TaskState.RUNNING},
            }[value]
            tasks = [t for t in tasks if t.desired_state in wanted]
        elif key == "node":
            tasks = [
                t
                for t in tasks
                if value in (t.node_id, getattr(nodes.get(t.node_id), "hostname", None))
            ]
        else:
            raise SwarmctlError(f"--filter {item!r}: use desired-state=… or node=…")
    return tasks


app.command("tasks", help="List the tasks of services (alias of ps).")(ps)


@app.command()
def logs(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(metavar="SERVICE|TASK")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Follow, tasks started later too.")
    ] = False,
    tail: Annotated[str, typer.Option(help="Lines from the end of each task's log.")] = "all",
    since: Annotated[
        str | None, typer.Option(help="Since a date, a UNIX time or a duration (42m).")
    ] = None,
    timestamps: Annotated[bool, typer.Option("--timestamps", "-t", help="Show times.")] = False,
    raw: Annotated[bool, typer.Option("--raw", help="No task and node before each line.")] = False,
    no_task_ids: Annotated[bool, typer.Option("--no-task-ids", help="No task IDs.")] = False,
    no_trunc: Annotated[bool, typer.Option("--no-trunc", help="Full task IDs.")] = False,
) -> None:
    """Show the logs of a service's tasks, on every node, or of one task."""
    from swarmctl import logs as service_logs
    from swarmctl.state.repo import Repo

    options = service_logs.Options(
        follow=follow,
        tail=service_logs.check_tail(tail),
        since=since and service_logs.check_since(since),
        timestamps=timestamps,
        raw=raw,
        task_ids=not no_task_ids,
        no_trunc=no_trunc,
    )
    e = env(ctx)

    def current() -> list | None:
        with e.store.read() as db:
            repo = Repo(db)
            service = repo.services.find(target)
            task = None if service else repo.tasks.find(target)
            if task:
                service = repo.services.find(task.service_id)
            if service is None:
                return None
            nodes = {n.id: n for n in repo.nodes.all()}
            tasks = [task] if task else repo.tasks.all()
        return service_logs.sources(service, tasks, nodes, options)

    found = current()
    if found is None:
        raise SwarmctlError(f"no such service or task: {cut(target)!r}")
    printer = service_logs.Printer(options)
    # A follow goes on for as long as the user likes: a node back meanwhile is read again.
    with e.pool(retry_unreachable=follow) as pool:
        if not follow:
            failed = service_logs.read(pool, found, options, printer)
            if failed:
                raise SwarmctlError(f"the logs of {failed} task(s) could not be read")
            return
        try:
            service_logs.Follower(pool, options, printer, current).run()
        except KeyboardInterrupt:
            sys.stdout.flush()
            os._exit(130)  # Ctrl-C is how a follow ends: no message, no wait for streams


@app.command()
def inspect(
    ctx: typer.Context,
    services_: Annotated[list[str], typer.Argument(metavar="SERVICE…")],
    pretty: Annotated[bool, typer.Option(help="Human-readable.")] = False,
    fmt: InspectFormatOpt = None,
) -> None:
    """Show services in detail (JSON shaped like swarm's, a --format template, or --pretty)."""
    from swarmctl.cli.goformat import render_documents
    from swarmctl.state.repo import Repo

    with env(ctx).store.read() as db:
        repo = Repo(db)
        found = [repo.services.get(ref) for ref in services_]
        networks = repo.networks.all()
    if not pretty:
        render_documents(fmt, [inspect_json(s, networks) for s in found])
        return
    for index, service in enumerate(found):
        if index:
            typer.echo("")
        _pretty(service, networks)


def inspect_json(service, networks) -> dict:
    document = {
        "ID": service.id,
        "Version": {"Index": service.version},
        "CreatedAt": service.created_at,
        "UpdatedAt": service.updated_at,
        "Spec": _spec_json(service, service.spec, networks),
    }
    if service.previous_spec is not None:
        document["PreviousSpec"] = _spec_json(service, service.previous_spec, networks)
    endpoint_spec = document["Spec"]["EndpointSpec"]
    vips = [
        {"NetworkID": network_id, "Addr": f"{vip}/{_prefix(network_id, networks)}"}
        for network_id, vip in service.vips.items()
    ]
    document["Endpoint"] = {
        "Spec": endpoint_spec,
        "Ports": endpoint_spec["Ports"],
        "VirtualIPs": vips,
    }
    status = service.update_status
    if status is not None:
        document["UpdateStatus"] = {
            "State": status.state.value,
            "StartedAt": status.started_at,
            **({"CompletedAt": status.completed_at} if status.completed_at else {}),
            "Message": status.message,
        }
    return document


def _policy_json(policy) -> dict:
    nanos = 10**9
    return {
        "Parallelism": policy.parallelism,
        **({"Delay": int(policy.delay * nanos)} if policy.delay else {}),
        "FailureAction": policy.failure_action.value,
        "Monitor": int(policy.monitor * nanos),
        "MaxFailureRatio": policy.max_failure_ratio,
        "Order": policy.order.value,
    }


def _spec_json(service, spec, networks) -> dict:
    from swarmctl.models import Mode, PublishMode

    by_name = {n.name: n for n in networks}
    nanos = 10**9
    ports = [
        {
            "Protocol": p.protocol,
            "TargetPort": p.target,
            "PublishedPort": service.published.get(f"{p.target}/{p.protocol}", p.published),
            "PublishMode": p.mode.value,
        }
        for p in spec.ports
    ]
    ingress = by_name.get("ingress")
    networks_of = [
        {"Target": by_name[n].id, "Aliases": [spec.name, *spec.network_aliases.get(n, ())]}
        for n in spec.networks
        if n in by_name
    ]
    if ingress and any(p.mode == PublishMode.INGRESS for p in spec.ports):
        networks_of.append({"Target": ingress.id})
    return {
        "Name": spec.name,
        "Labels": spec.labels,
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": spec.image,
                **({"Labels": spec.container_labels} if spec.container_labels else {}),
                **({"Command": list(spec.command)} if spec.command else {}),
                "Args": list(spec.args),
                **({"Hostname": spec.hostname} if spec.hostname else {}),
                "Env": list(spec.env),
                "Mounts": [
                    {
                        "Type": m.type,
                        "Source": m.source,
                        "Target": m.target,
                        "ReadOnly": m.readonly,
                    }
                    for m in spec.mounts
                ],
                "Secrets": [_file_json(r, "/run/secrets", "Secret") for r in spec.secrets],
                "Configs": [_file_json(r, "/", "Config") for r in spec.configs],
                "Dir": spec.workdir,
                "User": spec.user,
                **({"Healthcheck": _healthcheck(spec.health)} if spec.health else {}),
                "StopGracePeriod": int(spec.stop_grace_period * 1e9),
                **({"StopSignal": spec.stop_signal} if spec.stop_signal else {}),
            },
            "Resources": {
                "Limits": {
                    "NanoCPUs": spec.limits.nano_cpus,
                    "MemoryBytes": spec.limits.memory_bytes,
                },
                "Reservations": {
                    "NanoCPUs": spec.reservations.nano_cpus,
                    "MemoryBytes": spec.reservations.memory_bytes,
                },
            },
            "RestartPolicy": {
                "Condition": spec.restart.condition.value,
                "Delay": int((spec.restart.delay or 0) * nanos),
                "MaxAttempts": spec.restart.max_attempts,
                "Window": int(spec.restart.window * nanos),
            },
            "Placement": {
                "Constraints": list(spec.constraints),
                "Preferences": [
                    {"Spread": {"SpreadDescriptor": p.split("=", 1)[1]}}
                    for p in spec.placement_prefs
                ],
                "MaxReplicas": spec.max_replicas_per_node,
            },
        },
        "Mode": (
            {"Replicated": {"Replicas": spec.replicas}}
            if spec.mode == Mode.REPLICATED
            else {"Global": {}}
        ),
        "UpdateConfig": _policy_json(spec.update),
        "RollbackConfig": _policy_json(spec.rollback),
        "Networks": networks_of,
        "EndpointSpec": {"Mode": "vip", "Ports": ports},
    }


def _file_json(ref, base: str, kind: str) -> dict:
    """A secret or config reference as docker shows it: the file, never the value."""
    import posixpath

    return {
        "File": {
            "Name": posixpath.join(base, ref.target),
            "UID": ref.uid,
            "GID": ref.gid,
            "Mode": ref.mode,
        },
        f"{kind}Name": ref.source,
    }


def _healthcheck(health) -> dict:
    """As swarm shows it: the test, then only the values given."""
    if health.disabled:
        return {"Test": ["NONE"]}
    shown: dict = {"Test": ["CMD-SHELL", health.command]} if health.command else {}
    for key, seconds in (
        ("Interval", health.interval),
        ("Timeout", health.timeout),
        ("StartPeriod", health.start_period),
    ):
        if seconds is not None:
            shown[key] = int(seconds * 1e9)
    if health.retries is not None:
        shown["Retries"] = health.retries
    return shown


def _prefix(network_id: str, networks) -> int:
    for network in networks:
        if network.id == network_id:
            return int(network.subnet.split("/")[1])
    return 32


def _pretty(service, networks) -> None:
    from swarmctl import clock

    spec = service.spec
    names = {n.id: n.name for n in networks}
    lines = [
        f"ID:\t\t{service.id}",
        f"Name:\t\t{spec.name}",
        f"Service Mode:\t{spec.mode.value.capitalize()}",
    ]
    if spec.mode.value == "replicated":
        lines.append(f" Replicas:\t{spec.replicas}")
    status = service.update_status
    if status is not None:
        lines += [
            "UpdateStatus:",
            f" State:\t\t{status.state.value}",
            f" Started:\t{clock.ago(status.started_at)}",
            *([f" Completed:\t{clock.ago(status.completed_at)}"] if status.completed_at else []),
            f" Message:\t{status.message}",
        ]
    if spec.constraints or spec.placement_prefs:
        lines.append("Placement:")
        lines += [f" Constraints:\t{c}" for c in spec.constraints]
        lines += [f" Preferences:\t{p}" for p in spec.placement_prefs]
    for title, policy in (("UpdateConfig", spec.update), ("RollbackConfig", spec.rollback)):
        lines += [
            f"{title}:",
            f" Parallelism:\t{policy.parallelism}",
            *([f" Delay:\t\t{policy.delay:g}s"] if policy.delay else []),
            f" On failure:\t{policy.failure_action.value}",
            f" Monitoring Period: {policy.monitor:g}s",
            f" Max failure ratio: {policy.max_failure_ratio:g}",
            f" Update order:      {policy.order.value}",
        ]
    condition = spec.restart.condition.value
    delay = f"{spec.restart.delay:g}s" if spec.restart.delay is not None else "back-off"
    lines += [
        "RestartPolicy:",
        f" Condition:\t{condition}",
        f" Delay:\t\t{delay}",
        f" MaxAttempts:\t{spec.restart.max_attempts}",
        "ContainerSpec:",
        f" Image:\t\t{spec.image}",
    ]
    if spec.args:
        lines.append(f" Args:\t\t{' '.join(spec.args)}")
    if spec.env:
        lines.append(f" Env:\t\t{' '.join(spec.env)}")
    for title, refs in ((" Secrets:", spec.secrets), (" Configs:", spec.configs)):
        if refs:
            lines.append(title)
            for ref in refs:
                lines += [f"  Target:\t{ref.target}", f"   Source:\t{ref.source}"]
    if spec.mounts:
        lines.append("Mounts:")
        for mount in spec.mounts:
            lines += [
                f" Target:\t{mount.target}",
                f"  Source:\t{mount.source}",
                f"  ReadOnly:\t{str(mount.readonly).lower()}",
                f"  Type:\t\t{mount.type}",
            ]
    if spec.networks:
        lines.append(f"Networks:\t{' '.join(spec.networks)}")
    if service.vips:
        lines += [f" VirtualIP:\t{vip} ({names.get(n, n)})" for n, vip in service.vips.items()]
    if spec.ports:
        lines.append("Ports:")
        lines += [f" {part}" for part in ports_text(service).split(", ")]
    typer.echo("\n".join(lines).expandtabs(8))


@app.command()
def scale(
    ctx: typer.Context,
    pairs: Annotated[list[str], typer.Argument(metavar="SERVICE=REPLICAS…")],
    detach: Detach = False,
    dry_run: DryRunOpt = False,
) -> None:
    """Change the number of tasks of replicated services."""
    from swarmctl import services
    from swarmctl.spec import MAX_REPLICAS

    targets = {}
    for pair in pairs:
        name, sep, count = pair.partition("=")
        if not sep or not re.fullmatch(r"-?[0-9]+", count):
            raise SwarmctlError(f"{cut(pair)!r}: expected SERVICE=REPLICAS, e.g. nginx=5")
        # Digits past the limit's are refused unread: int() of thousands of digits is slow.
        if len(count.lstrip("-")) > len(str(MAX_REPLICAS)):
            raise SwarmctlError(
                f"{cut(pair)!r}: more than the limit of {MAX_REPLICAS} replicas per service"
            )
        targets[name] = int(count)
    e = env(ctx)
    if dry_run:
        from swarmctl.cli.plan import Change
        from swarmctl.cli.plan import dry_run as preview

        preview(e.store, lambda repo: Change({s.id for s in services.record_scale(repo, targets)}))
    changed = services.scale(e.store, targets)
    for service in changed:
        typer.echo(f"{service.spec.name} scaled to {service.spec.replicas}")
    with e.pool() as pool:
        _converge(e, pool, [s.id for s in changed], detach, quiet=False, warnings=[])


@app.command()
def rm(
    ctx: typer.Context,
    services_: Annotated[list[str], typer.Argument(metavar="SERVICE…")],
    yes: Annotated[
        bool, typer.Option("--yes", "-f", "--force", help="Do not ask for confirmation.")
    ] = False,
    dry_run: DryRunOpt = False,
) -> None:
    """Remove services and every one of their containers (asks first on a terminal)."""
    from swarmctl import convergence, services
    from swarmctl.state.repo import Repo

    e = env(ctx)
    if dry_run:  # asks nothing: it removes nothing
        from swarmctl.cli.plan import dry_run as preview

        preview(e.store, lambda repo: services.record_remove(repo, services_))
    with e.store.read() as db:
        found = [Repo(db).services.get(ref) for ref in services_]
    if not yes:
        if not sys.stdin.isatty():
            raise SwarmctlError(
                "service rm removes every container of the service: "
                "confirm with --yes (or run it on a terminal)"
            )
        names = ", ".join(s.spec.name for s in found)
        if not typer.confirm(f"Remove {names} and all of their tasks?", default=False):
            raise SwarmctlError("nothing removed")
    removed = services.remove(e.store, [s.id for s in found])
    with e.pool() as pool:
        warn(convergence.converge(e.store, pool, {s.id for s in removed}, always_mesh=True))
    for service in removed:
        typer.echo(service.spec.name)
