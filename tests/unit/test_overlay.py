"""Overlay networks without hosts: each node's desired state, its address block, the
converge script (golden files, and hostile values run for real against stub tools),
and the pure parts of `network create` and of converge bookkeeping.

UPDATE_GOLDEN=1 rewrites the golden scripts in tests/unit/data/overlay/ instead of
comparing with them: read the diff before committing it.
"""

import ipaddress
import itertools
import os
import shlex
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from swarmctl.commands.render import render
from swarmctl.errors import SwarmctlError
from swarmctl.models import Cluster, Network, Node, NodeFacts, Role
from swarmctl.network.networking import NetworkOptions, _new_network, _record_pending, parse_opts
from swarmctl.network.overlay import (
    NetworkOnNode,
    NodeOverlays,
    assign_ranges,
    forget_node,
    node_overlays,
)
from swarmctl.state import StateStore
from swarmctl.state.repo import Repo

GOLDEN = Path(__file__).parent / "data" / "overlay"
NOW = "2024-05-01T12:00:00.000+00:00"
CLUSTER = Cluster(id="clusterid0000000000000001", created_at=NOW)


def node(id: str, address: str, network: str = "192.168.56.0/24") -> Node:
    facts = NodeFacts(iface="eth1", address=address, network=network)
    return Node(id, f"host-{id}", Role.WORKER, address, NOW, NOW, facts=facts)


def network(id: str, name: str, subnet: str, **fields: Any) -> Network:
    gateway = str(ipaddress.IPv4Network(subnet).network_address + 1)
    fields.setdefault("vni", 4096)
    return Network(id=id, name=name, subnet=subnet, gateway=gateway, created_at=NOW, **fields)


N1 = node("node1", "192.168.56.11")
N2 = node("node2", "192.168.56.12")
N3 = node("node3", "192.168.56.13")
N4 = node("node4", "192.168.56.14")  # in no network at all
NODES = [N3, N1, N4, N2]  # out of order on purpose

FRONT = network(
    "frontnet0000000000000000a",
    "front",
    "10.0.1.0/24",
    vni=4097,
    mtu=1400,
    vxlan_port=4790,
    labels={"team": "web", "com.example.tier": "edge"},
    node_ranges={"node1": "10.0.1.16/28", "node2": "10.0.1.32/28", "node3": "10.0.1.48/28"},
)
BACK = network(
    "backnet00000000000000000b",
    "back",
    "10.0.2.0/24",
    node_ranges={"node1": "10.0.2.16/28", "node2": "10.0.2.32/28"},
)
OTHER = network(
    "othernet0000000000000000c",
    "other",
    "10.0.3.0/24",
    vni=4098,
    node_ranges={"node2": "10.0.3.16/28", "node3": "10.0.3.32/28"},
)
NETWORKS = [OTHER, FRONT, BACK]


def overlays_of(target: Node, networks: list[Network] = NETWORKS) -> NodeOverlays:
    return node_overlays(CLUSTER, networks, NODES, target)


def on(target: Node, name: str) -> NetworkOnNode:
    (found,) = [n for n in overlays_of(target).networks if n.name == name]
    return found


def error_of(action: Callable[[], object]) -> str:
    with pytest.raises(SwarmctlError) as caught:
        action()
    return str(caught.value)


# ---------------------------------------------------------------------- node_overlays


def test_a_node_gets_only_the_networks_it_has_a_block_in() -> None:
    assert [n.name for n in overlays_of(N1).networks] == ["back", "front"]
    assert [n.name for n in overlays_of(N3).networks] == ["front", "other"]


def test_the_peers_of_a_network_are_the_other_nodes_with_a_block_in_it_sorted() -> None:
    assert on(N2, "front").peers == ("192.168.56.11", "192.168.56.13")
    assert on(N1, "back").peers == ("192.168.56.12",)
    assert on(N3, "other").peers == ("192.168.56.12",)


def test_a_block_owner_that_is_no_longer_a_node_is_not_a_peer() -> None:
    stale = replace(BACK, node_ranges={**BACK.node_ranges, "gone1": "10.0.2.48/28"})
    (back,) = overlays_of(N1, [stale]).networks
    assert back.peers == ("192.168.56.12",)


def test_a_node_with_networks_accepts_vxlan_from_every_other_node() -> None:
    assert overlays_of(N1).peers == ("192.168.56.12", "192.168.56.13", "192.168.56.14")


def test_a_node_without_networks_has_no_peers_and_no_ports() -> None:
    overlays = overlays_of(N4)
    assert (overlays.networks, overlays.peers, overlays.ports) == ((), (), ())


def test_each_vxlan_port_in_use_on_a_node_is_listed_once() -> None:
    also_4789 = replace(OTHER, node_ranges={"node1": "10.0.3.16/28"})
    assert overlays_of(N1, [*NETWORKS, also_4789]).ports == (4789, 4790)


def test_device_names_come_from_the_network_id_and_fit_in_15_characters() -> None:
    front = on(N1, "front")
    assert (front.vxlan, front.shim) == ("swvfrontnet000", "swbfrontnet000")
    assert max(len(front.vxlan), len(front.shim)) <= 15


def test_the_node_address_is_the_first_address_of_its_block() -> None:
    front = on(N2, "front")
    assert (front.ip_range, front.address) == ("10.0.1.32/28", "10.0.1.32")


def test_the_vxlan_source_is_the_underlay_address_the_node_reported() -> None:
    moved = replace(N1, facts=replace(N1.facts, address="172.20.0.11", iface="ens5"))
    front = node_overlays(CLUSTER, [FRONT], NODES, moved).networks[0]
    assert (front.local, front.iface) == ("172.20.0.11", "ens5")


def test_the_vxlan_source_falls_back_to_the_node_address_without_facts() -> None:
    bare = replace(N1, facts=NodeFacts())
    assert node_overlays(CLUSTER, [FRONT], NODES, bare).networks[0].local == "192.168.56.11"


def test_block_zero_is_reserved_for_the_gateway_and_virtual_ips() -> None:
    assert on(N1, "front").reserved == "10.0.1.0/28"


# ---------------------------------------------------------------------- assign_ranges


def test_new_nodes_get_distinct_blocks_that_overlap_nothing() -> None:
    fresh = network("freshnet0000000000000000d", "fresh", "10.0.4.0/24")
    ranges = assign_ranges(fresh, [N1, N2, N3]).node_ranges
    blocks = [ipaddress.IPv4Network(r) for r in ranges.values()]
    reserved = ipaddress.IPv4Network("10.0.4.0/28")
    assert sorted(ranges) == ["node1", "node2", "node3"]
    assert all(b.subnet_of(ipaddress.IPv4Network("10.0.4.0/24")) for b in blocks)
    assert not any(b.overlaps(reserved) for b in blocks)
    assert not any(a.overlaps(b) for a, b in itertools.combinations(blocks, 2))


def test_new_nodes_are_pending_until_set_up() -> None:
    fresh = network("freshnet0000000000000000d", "fresh", "10.0.4.0/24")
    pending = assign_ranges(fresh, [N1, N2]).pending
    assert pending == {"node1": "not set up yet", "node2": "not set up yet"}


def test_nodes_that_have_a_block_keep_it_and_are_not_made_pending() -> None:
    held = network("freshnet0000000000000000d", "fresh", "10.0.4.0/24")
    held = replace(held, node_ranges={"node1": "10.0.4.64/28"})
    after = assign_ranges(held, [N1, N2])
    assert after.node_ranges["node1"] == "10.0.4.64/28"
    assert after.node_ranges["node2"] != "10.0.4.64/28"
    assert after.pending == {"node2": "not set up yet"}


def test_a_node_gets_no_block_in_an_exhausted_subnet_and_waits_with_the_reason() -> None:
    tiny = network("tinynet00000000000000000e", "tiny", "10.0.5.0/28")  # 3 blocks of 4
    after = assign_ranges(tiny, [N1, N2, N3, N4])
    assert sorted(after.node_ranges) == ["node1", "node2", "node3"]
    assert after.pending["node4"] == (
        "network subnet 10.0.5.0/28 has no address range left for another node "
        "(3 nodes use it; create the network with a larger --subnet)"
    )


def test_forgetting_a_node_drops_its_block_and_its_pending_reason() -> None:
    after = forget_node(assign_ranges(FRONT, [N4]), "node4")
    assert "node4" not in after.node_ranges
    assert "node4" not in after.pending
    assert after.node_ranges == FRONT.node_ranges


# ------------------------------------------------------------------- golden scripts


GOLDEN_CASES = {
    "two_networks.sh": lambda: overlays_of(N1),
    "no_networks.sh": lambda: overlays_of(N4),
}


def sh_syntax_errors(script: str) -> str:
    return subprocess.run(["sh", "-n"], input=script, capture_output=True, text=True).stderr


@pytest.mark.parametrize("golden", GOLDEN_CASES)
def test_the_converge_script_matches_its_golden_file(golden: str) -> None:
    script = render("overlay/converge.sh.j2", o=GOLDEN_CASES[golden]())
    path = GOLDEN / golden
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(script)
    assert script == path.read_text()


@pytest.mark.parametrize("golden", GOLDEN_CASES)
def test_the_golden_converge_scripts_are_valid_shell(golden: str) -> None:
    assert sh_syntax_errors((GOLDEN / golden).read_text()) == ""


# ------------------------------------------------------------- running with stub tools
# The converge script runs for real under a local `sh`, with stubs of the tools it drives
# first on PATH. Each stub logs its argv, NUL-separated, and answers `docker network
# inspect` and `docker network ls` from files in `docker`; no file means no network
# (`held`: `docker network rm` fails, as while a container holds the network). Links
# the script makes or marks (their alias) are files `link-NAME` there too.

STUB = """#!/bin/sh
printf 'A%s\\000' "${0##*/}" "$@" >> LOG
printf 'E\\000' >> LOG
case "${0##*/} $1 $2" in
    "docker network inspect")
        case "$4" in
            *swarmctl.network.id*swarmctl.cluster.id*) answer=owner ;;
            *swarmctl.network.id*) answer=network-id ;;
            *swarmctl.cluster.id*) answer=cluster-id ;;
            *parent*) answer=parent ;;
            *) answer=inspect ;;
        esac
        [ -f DOCKER/$answer ] || exit 1
        cat DOCKER/$answer ;;
    "docker network ls") [ -f DOCKER/ls ] && cat DOCKER/ls ;;
    "docker network rm") [ -f DOCKER/held ] && exit 1 ;;
    "ip link show") [ -f "DOCKER/link-$3" ] || exit 1; cat "DOCKER/link-$3" ;;
    "ip link add") : > "DOCKER/link-$3" ;;
    "ip link set") [ "$4" = alias ] && printf '    alias %s\n' "$5" > "DOCKER/link-$3" ;;
    "iptables-restore"*) cat > /dev/null ;;
esac
exit 0
"""
STUBBED = ["arptables", "docker", "ip", "bridge", "iptables", "iptables-restore", "rm", "sysctl"]


@dataclass(frozen=True)
class StubRun:
    returncode: int
    stderr: str
    calls: list[list[str]]  # argv of each stub call, the tool's name first

    def calls_of(self, *prefix: str) -> list[list[str]]:
        return [c for c in self.calls if c[: len(prefix)] == list(prefix)]

    def index_of(self, *prefix: str) -> int:
        return next(i for i, c in enumerate(self.calls) if c[: len(prefix)] == list(prefix))


def read_calls(log: Path) -> list[list[str]]:
    calls, current = [], []
    for item in log.read_text().split("\0")[:-1] if log.exists() else []:
        if item == "E":
            calls.append(current)
            current = []
        else:
            current.append(item[1:])
    return calls


def run_with_stubs(tmp: Path, script: str, docker: dict[str, str] | None = None) -> StubRun:
    stubs, answers, log = tmp / "bin", tmp / "docker", tmp / "calls.log"
    stubs.mkdir(exist_ok=True)  # run again in the same `tmp`: the links made are kept
    answers.mkdir(exist_ok=True)
    log.unlink(missing_ok=True)
    for name, text in (docker or {}).items():
        (answers / name).write_text(text)
    for tool in STUBBED:
        stub = stubs / tool
        text = STUB.replace("LOG", shlex.quote(str(log)))
        stub.write_text(text.replace("DOCKER", shlex.quote(str(answers))))
        stub.chmod(0o755)
    env = {"PATH": f"{stubs}:{os.environ['PATH']}", "LC_ALL": "C"}
    done = subprocess.run(
        ["sh", "-c", script], cwd=tmp, env=env, capture_output=True, text=True, timeout=30
    )
    return StubRun(done.returncode, done.stderr, read_calls(log))


def pairs(argv: list[str]) -> list[list[str]]:
    return [argv[i : i + 2] for i in range(len(argv) - 1)]


def test_the_stubbed_converge_script_creates_a_missing_network(tmp_path: Path) -> None:
    run = run_with_stubs(tmp_path, render("overlay/converge.sh.j2", o=overlays_of(N1)))
    assert run.returncode == 0, run.stderr
    assert [c[-1] for c in run.calls_of("docker", "network", "create")] == ["back", "front"]


def test_a_stale_network_of_this_cluster_with_the_same_name_is_replaced(tmp_path: Path) -> None:
    overlays = node_overlays(CLUSTER, [FRONT], NODES, N1)
    stale = {
        "owner": f"oldfront00000000000000000/{CLUSTER.id}/macvlan\n",
        "parent": "swvoldfront000\n",
        "ls": "oldfront00000000000000000/front\n",
    }
    run = run_with_stubs(tmp_path, render("overlay/converge.sh.j2", o=overlays), stale)
    assert run.returncode == 0, run.stderr
    assert run.index_of("docker", "network", "rm") < run.index_of("docker", "network", "create")
    assert ["ip", "link", "del", "swvoldfront000"] in run.calls


def test_a_network_whose_vxlan_device_was_lost_is_made_again_by_docker(tmp_path: Path) -> None:
    # After a reboot dockerd keeps the record of a macvlan network whose parent it could
    # not find, but not the network: its containers could not even be connected.
    overlays = node_overlays(CLUSTER, [FRONT], NODES, N1)
    ours = {"owner": f"{FRONT.id}/{CLUSTER.id}/macvlan\n", "ls": f"{FRONT.id}/front\n"}
    run = run_with_stubs(tmp_path, render("overlay/converge.sh.j2", o=overlays), ours)
    assert run.returncode == 0, run.stderr
    vxlan = run.index_of("ip", "link", "add", "swvfrontnet000")
    assert vxlan < run.index_of("docker", "network", "rm", "front")
    assert run.index_of("docker", "network", "rm") < run.index_of("docker", "network", "create")


def test_a_stale_network_still_held_is_removed_by_a_later_run(tmp_path: Path) -> None:
    # Its containers (failed to start after the reboot) still hold it at the first run.
    script = render("overlay/converge.sh.j2", o=node_overlays(CLUSTER, [FRONT], NODES, N1))
    ours = {"owner": f"{FRONT.id}/{CLUSTER.id}/macvlan\n", "held": ""}
    first = run_with_stubs(tmp_path, script, ours)
    assert first.returncode == 0, first.stderr
    assert first.calls_of("docker", "network", "rm", "front") != []
    assert first.calls_of("docker", "network", "create") == []
    (tmp_path / "docker" / "held").unlink()
    second = run_with_stubs(tmp_path, script)  # the VXLAN device is there now
    assert second.calls_of("ip", "link", "add", "swvfrontnet000") == []
    assert second.index_of("docker", "network", "rm", "front") < second.index_of(
        "docker", "network", "create"
    )
    third = run_with_stubs(tmp_path, script)  # re-made: Docker's network is left alone
    assert third.calls_of("docker", "network", "rm") == []


def test_a_network_of_ours_with_its_vxlan_device_there_is_left_alone(tmp_path: Path) -> None:
    script = render("overlay/converge.sh.j2", o=node_overlays(CLUSTER, [FRONT], NODES, N1))
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "link-swvfrontnet000").write_text("")
    run = run_with_stubs(tmp_path, script, {"owner": f"{FRONT.id}/{CLUSTER.id}/macvlan\n"})
    assert run.returncode == 0, run.stderr
    assert run.calls_of("docker", "network", "rm") == []
    assert run.calls_of("docker", "network", "create") == []


def test_a_bridge_network_of_an_earlier_swarmctl_is_named_and_left_alone(tmp_path: Path) -> None:
    overlays = node_overlays(CLUSTER, [FRONT], NODES, N1)
    old = {"owner": f"{FRONT.id}/{CLUSTER.id}/bridge\n", "ls": f"{FRONT.id}/front\n"}
    run = run_with_stubs(tmp_path, render("overlay/converge.sh.j2", o=overlays), old)
    assert run.returncode == 3
    assert run.stderr.strip() == (
        "network front is a Docker bridge network made by an earlier swarmctl:"
        " remove it and create it again"
    )
    assert run.calls_of("ip") == [] and run.calls_of("docker", "network", "rm") == []


def test_each_network_is_a_docker_macvlan_network_on_its_vxlan_device(tmp_path: Path) -> None:
    run = run_with_stubs(tmp_path, render("overlay/converge.sh.j2", o=overlays_of(N1)))
    (create, _) = run.calls_of("docker", "network", "create")
    assert create[:5] == ["docker", "network", "create", "--driver", "macvlan"]
    assert ["--opt", "parent=swvbacknet0000"] in pairs(create)
    assert ["--opt", "macvlan_mode=bridge"] in pairs(create)
    # The VXLAN device is made first (Docker needs the parent) and answers no ARP itself.
    assert run.index_of("ip", "link", "add", "swvbacknet0000") < run.index_of(
        "docker", "network", "create"
    )
    assert ["ip", "link", "set", "swvbacknet0000", "mtu", "1450", "arp", "off", "up"] in run.calls


def test_the_hosts_port_is_a_macvlan_with_the_node_address_and_block_0_as_local(
    tmp_path: Path,
) -> None:
    overlays = overlays_of(N1)
    run = run_with_stubs(tmp_path, render("overlay/converge.sh.j2", o=overlays))
    front = next(n for n in overlays.networks if n.name == "front")
    port, vxlan = front.shim, front.vxlan
    assert ["ip", "link", "add", port, "link", vxlan, "type", "macvlan", "mode", "bridge"] in (
        run.calls
    )
    assert ["ip", "addr", "replace", f"{front.address}/24", "dev", port] in run.calls
    local = ["ip", "route", "replace", "table", "local", "local", front.reserved, "dev", port]
    assert [*local, "src", front.address] in run.calls
    # No gateway address on it: ARP for the gateway and the VIPs is answered from the route,
    # and the host's own requests carry the node's address (arp_announce), never block 0's.
    assert ["sysctl", "-qw", f"net.ipv4.conf.{port}.arp_announce=2"] in run.calls


# ------------------------------------------------------------------- hostile values
# Validation refuses all of these long before a template sees them; here the dataclasses
# are built directly, so the template's own quoting is all that stands between a value
# and the node's shell. `rm` is stubbed too, so an injected `rm -rf /` only gets logged.


def hostile(what: str, marker: Path) -> str:
    return f"{what}\n$(touch {marker}) `touch {marker}`; rm -rf / 'it''s' \"dq\" a  b\tc\n"


@dataclass(frozen=True)
class Hostile:
    name: str
    label_key: str
    label_value: str
    iface: str
    cluster_id: str
    marker: Path
    script: str
    run: StubRun


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory) -> Hostile:
    tmp = tmp_path_factory.mktemp("hostile")
    marker = tmp / "pwned"
    name, key, value, iface, cluster_id = (
        hostile(w, marker) for w in ("net", "key", "value", "iface", "cluster")
    )
    front = on(N1, "front")
    overlays = NodeOverlays(
        cluster_id=cluster_id,
        node="node1",
        networks=(replace(front, name=name, iface=iface, labels=((key, value),)),),
        peers=("192.168.56.12",),
        ports=(4790,),
    )
    script = render("overlay/converge.sh.j2", o=overlays)
    run = run_with_stubs(tmp, script)
    return Hostile(name, key, value, iface, cluster_id, marker, script, run)


def test_the_converge_script_with_hostile_values_is_valid_shell(hostile_run: Hostile) -> None:
    assert sh_syntax_errors(hostile_run.script) == ""


def test_running_the_converge_script_runs_nothing_hidden_in_hostile_values(
    hostile_run: Hostile,
) -> None:
    assert not hostile_run.marker.exists()
    assert hostile_run.run.calls_of("rm") == []


def test_hostile_values_reach_docker_and_ip_intact_as_single_arguments(
    hostile_run: Hostile,
) -> None:
    h, run = hostile_run, hostile_run.run
    assert run.returncode == 0, run.stderr
    (create,) = run.calls_of("docker", "network", "create")
    assert create[-1] == h.name
    assert run.calls_of("docker", "network", "inspect")[0][-1] == h.name
    assert ["--label", f"swarmctl.cluster.id={h.cluster_id}"] in pairs(create)
    assert ["--label", f"{h.label_key}={h.label_value}"] in pairs(create)
    (vxlan,) = [c for c in run.calls_of("ip", "link", "add") if "vxlan" in c]
    assert ["dev", h.iface] in pairs(vxlan)


def test_a_hostile_peer_cannot_end_the_iptables_rules(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    escape = f"192.168.56.12\nRULES\ntouch {marker}\ncat <<'RULES'\n#"
    overlays = replace(overlays_of(N1), peers=(escape,))
    try:
        script = render("overlay/converge.sh.j2", o=overlays)
    except (SwarmctlError, ValueError):
        return  # refusing to render a peer that is no address is a defence too
    run_with_stubs(tmp_path, script)
    assert not marker.exists()


# ------------------------------------------------------------------------ parse_opts


def test_opts_set_the_mtu_and_the_vxlan_port() -> None:
    assert parse_opts(["mtu=1400", "vxlan-port=4790"]) == {"mtu": 1400, "vxlan-port": 4790}


def test_dockers_own_mtu_opt_sets_the_mtu() -> None:
    assert parse_opts(["com.docker.network.driver.mtu=1380"]) == {"mtu": 1380}


@pytest.mark.parametrize(
    ("opt", "message"),
    [
        ("speed=10", "--opt 'speed=10': expected mtu=N or vxlan-port=N"),
        ("mtu", "--opt 'mtu': expected mtu=N or vxlan-port=N"),
        ("mtu=big", "mtu 'big' is not an integer"),
        ("mtu=67", "mtu 67 is out of range (68-9000)"),
        ("com.docker.network.driver.mtu=9001", "mtu 9001 is out of range (68-9000)"),
        ("vxlan-port=0", "vxlan port 0 is out of range (1-65535)"),
        ("vxlan-port=", "vxlan port '' is not an integer"),
    ],
)
def test_a_bad_opt_is_refused_with_a_message_naming_it(opt: str, message: str) -> None:
    assert error_of(lambda: parse_opts([opt])) == message


# ---------------------------------------------------------------------- _new_network


def new_network(
    networks: Sequence[Network] = (),
    nodes: Sequence[Node] = (),
    cluster: Cluster = CLUSTER,
    **opts: Any,
) -> Network:
    return _new_network(cluster, list(networks), list(nodes), NetworkOptions("fresh", **opts))


def test_a_pool_subnet_skips_the_nodes_underlay_networks() -> None:
    on_underlay = node("node1", "10.0.1.5", network="10.0.0.0/23")
    bare = replace(node("node2", "10.0.2.9"), facts=NodeFacts())  # no facts: its /32
    fresh = new_network(nodes=[on_underlay, bare])
    assert (fresh.subnet, fresh.gateway) == ("10.0.3.0/24", "10.0.3.1")


def test_a_pool_subnet_skips_dockers_default_bridge() -> None:
    cluster = replace(CLUSTER, default_addr_pool=("172.16.0.0/12",), subnet_size=16)
    taken = network("takennet0000000000000000f", "taken", "172.16.0.0/16")
    assert new_network([taken], [N1], cluster).subnet == "172.18.0.0/16"


def test_a_gateway_without_a_subnet_is_refused() -> None:
    assert error_of(lambda: new_network(gateway="10.9.0.1")) == "--gateway needs --subnet"


def test_a_user_subnet_overlapping_another_network_is_refused_naming_it() -> None:
    assert error_of(lambda: new_network(NETWORKS, NODES, subnet="10.0.0.0/23")) == (
        "subnet 10.0.0.0/23 overlaps network front (10.0.1.0/24)"
    )


def test_a_new_network_takes_the_lowest_free_vni_from_4096() -> None:
    assert new_network([FRONT, OTHER], NODES).vni == 4096  # 4097 and 4098 are taken
    assert new_network([BACK, OTHER], NODES).vni == 4097


# -------------------------------------------------------------------- _record_pending


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    store = StateStore(tmp_path / "cluster.json")
    store.create()
    with store.transaction() as db:
        repo = Repo(db)
        repo.set_cluster(CLUSTER)
        repo.networks.put(
            replace(
                FRONT,
                node_ranges={"node1": "10.0.1.16/28", "node2": "10.0.1.32/28"},
                pending={
                    "node1": "not set up yet",
                    "node2": "not set up yet",
                    "node3": "network subnet 10.0.1.0/24 has no address range left",
                },
            )
        )
    return store


def pending_after(store: StateStore, converged: set[str], errors: dict[str, str]) -> dict[str, str]:
    _record_pending(store, converged, errors)
    with store.read() as db:
        return Repo(db).networks.get("front").pending


def test_converged_nodes_are_no_longer_pending(store: StateStore) -> None:
    pending = pending_after(store, {"node1", "node2"}, {})
    assert "node1" not in pending
    assert "node2" not in pending


def test_a_node_that_failed_to_converge_is_pending_with_the_error(store: StateStore) -> None:
    pending = pending_after(store, {"node1", "node2"}, {"node2": "node2: ssh: timed out"})
    assert pending["node2"] == "node2: ssh: timed out"


def test_a_node_without_a_block_keeps_waiting_for_address_space(store: StateStore) -> None:
    reason = "network subnet 10.0.1.0/24 has no address range left"
    assert pending_after(store, {"node3"}, {})["node3"] == reason
    assert pending_after(store, {"node3"}, {"node3": "node3: ssh: refused"})["node3"] == reason


def test_nodes_not_converged_this_time_are_left_as_they_were(store: StateStore) -> None:
    assert pending_after(store, {"node2"}, {})["node1"] == "not set up yet"


def test_containers_are_kept_off_every_vxlan_port_in_the_raw_table(tmp_path: Path) -> None:
    overlays = overlays_of(N1)
    run = run_with_stubs(tmp_path, render("overlay/converge.sh.j2", o=overlays))
    assert run.returncode == 0, run.stderr
    guard = ["-p", "udp", "--dport"]
    # The stub finds every rule present (-C succeeds), so the checks are what it sees.
    checked = run.calls_of("iptables", "-t", "raw", "-C", "PREROUTING")
    assert checked == [
        ["iptables", "-t", "raw", "-C", "PREROUTING", *guard, str(p), "-j", "SWARMCTL-VXLAN-GUARD"]
        for p in overlays.ports
    ]
    # Only the underlay and the host's loopback may carry VXLAN in; bridges and veths may not.
    assert run.calls_of("iptables", "-t", "raw", "-A") == [
        ["iptables", "-t", "raw", "-A", "SWARMCTL-VXLAN-GUARD", *rule]
        for rule in (
            ["-i", overlays.networks[0].iface, "-j", "RETURN"],
            ["-i", "lo", "-j", "RETURN"],
            ["-j", "DROP"],
        )
    ]


def test_a_node_without_networks_removes_the_vxlan_guard() -> None:
    script = render("overlay/converge.sh.j2", o=overlays_of(N4))
    assert "iptables -t raw -X SWARMCTL-VXLAN-GUARD" in script
    assert "iptables -t raw -A" not in script


def restored(script: str) -> list[str]:
    """The lines the script feeds iptables-restore."""
    rules = script.split("iptables-restore --noflush <<'RULES'\n")[1]
    return rules.split("\nRULES\n")[0].split("\n")


def test_routed_traffic_leaves_overlays_masqueraded_and_never_crosses_between_them(
    tmp_path: Path,
) -> None:
    overlays = overlays_of(N1)
    script = render("overlay/converge.sh.j2", o=overlays)
    rules = restored(script)
    back, front = (n.shim for n in overlays.networks)
    assert [r for r in rules if r.startswith("-A SWARMCTL-OVERLAY")] == [
        f"-A SWARMCTL-OVERLAY -i {back} -o {back} -j ACCEPT",
        f"-A SWARMCTL-OVERLAY -i {front} -o {front} -j ACCEPT",
        "-A SWARMCTL-OVERLAY -o swb+ -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-A SWARMCTL-OVERLAY -i swb+ -o swb+ -j DROP",
        "-A SWARMCTL-OVERLAY -i swb+ -o docker0 -j DROP",
        "-A SWARMCTL-OVERLAY -i swb+ -o br-+ -j DROP",
        "-A SWARMCTL-OVERLAY -i docker0 -o swb+ -j DROP",
        "-A SWARMCTL-OVERLAY -i br-+ -o swb+ -j DROP",
        "-A SWARMCTL-OVERLAY -i swb+ -j ACCEPT",
    ]
    assert [r for r in rules if r.startswith("-A SWARMCTL-MASQ")] == [
        f"-A SWARMCTL-MASQ -s 10.0.2.0/24 ! -o {back} -j MASQUERADE",
        f"-A SWARMCTL-MASQ -s 10.0.1.0/24 ! -o {front} -j MASQUERADE",
    ]
    run = run_with_stubs(tmp_path, script)
    assert run.returncode == 0, run.stderr
    # The stub has DOCKER-USER, which Docker keeps first in FORWARD.
    hooks = [c for c in run.calls_of("iptables") if "SWARMCTL-OVERLAY" in c or "SWARMCTL-MASQ" in c]
    assert hooks == [
        ["iptables", "-C", "DOCKER-USER", "-j", "SWARMCTL-OVERLAY"],
        ["iptables", "-t", "nat", "-C", "POSTROUTING", "-j", "SWARMCTL-MASQ"],
    ]


def drop(n: NetworkOnNode) -> list[str]:
    """Block 0 asked for by a sender outside the node's own block."""
    return ["-d", n.reserved, "!", "-s", n.ip_range, "-j", "DROP"]


def test_arp_for_block_0_is_answered_only_to_the_nodes_own_containers(tmp_path: Path) -> None:
    overlays = overlays_of(N1)
    run = run_with_stubs(tmp_path, render("overlay/converge.sh.j2", o=overlays))
    assert run.returncode == 0, run.stderr
    assert run.calls_of("arptables", "-A") == [
        ["arptables", "-A", "SWARMCTL-ARP", "-i", n.shim, "--opcode", "Request", *drop(n)]
        for n in overlays.networks
    ]
    assert run.calls_of("arptables", "-C") == [["arptables", "-C", "INPUT", "-j", "SWARMCTL-ARP"]]


def test_a_node_without_networks_removes_its_routing_rules_and_arp_filter() -> None:
    script = render("overlay/converge.sh.j2", o=overlays_of(N4))
    assert 'iptables -D "$hook" -j SWARMCTL-OVERLAY' in script
    assert "iptables -t nat -D POSTROUTING -j SWARMCTL-MASQ" in script
    assert "for chain in SWARMCTL-VXLAN SWARMCTL-OVERLAY; do" in script  # flushed, deleted
    assert "arptables -D INPUT -j SWARMCTL-ARP" in script
    assert "SWARMCTL-OVERLAY -i" not in script and "arptables -A" not in script
