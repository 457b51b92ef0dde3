"""`swarmctl init`, `join`, `leave`, `info`: the cluster and its membership."""

from typing import Annotated

import typer

from swarmctl.cli.common import DryRunOpt, FormatOpt
from swarmctl.cli.context import env
from swarmctl.cli.output import warn
from swarmctl.errors import SwarmctlError

AcceptNew = Annotated[
    bool,
    typer.Option(
        "--accept-new-host-keys",
        help="Trust a host key seen for the first time and record it (trust on first use).",
    ),
]


def init(
    ctx: typer.Context,
    host: Annotated[
        str | None,
        typer.Argument(help="The first manager (default: the first host of group managers)."),
    ] = None,
    listen_addr: Annotated[
        str | None,
        typer.Option(help="ADDR[:PORT]: the manager's overlay address, and the VXLAN UDP port."),
    ] = None,
    default_addr_pool: Annotated[
        list[str] | None, typer.Option(help="CIDR pool overlay subnets come from (repeatable).")
    ] = None,
    default_addr_pool_mask_length: Annotated[
        int, typer.Option(help="Size of each overlay subnet taken from the pool.")
    ] = 24,
    accept_new_host_keys: AcceptNew = False,
) -> None:
    """Create a cluster, with HOST as its first manager (the leader)."""
    from swarmctl.membership import init as do_init

    address, port = _split_listen_addr(listen_addr)
    if not 8 <= default_addr_pool_mask_length <= 28:
        raise SwarmctlError(
            f"--default-addr-pool-mask-length {default_addr_pool_mask_length}: use 8 to 28"
        )
    pools = [_cidr(p) for p in default_addr_pool or ["10.0.0.0/8"]]
    e = env(ctx)
    with e.pool(accept_new_host_keys) as pool:
        do_init(
            e.store,
            e.inventory,
            pool,
            host,
            listen_addr=address,
            vxlan_port=port,
            pools=pools,
            pool_mask=default_addr_pool_mask_length,
            say=typer.echo,
        )


def supervisor_status(db) -> str:
    """Who supervises the cluster and how fresh what it observed is."""
    from datetime import UTC, datetime

    from swarmctl import clock
    from swarmctl.state import leases

    lease = leases.get(db, leases.SUPERVISOR)
    if lease is None:
        return "none (states are as the last swarmctl command saw them)"
    last = lease.note.removeprefix("alive ")  # renewed at half its time to live
    age = clock.ago(last) if last else "?"
    alive = datetime.fromisoformat(lease.expires_at) > datetime.now(UTC)
    return f"{lease.holder}, alive {age}" + ("" if alive else " (stopped or stuck)")


def _split_listen_addr(value: str | None) -> tuple[str | None, int | None]:
    if not value:
        return None, None
    import ipaddress

    address, _, port = value.partition(":")
    try:
        ipaddress.IPv4Address(address)
    except ValueError:
        raise SwarmctlError(
            f"--listen-addr {value!r}: {address!r} is not an IPv4 address"
        ) from None
    if port and not (port.isdigit() and 1 <= int(port) <= 65535):
        raise SwarmctlError(f"--listen-addr {value!r}: port {port!r} is not 1-65535")
    return address, int(port) if port else None


def _cidr(text: str) -> str:
    import ipaddress

    try:
        return str(ipaddress.IPv4Network(text))
    except ValueError as exc:
        raise SwarmctlError(f"--default-addr-pool {text!r}: {exc}") from None


def join(
    ctx: typer.Context,
    hosts: Annotated[list[str] | None, typer.Argument(help="Inventory hosts to join.")] = None,
    role: Annotated[
        str | None, typer.Option(help="worker or manager (default: from the inventory's groups).")
    ] = None,
    all_hosts: Annotated[
        bool, typer.Option("--all", help="Every inventory host that is not a member yet.")
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Print what would be done on each host; change nothing."),
    ] = False,
    accept_new_host_keys: AcceptNew = False,
) -> None:
    """Provision hosts over SSH and add them to the cluster."""
    from swarmctl.membership import join as do_join
    from swarmctl.models import Role

    if role not in (None, "worker", "manager"):
        raise SwarmctlError(f"--role {role!r}: use worker or manager")
    if hosts and all_hosts:
        raise SwarmctlError("name hosts or pass --all, not both")
    e = env(ctx)
    with e.pool(accept_new_host_keys) as pool:
        outcome = do_join(
            e.store,
            e.inventory,
            pool,
            hosts or [],
            role=Role(role) if role else None,
            everyone=all_hosts,
            dry_run=dry_run,
            say=typer.echo,
        )
    warn(outcome.warnings)
    for reason in outcome.failed.values():
        typer.echo(f"Error: {reason}", err=True)
    if outcome.failed:
        raise typer.Exit(1)


def leave(
    ctx: typer.Context,
    node: Annotated[str, typer.Argument(help="Node name or ID.")],
    force: Annotated[
        bool,
        typer.Option(
            "--force", "-f", help="Remove it even if it cannot be cleaned or is the leader."
        ),
    ] = False,
    dry_run: DryRunOpt = False,
) -> None:
    """Remove a node from the cluster, cleaning its host when reachable."""
    from swarmctl.membership import leave as do_leave

    e = env(ctx)
    if dry_run:
        from swarmctl.cli.plan import dry_run as preview
        from swarmctl.cli.plan import leaving
        from swarmctl.membership import check_leave

        hosts = e.inventory.hosts

        def change(repo):
            return leaving(repo, [check_leave(repo, e.inventory, node, force)], hosts)

        preview(e.store, change)
    with e.pool() as pool:
        warn(do_leave(e.store, e.inventory, pool, node, force=force, say=typer.echo)[1])


def info(
    ctx: typer.Context,
    fmt: FormatOpt = "table",
) -> None:
    """The cluster summary, like the Swarm block of `docker info`."""
    from swarmctl.cli.output import as_json, check_format
    from swarmctl.models import Role, TaskState
    from swarmctl.state.repo import Repo

    check_format(fmt)
    e = env(ctx)
    with e.store.read() as db:
        repo = Repo(db)
        cluster = repo.cluster()
        nodes = repo.nodes.all()
        services = repo.services.all()
        running = sum(1 for t in repo.tasks.all() if t.state == TaskState.RUNNING)
        watcher = supervisor_status(db)
    leader = next((n for n in nodes if n.leader), None)
    rows = [
        ("ClusterID", "Cluster ID", cluster.id),
        ("NodeID", "NodeID", leader.id if leader else ""),
        ("IsManager", "Is Manager", True),
        ("Managers", "Managers", sum(1 for n in nodes if n.role == Role.MANAGER)),
        ("Nodes", "Nodes", len(nodes)),
        ("Services", "Services", len(services)),
        ("RunningTasks", "Running Tasks", running),
        ("CreatedAt", "Created", cluster.created_at),
        ("DefaultAddrPool", "Default Address Pool", " ".join(cluster.default_addr_pool)),
        ("SubnetSize", "SubnetSize", cluster.subnet_size),
        ("DataPathPort", "Data Path Port", cluster.vxlan_port),
        ("StateFile", "State File", str(e.store.path)),
        ("Supervisor", "Supervisor", watcher),
    ]
    if fmt == "json":
        as_json({"Swarm": "active", **{key: value for key, _, value in rows}})
        return
    typer.echo("Swarm: active")
    for _, label, value in rows:
        typer.echo(f" {label}: {str(value).lower() if isinstance(value, bool) else value}")
