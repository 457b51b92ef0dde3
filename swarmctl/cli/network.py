"""`swarmctl network create|ls|inspect|rm`: overlay networks."""

from typing import Annotated

import typer

from swarmctl.cli.common import DryRunOpt, FormatOpt, InspectFormatOpt, QuietOpt, new_app
from swarmctl.cli.context import env
from swarmctl.cli.output import warn
from swarmctl.errors import SwarmctlError

app = new_app("Manage overlay networks.")


@app.command()
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Network name.")],
    driver: Annotated[str, typer.Option("--driver", "-d", help="Only overlay.")] = "overlay",
    subnet: Annotated[str | None, typer.Option(help="CIDR (default: from the pool).")] = None,
    gateway: Annotated[str | None, typer.Option(help="Gateway address.")] = None,
    opt: Annotated[
        list[str] | None, typer.Option("--opt", "-o", help="mtu=N or vxlan-port=N.")
    ] = None,
    attachable: Annotated[
        bool,
        typer.Option(
            "--attachable",
            help="Let standalone containers attach (they always can on this driver).",
            show_default=False,
        ),
    ] = False,
    label: Annotated[list[str] | None, typer.Option(help="key=value.")] = None,
    dry_run: DryRunOpt = False,
) -> None:
    """Create an overlay network on every node; print its ID."""
    from swarmctl.naming import parse_key_values
    from swarmctl.network import networking

    if driver != "overlay":
        raise SwarmctlError(f"--driver {driver!r}: only overlay networks are supported")
    opts = networking.parse_opts(opt or [])
    options = networking.NetworkOptions(
        name=name,
        subnet=subnet,
        gateway=gateway,
        mtu=opts.get("mtu", 1450),
        vxlan_port=opts.get("vxlan-port"),
        attachable=attachable,
        labels=parse_key_values(label, "--label"),
    )
    e = env(ctx)
    if dry_run:
        from swarmctl.cli.plan import dry_run as preview

        preview(e.store, lambda repo: networking.record_new(repo, options))
    with e.pool() as pool:
        network, warnings = networking.create(e.store, pool, options)
    warn(warnings)
    typer.echo(network.id)


@app.command("ls")
def ls(
    ctx: typer.Context,
    fmt: FormatOpt = "table",
    quiet: QuietOpt = False,
) -> None:
    """List overlay networks."""
    from swarmctl.cli.goformat import render_rows
    from swarmctl.cli.output import table

    networks = sorted(_read(ctx)[0], key=lambda n: n.name)
    if quiet:
        for network in networks:
            typer.echo(network.id)
        return
    rows = [ls_row(n) for n in networks]
    render_rows(
        fmt,
        rows,
        lambda: table(
            ("NETWORK ID", "NAME", "DRIVER", "SCOPE"),
            [(r["ID"], r["Name"], r["Driver"], r["Scope"]) for r in rows],
        ),
        headers={"ID": "NETWORK ID", "CreatedAt": "CREATED"},
    )


def ls_row(network) -> dict:
    """A `network ls` row keyed as docker's: flags and labels as text, as docker has them."""
    return {
        "ID": network.id[:12],
        "Name": network.name,
        "Driver": network.driver,
        "Scope": "swarm",
        "IPv4": "true",
        "IPv6": "false",
        "Internal": "false",
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(network.labels.items())),
        "CreatedAt": network.created_at,
    }


def _read(ctx: typer.Context):
    from swarmctl.state.repo import Repo

    with env(ctx).store.read() as db:
        repo = Repo(db)
        repo.cluster()
        return repo.networks.all(), {n.id: n for n in repo.nodes.all()}


@app.command()
def inspect(
    ctx: typer.Context,
    networks: Annotated[list[str], typer.Argument(help="Names or IDs.")],
    fmt: InspectFormatOpt = None,
) -> None:
    """Show networks in detail, as JSON or through a --format template."""
    from swarmctl.cli.goformat import render_documents
    from swarmctl.state.repo import Repo

    with env(ctx).store.read() as db:
        repo = Repo(db)
        found = [repo.networks.get(ref) for ref in networks]
        nodes = {n.id: n for n in repo.nodes.all()}
    render_documents(fmt, [inspect_json(n, nodes) for n in found])


def inspect_json(network, nodes) -> dict:
    def name(node_id: str) -> str:
        return nodes[node_id].hostname if node_id in nodes else node_id

    return {
        "Name": network.name,
        "Id": network.id,
        "Created": network.created_at,
        "Scope": "swarm",
        "Driver": network.driver,
        "EnableIPv6": False,
        "IPAM": {
            "Driver": "default",
            "Options": None,
            "Config": [{"Subnet": network.subnet, "Gateway": network.gateway}],
        },
        "Internal": False,
        "Attachable": network.attachable,
        "Ingress": False,
        "Options": {
            "com.docker.network.driver.overlay.vxlanid_list": str(network.vni),
            "com.docker.network.driver.mtu": str(network.mtu),
            "vxlan-port": str(network.vxlan_port),
        },
        "Labels": network.labels,
        "VNI": network.vni,
        "NodeRanges": {
            name(k): v for k, v in sorted(network.node_ranges.items(), key=lambda kv: kv[1])
        },
        "Peers": [
            {"Name": nodes[k].hostname, "IP": nodes[k].address}
            for k in network.node_ranges
            if k in nodes
        ],
        "Pending": {name(k): v for k, v in network.pending.items()},
    }


@app.command()
def rm(
    ctx: typer.Context,
    networks: Annotated[list[str], typer.Argument(help="Names or IDs.")],
    dry_run: DryRunOpt = False,
) -> None:
    """Remove networks from every node (refused while a service uses them)."""
    from swarmctl.network import networking

    e = env(ctx)
    if dry_run:
        from swarmctl.cli.plan import dry_run as preview

        preview(e.store, lambda repo: [networking.record_remove(repo, r) for r in networks])
    with e.pool() as pool:
        for ref in networks:
            network, warnings = networking.remove(e.store, pool, ref)
            warn(warnings)
            typer.echo(network.name)
