"""Getting one host ready to be a node, over its SSH connection, idempotently.

Checks login and root (or sudo), reads facts, installs Docker from the distribution's
packages only when it is absent (never upgrades an engine that is there), starts the
daemon when it is down, and checks the kernel features the overlay needs. It does not
touch the cluster state: membership.py records what this returns.
"""

from dataclasses import dataclass

from swarmctl.commands.render import render
from swarmctl.errors import SwarmctlError
from swarmctl.facts import (
    HostFacts,
    JoinPlan,
    parse_facts,
    plan_join,
    to_node_facts,
    underlay,
)
from swarmctl.models import NodeFacts
from swarmctl.transport.ssh import SSHConnection

INSTALL_TIMEOUT = 900.0


@dataclass(frozen=True)
class Provisioned:
    facts: NodeFacts
    plan: JoinPlan


def check_login(conn: SSHConnection) -> None:
    """Root, or a user with passwordless sudo; sets conn.sudo accordingly."""
    result = conn.run("id -u; sudo -n true 2>/dev/null && echo sudo", check=False)
    lines = result.stdout.split()
    if not lines:
        raise SwarmctlError(f"{conn.name}: `id -u` gave no answer ({result.stderr.strip()})")
    if lines[0] != "0":
        if "sudo" not in lines:
            raise SwarmctlError(
                f"{conn.name}: user {conn.host.user} is not root and cannot "
                "use sudo without a password"
            )
        conn.sudo = True


def read_facts(conn: SSHConnection) -> HostFacts:
    return parse_facts(conn.run(render("host/facts.sh.j2"), timeout=30).stdout)


def provision(
    conn: SSHConnection, *, dry_run: bool = False, listen_addr: str | None = None
) -> Provisioned:
    check_login(conn)
    facts = read_facts(conn)
    plan = plan_join(facts, conn.name)
    if plan.problems:
        raise SwarmctlError(plan.problems[0])
    if not dry_run:
        if plan.install_docker:
            conn.run(plan.install_docker, timeout=INSTALL_TIMEOUT)
        if plan.start_docker:
            conn.run(plan.start_docker, timeout=60)
        if plan.install_docker or plan.start_docker:
            facts = read_facts(conn)
            if not facts.engine:
                raise SwarmctlError(
                    f"{conn.name}: the Docker daemon still does not answer "
                    "after installing/starting it"
                )
    iface, address = underlay(facts, conn.name, conn.host.address, conn.host.iface)
    if listen_addr and listen_addr != address:
        by_address = {cidr.split("/")[0]: name for name, cidr in facts.addresses}
        if listen_addr not in by_address:
            raise SwarmctlError(
                f"{conn.name}: --listen-addr {listen_addr} is not an address of this host"
            )
        iface, address = by_address[listen_addr], listen_addr
    return Provisioned(to_node_facts(facts, iface, address), plan)
