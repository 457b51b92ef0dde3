"""`swarmctl service create|ls|ps|tasks|inspect|scale|rm`."""

import os
import re
import sys
from typing import Annotated

import typer

from swarmctl.cli.common import FormatOpt, InspectFormatOpt, QuietOpt, new_app
from swarmctl.cli.context import env
from swarmctl.cli.output import warn
from swarmctl.errors import SwarmctlError, cut
from swarmctl.spec import ImageRef

app = new_app("Manage services.")

Detach = Annotated[
    bool, typer.Option("--detach", "-d", help="Exit at once, without waiting for the tasks.")
]


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
        list[str] | None, typer.Option(help="type=bind|volume,source=…,target=…[,readonly]")
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
    detach: Detach = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress.")] = False,
) -> None:
    """Create a service and wait until its tasks run (unless --detach)."""
    from swarmctl import services
    from swarmctl.pinning import resolve_mode
    from swarmctl.spec import build_spec, default_name

    resolve = resolve_mode(resolve_image, no_resolve_image)

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
        workdir=workdir,
        user=user,
        health_cmd=health_cmd,
        health_interval=health_interval,
        health_retries=health_retries,
        health_timeout=health_timeout,
        health_start_period=health_start_period,
        no_healthcheck=no_healthcheck,
    )
    e = env(ctx)
    ssh_ports = {h.port for h in e.inventory.hosts.values()}
    with e.pool() as pool:
        service, warnings = services.create(e.store, pool, spec, ssh_ports, resolve)
        typer.echo(service.id)
        _converge(e, pool, [service.id], detach, quiet, warnings, always_mesh=True)


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
    from swarmctl import services

    show = None if quiet or detach else _progress_line
    warnings += services.converge(
        e.store,
        pool,
        set(service_ids),
        progress=show,
        always_mesh=always_mesh,
        wait_health=not detach,
    )
    warn(warnings)
    report = services.status(e.store, service_ids)
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
    slot = task.slot or task.node_id[:12]
    text = task.state.value
    if task.error:
        text += f": {task.error}"
    typer.echo(f"{slot}: {text}")


@app.command("ls")
def ls(
    ctx: typer.Context,
    fmt: FormatOpt = "table",
    quiet: QuietOpt = False,
) -> None:
    """List services."""
    from swarmctl.cli.goformat import render_rows
    from swarmctl.cli.output import table
    from swarmctl.models import ready_node_ids, replicas
    from swarmctl.repo import Repo

    with env(ctx).store.read() as db:
        repo = Repo(db)
        repo.cluster()
        found = sorted(repo.services.all(), key=lambda s: s.spec.name)
        tasks = repo.tasks.all()
        ready = ready_node_ids(repo.nodes.all())
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
    from swarmctl.repo import Repo

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
    from swarmctl.repo import Repo

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
    with e.pool() as pool:
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
    from swarmctl.repo import Repo

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
    from swarmctl.models import Mode, PublishMode

    spec = service.spec
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
    endpoint_spec = {"Mode": "vip", "Ports": ports}
    vips = [
        {"NetworkID": network_id, "Addr": f"{vip}/{_prefix(network_id, networks)}"}
        for network_id, vip in service.vips.items()
    ]
    ingress = by_name.get("ingress")
    networks_of = [
        {"Target": by_name[n].id, "Aliases": [spec.name]} for n in spec.networks if n in by_name
    ]
    if ingress and any(p.mode == PublishMode.INGRESS for p in spec.ports):
        networks_of.append({"Target": ingress.id})
    return {
        "ID": service.id,
        "Version": {"Index": service.version},
        "CreatedAt": service.created_at,
        "UpdatedAt": service.updated_at,
        "Spec": {
            "Name": spec.name,
            "Labels": spec.labels,
            "TaskTemplate": {
                "ContainerSpec": {
                    "Image": spec.image,
                    "Args": list(spec.args),
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
                    "Dir": spec.workdir,
                    "User": spec.user,
                    **({"Healthcheck": _healthcheck(spec.health)} if spec.health else {}),
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
            "UpdateConfig": {"Parallelism": 1, "FailureAction": "pause", "Order": "stop-first"},
            "Networks": networks_of,
            "EndpointSpec": endpoint_spec,
        },
        "Endpoint": {"Spec": endpoint_spec, "Ports": ports, "VirtualIPs": vips},
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
    spec = service.spec
    names = {n.id: n.name for n in networks}
    lines = [
        f"ID:\t\t{service.id}",
        f"Name:\t\t{spec.name}",
        f"Service Mode:\t{spec.mode.value.capitalize()}",
    ]
    if spec.mode.value == "replicated":
        lines.append(f" Replicas:\t{spec.replicas}")
    if spec.constraints or spec.placement_prefs:
        lines.append("Placement:")
        lines += [f" Constraints:\t{c}" for c in spec.constraints]
        lines += [f" Preferences:\t{p}" for p in spec.placement_prefs]
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
) -> None:
    """Remove services and every one of their containers (asks first on a terminal)."""
    from swarmctl import services
    from swarmctl.repo import Repo

    e = env(ctx)
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
        warn(services.converge(e.store, pool, {s.id for s in removed}, always_mesh=True))
    for service in removed:
        typer.echo(service.spec.name)
