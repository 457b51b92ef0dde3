"""Facts parsed from captured facts.sh output, and what joining a host takes (no hosts)."""

from dataclasses import replace

import pytest

from swarmctl.errors import SwarmctlError
from swarmctl.facts import (
    HostFacts,
    JoinPlan,
    parse_facts,
    plan_join,
    to_node_facts,
    underlay,
    underlay_network,
)
from swarmctl.models import NodeFacts

# Captured from a lab host (Debian 12, Docker from docker.io, root login).
DEBIAN_FULL = """\
kernel=6.18.44-fc-v669
arch=x86_64
os=Debian GNU/Linux 12 (bookworm)
os_id=debian
os_like=
cpus=2
memory_kb=24684084
docker_cli=/usr/local/bin/docker
dockerd=/usr/sbin/dockerd
engine=20.10.24+dfsg1
tool=apt-get
tool=systemctl
tool=service
tool=ip
tool=iptables
tool=bridge
addr=lo 127.0.0.1/8
addr=eth0 10.99.245.12/24
addr=docker0 172.17.0.1/16
default_iface=eth0
vxlan=yes
macvlan=yes
iptables=yes
arptables=yes
"""

# The same host with Docker's programs hidden: `command -v` and `docker version` print nothing.
DEBIAN_NO_DOCKER = (
    DEBIAN_FULL.replace("docker_cli=/usr/local/bin/docker", "docker_cli=")
    .replace("dockerd=/usr/sbin/dockerd", "dockerd=")
    .replace("engine=20.10.24+dfsg1", "engine=")
    .replace("addr=docker0 172.17.0.1/16\n", "")
)

# A container-like host: no vxlan or macvlan module, iptables and arptables missing.
NO_FEATURES = (
    DEBIAN_FULL.replace("vxlan=yes", "vxlan=no")
    .replace("macvlan=yes", "macvlan=no")
    .replace("iptables=yes", "iptables=no")
    .replace("arptables=yes", "arptables=no")
)

UBUNTU_NO_DOCKER = """\
kernel=6.8.0-45-generic
arch=aarch64
os=Ubuntu 24.04.1 LTS
os_id=ubuntu
os_like=debian
cpus=4
memory_kb=8000000
docker_cli=
dockerd=
engine=
tool=apt-get
tool=systemctl
tool=ip
tool=iptables
addr=lo 127.0.0.1/8
addr=enp1s0 192.168.1.20/24
default_iface=enp1s0
vxlan=yes
macvlan=yes
iptables=yes
arptables=yes
"""

APT_INSTALL = [
    "sh",
    "-c",
    "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io",
]


def facts(**changes) -> HostFacts:
    return replace(parse_facts(DEBIAN_FULL), **changes)


def no_docker(**changes) -> HostFacts:
    return replace(parse_facts(DEBIAN_NO_DOCKER), **changes)


def error_of(action) -> str:
    with pytest.raises(SwarmctlError) as caught:
        action()
    return str(caught.value)


# ------------------------------------------------------------------------ parse_facts


def test_full_output_parses_into_every_fact() -> None:
    assert parse_facts(DEBIAN_FULL) == HostFacts(
        kernel="6.18.44-fc-v669",
        arch="x86_64",
        os="Debian GNU/Linux 12 (bookworm)",
        os_id="debian",
        os_like="",
        cpus=2,
        memory_bytes=24684084 * 1024,
        docker_cli=True,
        dockerd=True,
        engine="20.10.24+dfsg1",
        tools=frozenset({"apt-get", "systemctl", "service", "ip", "iptables", "bridge"}),
        addresses=(
            ("lo", "127.0.0.1/8"),
            ("eth0", "10.99.245.12/24"),
            ("docker0", "172.17.0.1/16"),
        ),
        default_iface="eth0",
        features={"vxlan": True, "macvlan": True, "iptables": True, "arptables": True},
    )


def test_missing_docker_reads_as_no_cli_no_daemon_no_engine() -> None:
    parsed = parse_facts(DEBIAN_NO_DOCKER)
    assert (parsed.docker_cli, parsed.dockerd, parsed.engine) == (False, False, "")
    assert parsed.os_id == "debian" and "apt-get" in parsed.tools


def test_missing_kernel_features_read_as_false() -> None:
    assert parse_facts(NO_FEATURES).features == {
        "vxlan": False,
        "macvlan": False,
        "iptables": False,
        "arptables": False,
    }


def test_features_never_printed_are_absent_not_true() -> None:
    truncated = DEBIAN_FULL.split("vxlan=")[0]
    assert parse_facts(truncated).features == {}


def test_lines_without_an_equals_sign_are_ignored() -> None:
    noisy = "Welcome to the host!\n\n" + DEBIAN_FULL + "bash: warning: setlocale\n"
    assert parse_facts(noisy) == parse_facts(DEBIAN_FULL)


def test_values_may_contain_equals_signs() -> None:
    assert parse_facts("os=Odd=Linux 1\n").os == "Odd=Linux 1"


def test_garbage_numbers_read_as_zero() -> None:
    parsed = parse_facts("cpus=many\nmemory_kb=\n")
    assert (parsed.cpus, parsed.memory_bytes) == (0, 0)


def test_empty_output_gives_empty_facts() -> None:
    assert parse_facts("") == HostFacts()


def test_node_facts_keep_what_the_state_records() -> None:
    assert to_node_facts(parse_facts(DEBIAN_FULL), "eth0", "10.99.245.12") == NodeFacts(
        os="Debian GNU/Linux 12 (bookworm)",
        kernel="6.18.44-fc-v669",
        arch="x86_64",
        engine_version="20.10.24+dfsg1",
        cpus=2,
        memory_bytes=24684084 * 1024,
        iface="eth0",
        address="10.99.245.12",
        network="10.99.245.0/24",
    )


# --------------------------------------------------------------------------- underlay


def test_underlay_uses_the_inventory_interface() -> None:
    assert underlay(facts(), "worker1", "10.99.245.12", "docker0") == ("docker0", "172.17.0.1")


def test_underlay_refuses_an_inventory_interface_without_ipv4() -> None:
    assert error_of(lambda: underlay(facts(), "worker1", "10.99.245.12", "eth9")) == (
        "worker1: interface 'eth9' has no IPv4 address (interfaces: docker0, eth0, lo)"
    )


def test_underlay_error_says_none_when_the_host_has_no_ipv4_at_all() -> None:
    bare = facts(addresses=(), default_iface="")
    assert error_of(lambda: underlay(bare, "w", "10.0.0.1", "eth0")) == (
        "w: interface 'eth0' has no IPv4 address (interfaces: none)"
    )


def test_underlay_takes_the_interface_holding_the_address_we_reach() -> None:
    two_nics = facts(
        addresses=(("eth0", "192.168.1.5/24"), ("eth1", "10.0.0.5/24")), default_iface="eth0"
    )
    assert underlay(two_nics, "w", "10.0.0.5", None) == ("eth1", "10.0.0.5")


def test_underlay_falls_back_to_the_default_route_for_a_dns_name() -> None:
    assert underlay(facts(), "w", "worker1.example.com", None) == ("eth0", "10.99.245.12")


def test_underlay_refuses_to_guess_without_a_default_route() -> None:
    lost = facts(default_iface="")
    assert error_of(lambda: underlay(lost, "w", "bastion.example.com", None)) == (
        "w: cannot tell which interface carries the overlay: set `iface` for it in the inventory"
    )


def test_underlay_refuses_a_default_route_over_an_interface_without_ipv4() -> None:
    assert "set `iface`" in error_of(
        lambda: underlay(facts(default_iface="wg0"), "w", "name.example", None)
    )


SECONDARY = facts(
    addresses=(("lo", "127.0.0.1/8"), ("eth0", "10.0.0.5/24"), ("eth0", "10.0.0.100/24")),
    default_iface="eth0",
)


def test_underlay_keeps_the_reached_address_when_the_interface_has_a_secondary_one() -> None:
    assert underlay(SECONDARY, "w", "10.0.0.5", None) == ("eth0", "10.0.0.5")


def test_underlay_takes_the_primary_address_of_the_inventory_interface() -> None:
    assert underlay(SECONDARY, "w", "10.0.0.5", "eth0") == ("eth0", "10.0.0.5")


def test_underlay_network_is_the_subnet_of_the_underlay_address() -> None:
    assert underlay_network(facts(), "10.99.245.12") == "10.99.245.0/24"
    assert underlay_network(facts(), "192.0.2.7") == ""


# -------------------------------------------------------------------------- plan_join


def test_a_ready_host_needs_nothing() -> None:
    assert plan_join(facts(), "worker1") == JoinPlan()


def test_an_old_running_engine_is_never_upgraded() -> None:
    assert plan_join(facts(engine="1.13.1"), "worker1").install_docker is None


def test_debian_without_docker_installs_docker_io_and_starts_it_with_systemctl() -> None:
    plan = plan_join(no_docker(), "worker1")
    assert plan == JoinPlan(
        install_docker=APT_INSTALL, start_docker=["systemctl", "enable", "--now", "docker"]
    )


def test_ubuntu_is_recognised_as_the_debian_family() -> None:
    plan = plan_join(parse_facts(UBUNTU_NO_DOCKER), "edge1")
    assert plan.install_docker == APT_INSTALL
    assert plan.problems == ()


def test_a_debian_derivative_named_only_by_id_like_uses_apt() -> None:
    assert plan_join(no_docker(os_id="raspbian", os_like="debian"), "pi").install_docker == (
        APT_INSTALL
    )


def test_fedora_installs_moby_engine_with_dnf() -> None:
    fedora = no_docker(os="Fedora Linux 40", os_id="fedora", tools=frozenset({"dnf", "systemctl"}))
    assert plan_join(fedora, "f1").install_docker == ["dnf", "install", "-y", "moby-engine"]


def test_alpine_installs_with_apk_and_starts_with_service() -> None:
    alpine = no_docker(os="Alpine Linux v3.20", os_id="alpine", tools=frozenset({"apk", "service"}))
    plan = plan_join(alpine, "a1")
    assert plan == JoinPlan(["apk", "add", "docker"], ["service", "docker", "start"])


def test_apt_get_alone_does_not_make_a_host_debian() -> None:
    odd = no_docker(os="Arch Linux", os_id="arch", tools=frozenset({"apt-get", "systemctl"}))
    assert plan_join(odd, "arch1").problems == (
        "arch1: Docker is not installed and swarmctl cannot install it on Arch Linux: "
        "install Docker, then join again",
    )


def test_an_unknown_system_without_docker_is_a_problem_naming_the_host() -> None:
    plan = plan_join(no_docker(os="", os_id="", tools=frozenset({"systemctl"})), "w9")
    assert plan.install_docker is None
    assert plan.problems == (
        "w9: Docker is not installed and swarmctl cannot install it on this system: "
        "install Docker, then join again",
    )


def test_a_cli_without_the_daemon_binary_still_installs() -> None:
    assert plan_join(no_docker(docker_cli=True), "w1").install_docker == APT_INSTALL


def test_a_stopped_daemon_is_started_not_reinstalled() -> None:
    plan = plan_join(facts(engine=""), "worker1")
    assert plan == JoinPlan(start_docker=["systemctl", "enable", "--now", "docker"])


def test_service_starts_the_daemon_where_there_is_no_systemctl() -> None:
    plan = plan_join(facts(engine="", tools=frozenset({"service", "apt-get"})), "w")
    assert plan.start_docker == ["service", "docker", "start"]


def test_a_stopped_daemon_with_nothing_to_start_it_is_a_problem() -> None:
    plan = plan_join(facts(engine="", tools=frozenset({"apt-get"})), "worker1")
    assert plan.problems == (
        "worker1: the Docker daemon is not running and there is no "
        "systemctl or service command to start it",
    )


def test_missing_kernel_features_are_problems_in_a_fixed_order() -> None:
    assert plan_join(parse_facts(NO_FEATURES), "worker1").problems == (
        "worker1: the kernel cannot create vxlan devices",
        "worker1: the kernel cannot create macvlan devices",
        "worker1: iptables does not work (is the package installed?)",
        "worker1: arptables does not work (is the package installed?)",
    )


def test_unknown_features_count_as_missing() -> None:
    assert len(plan_join(facts(features={}), "w").problems) == 4


def test_every_problem_names_the_host() -> None:
    broken = no_docker(features={}, os_id="arch", tools=frozenset())
    problems = plan_join(broken, "edge-7").problems
    assert len(problems) == 5
    assert all(p.startswith("edge-7: ") and "\n" not in p for p in problems)


def test_describe_lists_the_steps_a_dry_run_prints() -> None:
    assert JoinPlan().describe() == [
        "check login and root",
        "read facts",
        "record the node in the cluster state",
    ]
    assert plan_join(facts(engine=""), "w").describe()[2] == (
        "start Docker: systemctl enable --now docker"
    )


def test_describe_shows_the_install_command_exactly_as_it_runs() -> None:
    assert plan_join(no_docker(), "w").describe()[2] == (
        "install Docker: sh -c 'apt-get update -q && DEBIAN_FRONTEND=noninteractive "
        "apt-get install -y -q docker.io'"
    )
