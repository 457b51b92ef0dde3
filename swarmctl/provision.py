"""Getting hosts ready to be a node, over their SSH connections, idempotently.

Checks login and root (or sudo), reads facts, checks the kernel features the overlay
needs, and plans (facts.plan_join) installing Docker from the distribution's packages only
when it is absent (never upgrading an engine that is there) and starting the daemon when
it is down; the executor carries the steps out. It does not touch the cluster state:
membership.py records what this returns.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from swarmctl import executor
from swarmctl.commands import steps
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
from swarmctl.transport.group import Pool
from swarmctl.transport.ssh import SSHConnection


@dataclass(frozen=True)
class Provisioned:
    facts: NodeFacts
    plan: JoinPlan


def check_login(conn: SSHConnection) -> None:
    """Root, or a user with passwordless sudo; sets conn.sudo accordingly."""
    result = conn.run(steps.CHECK_LOGIN, check=False)
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
    pool: Pool, names: Sequence[str], *, dry_run: bool = False, listen_addr: str | None = None
) -> dict[str, Provisioned | SwarmctlError]:
    """Each host (in parallel) looked at and planned, the plans' steps carried out by the
    executor, then each host looked at again; per host, what it is or why it failed."""
    looked: dict[str, tuple[HostFacts, JoinPlan] | SwarmctlError] = pool.each(_look, names)
    ready = {name: found for name, found in looked.items() if not isinstance(found, SwarmctlError)}
    if not dry_run:
        done = executor.run_steps(
            pool,
            [
                step
                for name, (_, plan) in ready.items()
                for step in steps.provision(name, plan.install_docker, plan.start_docker)
            ],
        )
        failed = {name: error for name, error in done.items() if isinstance(error, SwarmctlError)}
        again = pool.each(_read_started, [name for name in done if name not in failed])
        for name, facts in {**again, **failed}.items():
            looked[name] = facts if isinstance(facts, SwarmctlError) else (facts, ready[name][1])
    return {name: _provisioned(pool, name, found, listen_addr) for name, found in looked.items()}


def _look(conn: SSHConnection) -> tuple[HostFacts, JoinPlan]:
    check_login(conn)
    facts = read_facts(conn)
    plan = plan_join(facts, conn.name)
    if plan.problems:
        raise SwarmctlError(plan.problems[0])
    return facts, plan


def _read_started(conn: SSHConnection) -> HostFacts:
    facts = read_facts(conn)
    if not facts.engine:
        raise SwarmctlError(
            f"{conn.name}: the Docker daemon still does not answer after installing/starting it"
        )
    return facts


def _provisioned(
    pool: Pool,
    name: str,
    found: tuple[HostFacts, JoinPlan] | SwarmctlError,
    listen_addr: str | None,
) -> Provisioned | SwarmctlError:
    if isinstance(found, SwarmctlError):
        return found
    facts, plan = found
    conn = pool[name]
    try:
        iface, address = underlay(facts, conn.name, conn.host.address, conn.host.iface)
    except SwarmctlError as error:
        return error
    if listen_addr and listen_addr != address:
        by_address = {cidr.split("/")[0]: name for name, cidr in facts.addresses}
        if listen_addr not in by_address:
            return SwarmctlError(
                f"{conn.name}: --listen-addr {listen_addr} is not an address of this host"
            )
        iface, address = by_address[listen_addr], listen_addr
    return Provisioned(to_node_facts(facts, iface, address), plan)
