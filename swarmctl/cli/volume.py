"""`swarmctl volume ls|inspect|create|rm`: the cluster's volumes on every node."""

import sys
from typing import Annotated

import typer

from swarmctl.cli.common import FormatOpt, InspectFormatOpt, QuietOpt, new_app
from swarmctl.cli.context import env
from swarmctl.cli.output import warn
from swarmctl.errors import SwarmctlError

app = new_app("Manage volumes on the nodes.")

VolumeArg = Annotated[str, typer.Argument(help="Volume name.")]
NodeOpt = Annotated[list[str] | None, typer.Option("--node", help="Only this node (repeatable).")]


def _state(ctx: typer.Context, node: list[str] | None):
    """The cluster, the nodes asked for (all by default), services and tasks."""
    from swarmctl.state.repo import Repo

    with env(ctx).store.read() as db:
        repo = Repo(db)
        cluster = repo.cluster()
        nodes, services, tasks = repo.nodes.all(), repo.services.all(), repo.tasks.all()
    if node:
        known = {n.hostname: n for n in nodes}
        unknown = next((name for name in node if name not in known), None)
        if unknown is not None:
            raise SwarmctlError(f"--node {unknown}: no such node in this cluster")
        nodes = [known[name] for name in dict.fromkeys(node)]
    return cluster, sorted(nodes, key=lambda n: n.hostname), services, tasks


def _read(ctx: typer.Context, node: list[str] | None, name: str | None = None):
    """The cluster's volumes (or those called `name`) on the nodes; unreachable nodes
    are a warning, or an error when named with --node."""
    from swarmctl import volumes

    cluster, nodes, services, tasks = _state(ctx, node)
    with env(ctx).pool() as pool:
        found, failed = volumes.read(pool, nodes)
    if node and failed:
        hostname, error = next(iter(failed.items()))
        raise SwarmctlError(f"{hostname}: volumes not read: {error}")
    warn([f"{hostname}: volumes not read: {error}" for hostname, error in failed.items()])
    if name is None:
        mounted = volumes.mounted_names(services)
        found = [v for v in found if volumes.ours(v.document, cluster.id, mounted)]
    else:
        found = [v for v in found if v.name == name]
    return cluster, nodes, services, tasks, found, failed


@app.command("ls")
def ls(
    ctx: typer.Context, node: NodeOpt = None, fmt: FormatOpt = "table", quiet: QuietOpt = False
) -> None:
    """List the cluster's volumes on every node (or the named ones), as `docker volume ls`."""
    from swarmctl.cli.goformat import render_rows
    from swarmctl.cli.output import table

    found = _read(ctx, node)[4]
    if quiet:
        for name in dict.fromkeys(v.name for v in found):
            typer.echo(name)
        return
    rows = [
        {
            "Driver": v.driver,
            "Name": v.name,
            "Node": v.node,
            "Labels": ",".join(f"{k}={val}" for k, val in sorted(v.labels.items())),
            "Mountpoint": v.document.get("Mountpoint", ""),
            "Scope": v.document.get("Scope", "local"),
        }
        for v in found
    ]
    render_rows(
        fmt,
        rows,
        lambda: table(
            ("DRIVER", "VOLUME NAME", "NODE"), [(r["Driver"], r["Name"], r["Node"]) for r in rows]
        ),
    )


@app.command()
def inspect(
    ctx: typer.Context, name: VolumeArg, node: NodeOpt = None, fmt: InspectFormatOpt = None
) -> None:
    """Show a volume on each node that has it (docker's document, with its node)."""
    from swarmctl.cli.goformat import render_documents

    _, nodes, _, _, found, failed = _read(ctx, node, name)
    if not found:
        raise SwarmctlError(_missing(name, nodes, failed))
    render_documents(fmt, [{**v.document, "Node": v.node} for v in found])


@app.command()
def create(
    ctx: typer.Context,
    name: VolumeArg,
    node: Annotated[list[str], typer.Option("--node", help="The node to make it on (repeatable).")],
    driver: Annotated[str, typer.Option("--driver", "-d", help="Volume driver.")] = "local",
    opt: Annotated[
        list[str] | None, typer.Option("--opt", "-o", help="Driver option KEY=VALUE.")
    ] = None,
) -> None:
    """Create a volume on the named nodes, labelled as the cluster's."""
    from swarmctl import volumes
    from swarmctl.spec import parse_volume

    options = parse_volume(name, driver, opt or [])
    cluster, nodes, _, _ = _state(ctx, node)
    with env(ctx).pool() as pool:
        failed = volumes.create(pool, nodes, name, cluster.id, driver, options)
    for error in failed.values():
        print(f"Error: volume {name} not created: {error}", file=sys.stderr)
    if failed:
        raise typer.Exit(1)
    typer.echo(name)


@app.command()
def rm(
    ctx: typer.Context,
    name: VolumeArg,
    node: NodeOpt = None,
    force: Annotated[
        bool, typer.Option("--force", "-f", help="No error if the volume is nowhere.")
    ] = False,
) -> None:
    """Remove a volume from every node that has it (or the named ones); a volume that a
    service's task uses, or will use again on that node, is refused."""
    from swarmctl import volumes

    _, nodes, services, tasks, found, failed = _read(ctx, node, name)
    if not found:
        if force and not failed:
            return
        raise SwarmctlError(_missing(name, nodes, failed))
    by_host = {n.hostname: n for n in nodes}
    for volume in found:
        using = volumes.users(name, by_host[volume.node], services, tasks)
        if using:
            raise SwarmctlError(
                f"volume {name} on {volume.node} is in use by service {', '.join(using)}"
                " (remove the service first)"
            )
    with env(ctx).pool() as pool:
        errors = volumes.remove(pool, found)
    for error in errors.values():
        print(f"Error: volume {name} not removed: {error}", file=sys.stderr)
    if errors:
        raise typer.Exit(1)
    typer.echo(name)


def _missing(name: str, nodes, failed: dict) -> str:
    where = "on any node" if len(nodes) != 1 else f"on {nodes[0].hostname}"
    unread = f" (not read: {', '.join(failed)})" if failed else ""
    return f"volume {name}: no such volume {where}{unread}"
