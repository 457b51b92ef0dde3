"""Overlay networks on real hosts: containers on different hosts share one L2 network."""

import json
import shlex

import pytest

from tests.integration.conftest import Cluster

pytestmark = pytest.mark.lab


def _ip(cluster: Cluster, host: str, container: str, network: str) -> str:
    fmt = "{{(index .NetworkSettings.Networks " + f'"{network}"' + ").IPAddress}}"
    return cluster.lab.ssh(host, f"docker inspect -f '{fmt}' {container}").stdout.strip()


def _web(cluster: Cluster, host: str, name: str, network: str = "ngx_net") -> str:
    cluster.lab.ssh(
        host, f"docker run -d --name {name} --hostname {name} --network {network} nginx >/dev/null"
    )
    return _ip(cluster, host, name, network)


def _from(cluster: Cluster, host: str, command: str, network: str = "ngx_net") -> str:
    return cluster.lab.ssh(
        host, f"docker run --rm --init --network {network} swarmctl/tools sh -c '{command}'"
    ).stdout


def test_containers_on_different_hosts_share_the_overlay_and_a_later_host_joins_it(
    cluster: Cluster,
) -> None:
    cluster("init", "worker1")
    cluster("join", "worker2")
    network_id = cluster("network", "create", "-d", "overlay", "ngx_net").stdout.strip()
    assert len(network_id) == 25 and network_id.isalnum() and network_id.islower()
    on_worker1 = _web(cluster, "worker1", "web-w1")
    on_worker2 = _web(cluster, "worker2", "web-w2")
    assert on_worker1 != on_worker2

    out = _from(
        cluster, "worker2", f"ping -c 2 -W 2 {on_worker1} && wget -qO- http://{on_worker1}/"
    )
    assert "2 packets received" in out and out.strip().endswith("web-w1")
    out = _from(
        cluster, "worker1", f"ping -c 2 -W 2 {on_worker2} && wget -qO- http://{on_worker2}/"
    )
    assert "2 packets received" in out and out.strip().endswith("web-w2")

    cluster("join", "manager1")
    out = _from(
        cluster, "manager1", f"wget -qO- http://{on_worker1}/ && wget -qO- http://{on_worker2}/"
    )
    assert out.split() == ["web-w1", "web-w2"]


def test_the_overlay_carries_full_size_frames_at_its_mtu(cluster: Cluster) -> None:
    cluster("init", "worker1")
    cluster("join", "worker2")
    cluster("network", "create", "ngx_net")
    target = _web(cluster, "worker1", "mtu-w1")
    # 1450 - 20 (IP) - 8 (ICMP) = 1422 bytes of payload: a full frame, no fragments.
    out = _from(cluster, "worker2", f"ip link show eth0 && ping -c 1 -W 2 -s 1422 {target}")
    assert "mtu 1450" in out and "1 packets received" in out


def test_network_inspect_shows_vni_ranges_and_peers(cluster: Cluster) -> None:
    cluster("init", "manager1")
    cluster("join", "--all")
    cluster("network", "create", "--subnet", "10.30.0.0/24", "--label", "team=web", "ngx_net")
    (network,) = json.loads(cluster("network", "inspect", "ngx_net").stdout)
    assert network["VNI"] == 4096
    assert network["IPAM"]["Config"] == [{"Subnet": "10.30.0.0/24", "Gateway": "10.30.0.1"}]
    assert set(network["NodeRanges"]) == {"manager1", "worker1", "worker2"}
    assert len(set(network["NodeRanges"].values())) == 3
    assert {p["Name"] for p in network["Peers"]} == {"manager1", "worker1", "worker2"}
    assert network["Labels"] == {"team": "web"} and network["Pending"] == {}
    listing = cluster("network", "ls").stdout.splitlines()
    assert listing[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    assert listing[1].split()[1:] == ["ngx_net", "overlay", "swarm"]


def test_vxlan_is_accepted_from_cluster_nodes_only(cluster: Cluster) -> None:
    cluster("init", "worker1")
    cluster("join", "worker2")
    cluster("network", "create", "ngx_net")
    rules = cluster.lab.ssh("worker1", "iptables -S SWARMCTL-VXLAN").stdout.splitlines()
    worker2 = cluster.lab.host("worker2").address
    assert rules[1:] == [
        f"-A SWARMCTL-VXLAN -s {worker2}/32 -j ACCEPT",
        "-A SWARMCTL-VXLAN -j DROP",
    ]
    jumps = cluster.lab.ssh("worker1", "iptables -S INPUT").stdout
    assert "-A INPUT -p udp -m udp --dport 4789 -j SWARMCTL-VXLAN" in jumps


def test_a_rebooted_host_loses_its_vxlan_device_and_the_next_apply_restores_it(
    cluster: Cluster,
) -> None:
    cluster("init", "worker1")
    cluster("join", "worker2")
    cluster("network", "create", "ngx_net")
    cluster.lab.lab.kill("worker1")
    cluster.lab.lab.start("worker1")
    devices = cluster.lab.ssh("worker1", "ip -o link show type vxlan; ip -o link show type macvlan")
    assert "swv" not in devices.stdout and "swb" not in devices.stdout
    assert "ngx_net" in cluster.lab.ssh("worker1", "docker network ls").stdout  # Docker's record
    cluster("network", "create", "other")  # any overlay apply converges every node
    hosts_ports = cluster.lab.ssh("worker1", "ip -o link show type macvlan").stdout
    assert hosts_ports.count("swb") == 2 and hosts_ports.count("@swv") == 2
    # Docker's stale network was made again: its VXLAN device lost the mark that says so.
    assert "alias" not in cluster.lab.ssh("worker1", "ip -o link show type vxlan").stdout
    target = _web(cluster, "worker1", "after-reboot")
    assert _from(cluster, "worker2", f"wget -qO- http://{target}/").strip() == "after-reboot"


def test_the_overlay_survives_a_dockerd_restart(cluster: Cluster) -> None:
    cluster("init", "worker1")
    cluster("join", "worker2")
    cluster("network", "create", "ngx_net")
    cluster.lab.lab.docker_restart("worker1")
    target = _web(cluster, "worker1", "after-restart")
    assert _from(cluster, "worker2", f"wget -qO- http://{target}/").strip() == "after-restart"


def test_frames_between_containers_never_meet_the_hosts_bridge_or_firewall(
    cluster: Cluster,
) -> None:
    cluster("init", "worker1")
    cluster("join", "worker2")
    cluster("network", "create", "ngx_net")
    target = _web(cluster, "worker1", "fast-w1")
    assert _from(cluster, "worker2", f"wget -qO- http://{target}/").strip() == "fast-w1"
    for host in ("worker1", "worker2"):
        assert "swb" not in cluster.lab.ssh(host, "ip -o link show type bridge").stdout
        # iptables -L -v -x: two header lines, then each rule with its packet count first.
        routed = cluster.lab.ssh(host, "iptables -L SWARMCTL-OVERLAY -v -x -n").stdout
        assert {int(rule.split()[0]) for rule in routed.splitlines()[2:]} == {0}, host


def test_overlays_are_isolated_from_each_other_and_from_dockers_bridge(cluster: Cluster) -> None:
    cluster("init", "worker1")
    cluster("join", "worker2")
    cluster("network", "create", "ngx_net")
    cluster("network", "create", "other")
    on_ngx = _web(cluster, "worker1", "iso-ngx")
    probe = f"timeout 3 wget -qO- http://{on_ngx}/ || echo unreachable"
    assert _from(cluster, "worker1", probe).strip() == "iso-ngx"
    assert _from(cluster, "worker1", probe, network="other").strip() == "unreachable"
    assert _from(cluster, "worker1", probe, network="bridge").strip() == "unreachable"


def test_a_container_on_an_overlay_reaches_the_underlay_masqueraded(cluster: Cluster) -> None:
    cluster("init", "worker1")
    cluster("join", "worker2")
    cluster("network", "create", "ngx_net")
    cluster.lab.ssh("worker2", "docker run -d --name under --network host nginx >/dev/null")
    worker2 = cluster.lab.host("worker2").address
    assert _from(cluster, "worker1", f"wget -qO- http://{worker2}/").strip() == "worker2"


def test_an_unreachable_node_is_pending_and_set_up_once_it_is_back(cluster: Cluster) -> None:
    cluster("init", "manager1")
    cluster("join", "--all")
    cluster.lab.lab.unplug("worker2")
    try:
        created = cluster("network", "create", "ngx_net", timeout=120, warnings=True)
        assert "worker2" in created.stderr and "will be set up" in created.stderr
        (network,) = json.loads(cluster("network", "inspect", "ngx_net").stdout)
        assert list(network["Pending"]) == ["worker2"]
    finally:
        cluster.lab.lab.plug("worker2")
    cluster("network", "create", "later")
    (network,) = json.loads(cluster("network", "inspect", "ngx_net").stdout)
    assert network["Pending"] == {}
    assert "ngx_net" in cluster.lab.ssh("worker2", "docker network ls --format '{{.Name}}'").stdout


def test_network_rm_leaves_nothing_on_any_host(cluster: Cluster) -> None:
    cluster("init", "manager1")
    cluster("join", "--all")
    cluster("network", "create", "ngx_net")
    target = _web(cluster, "worker1", "rm-w1")
    assert _from(cluster, "worker2", f"wget -qO- http://{target}/").strip() == "rm-w1"
    cluster.lab.ssh("worker1", "docker rm -f rm-w1")
    assert cluster("network", "rm", "ngx_net").stdout.strip() == "ngx_net"
    for host in cluster.lab.hosts:
        state = cluster.lab.ssh(
            host.name,
            "ip -o link show type vxlan; bridge fdb show | grep swv;"
            " docker network ls --format '{{.Name}}';"
            " iptables -S | grep SWARMCTL; iptables -t raw -S | grep SWARMCTL;"
            " ip -o link show type macvlan; iptables -t nat -S | grep SWARMCTL-MASQ;"
            " arptables -S | grep SWARMCTL;"
            " true",
        ).stdout
        assert state.split() == ["bridge", "host", "none"], host.name
    assert cluster("network", "ls", "-q").stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--subnet", "10.0.0.300/24", "n1"], "Error: invalid subnet '10.0.0.300/24'"),
        (["--opt", "mtu=20", "n1"], "Error: mtu 20 is out of range (68-9000)"),
        (
            ["n;rm -rf /"],
            "Error: network name 'n;rm -rf /': use letters, digits, '_' and '-' "
            "(at most 63, starting with a letter or digit)",
        ),
        (["-d", "bridge", "n1"], "Error: --driver 'bridge': only overlay networks are supported"),
    ],
)
def test_bad_network_input_is_one_line_and_changes_nothing(cluster: Cluster, args, message) -> None:
    cluster("init", "manager1")
    before = networks(cluster)
    result = cluster("network", "create", *args, check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == message
    assert networks(cluster) == before


def networks(cluster: Cluster) -> str:
    """Every network's full document."""
    ids = cluster("network", "ls", "-q").stdout.split()
    return cluster("network", "inspect", *ids).stdout if ids else ""


def test_an_overlapping_subnet_and_a_duplicate_name_are_refused(cluster: Cluster) -> None:
    cluster("init", "manager1")
    cluster("network", "create", "--subnet", "10.40.0.0/24", "ngx_net")
    overlap = cluster("network", "create", "--subnet", "10.40.0.0/16", "other", check=False)
    assert (
        overlap.stderr.strip()
        == "Error: subnet 10.40.0.0/16 overlaps network ngx_net (10.40.0.0/24)"
    )
    underlay = cluster("network", "create", "--subnet", "10.99.0.0/16", "other", check=False)
    assert "overlaps the hosts' underlay network" in underlay.stderr
    duplicate = cluster("network", "create", "ngx_net", check=False)
    assert duplicate.stderr.strip() == "Error: network with name ngx_net already exists"


def _vxlan_rx(cluster: Cluster, host: str) -> int:
    (device,) = cluster.lab.ssh(host, "ls /sys/class/net | grep '^swv'").stdout.split()
    return int(cluster.lab.ssh(host, f"cat /sys/class/net/{device}/statistics/rx_packets").stdout)


def test_a_container_cannot_inject_frames_into_a_peers_overlay(cluster: Cluster) -> None:
    cluster("init", "worker1")
    cluster("join", "worker2")
    cluster("network", "create", "ngx_net")
    (network,) = json.loads(cluster("network", "inspect", "ngx_net").stdout)
    vni = network["VNI"].to_bytes(3, "big")
    # VXLAN header with the network's VNI, then a broadcast frame of a local-experimental type.
    frame = bytes([8, 0, 0, 0, *vni, 0]) + b"\xff" * 6 + bytes([2, 0, 0, 0, 0, 1, 0x88, 0xB5])
    frame += b"\0" * 46
    worker2 = cluster.lab.host("worker2").address
    sent = 20
    # The tools image has no UDP client: the host's python3 sends from inside each container's
    # network namespace, so the datagrams leave the way a container's own would.
    send = (
        "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        f"for _ in range({sent}): s.sendto({frame!r}, ({worker2!r}, 4789))"
    )
    before = _vxlan_rx(cluster, "worker2")
    # From the default bridge and from the overlay itself: both are masqueraded to worker1.
    for name, network_opt in (("inject-bridge", ""), ("inject-overlay", "--network ngx_net")):
        cluster.lab.ssh("worker1", f"docker run -d --name {name} {network_opt} nginx >/dev/null")
        pid = cluster.lab.ssh("worker1", f"docker inspect -f '{{{{.State.Pid}}}}' {name}").stdout
        cluster.lab.ssh("worker1", f"nsenter -t {pid.strip()} -n python3 -c {shlex.quote(send)}")
    # Idle links may see a stray frame of their own, never the 2 x 20 injected ones.
    assert _vxlan_rx(cluster, "worker2") - before < sent
    target = _web(cluster, "worker2", "guard-w2")
    assert _from(cluster, "worker1", f"wget -qO- http://{target}/").strip() == "guard-w2"
