import ipaddress
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarmctl.errors import SwarmctlError
from swarmctl.network import ipam
from swarmctl.network.ipam import (
    VNI_FIRST,
    VNI_LAST,
    allocate_node_range,
    allocate_subnet,
    allocate_vip,
    allocate_vni,
    check_subnet,
    node_range_prefix,
    reserved_range,
    validate_mtu,
    validate_vxlan_port,
)

POOLS = ("10.0.0.0/8",)


def net(cidr: str) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(cidr, strict=False)


def overlapping(a: str, b: str) -> bool:
    return net(a).overlaps(net(b))


# ----------------------------------------------------------------------------- VNIs


def test_the_first_vni_is_4096():
    assert allocate_vni([]) == 4096


def test_allocate_vni_returns_the_lowest_free_value():
    assert allocate_vni([4096, 4097, 4099]) == 4098


def test_allocate_vni_ignores_used_values_outside_the_overlay_range():
    assert allocate_vni([1, 4095, 2**24]) == 4096


def test_successive_vni_allocations_are_unique():
    used: list[int] = []
    for _ in range(20):
        used.append(allocate_vni(used))
    assert len(set(used)) == 20


def test_allocate_vni_fails_when_every_vni_is_used(monkeypatch):
    monkeypatch.setattr(ipam, "VNI_LAST", VNI_FIRST + 2)
    with pytest.raises(SwarmctlError, match=r"^no VXLAN network identifier left \(4096-4098"):
        allocate_vni([4096, 4097, 4098])


def test_the_last_vni_fits_in_24_bits():
    assert VNI_LAST == 0xFFFFFF


@given(st.sets(st.integers(min_value=0, max_value=VNI_FIRST + 300)))
def test_allocate_vni_never_returns_a_used_value(used):
    vni = allocate_vni(used)
    assert vni not in used
    assert VNI_FIRST <= vni <= VNI_LAST


# -------------------------------------------------------------------------- subnets


def test_the_first_subnet_is_the_start_of_the_pool():
    assert allocate_subnet(POOLS, 24, [], []) == "10.0.0.0/24"


def test_allocate_subnet_skips_taken_subnets():
    assert allocate_subnet(POOLS, 24, ["10.0.0.0/24", "10.0.1.0/24"], []) == "10.0.2.0/24"


def test_allocate_subnet_skips_past_a_taken_subnet_larger_than_the_size():
    assert allocate_subnet(POOLS, 24, ["10.0.0.0/16"], []) == "10.1.0.0/24"


def test_allocate_subnet_fills_a_gap_between_taken_subnets():
    assert allocate_subnet(POOLS, 24, ["10.0.0.0/24", "10.0.2.0/24"], []) == "10.0.1.0/24"


def test_allocate_subnet_avoids_the_hosts_underlay_network_given_as_an_address():
    assert allocate_subnet(POOLS, 24, [], ["10.0.0.5/24"]) == "10.0.1.0/24"


def test_allocate_subnet_ignores_ipv6_addresses_to_avoid():
    assert allocate_subnet(POOLS, 24, [], ["fd00::5/64"]) == "10.0.0.0/24"


def test_allocate_subnet_avoids_dockers_default_bridge_even_when_not_told():
    assert allocate_subnet(("172.16.0.0/12",), 24, ["172.16.0.0/16"], []) == "172.18.0.0/24"


def test_allocate_subnet_uses_the_pools_in_order():
    assert allocate_subnet(("192.168.0.0/16", "10.0.0.0/8"), 24, [], []) == "192.168.0.0/24"


def test_allocate_subnet_moves_to_the_next_pool_when_one_is_full():
    taken = ["192.168.0.0/24", "192.168.1.0/24"]
    assert allocate_subnet(("192.168.0.0/23", "10.0.0.0/8"), 24, taken, []) == "10.0.0.0/24"


def test_allocate_subnet_skips_a_pool_smaller_than_the_size():
    assert allocate_subnet(("192.168.0.0/26", "10.0.0.0/8"), 24, [], []) == "10.0.0.0/24"


def test_allocate_subnet_names_the_pools_when_they_are_exhausted():
    with pytest.raises(SwarmctlError) as error:
        allocate_subnet(("192.168.0.0/23", "192.168.2.0/24"), 24, ["192.168.0.0/22"], [])
    assert str(error.value) == (
        "address pools 192.168.0.0/23, 192.168.2.0/24 are exhausted "
        "(no free /24 subnet left; remove unused networks or pass --subnet)"
    )


def test_allocate_subnet_refuses_a_size_smaller_than_a_28():
    with pytest.raises(SwarmctlError, match=r"^subnet size /29 is out of range \(/1-/28\)$"):
        allocate_subnet(POOLS, 29, [], [])


def test_allocate_subnet_finds_the_first_gap_after_a_thousand_subnets_taken():
    taken = [f"10.{i // 256}.{i % 256}.0/24" for i in range(1000)]
    assert allocate_subnet(POOLS, 24, taken, ["10.99.0.0/24"]) == "10.3.232.0/24"


subnets_of_10_0 = st.builds(
    lambda octet, prefix: str(net(f"10.0.{octet}.0/{prefix}")),
    st.integers(0, 255),
    st.integers(16, 28),
)


def first_free_by_brute_force(pool: str, size: int, conflicts: list[str]) -> str | None:
    spans = [(int(net(c).network_address), int(net(c).broadcast_address)) for c in conflicts]
    for candidate in net(pool).subnets(new_prefix=size):
        first, last = int(candidate.network_address), int(candidate.broadcast_address)
        if all(last < start or first > end for start, end in spans):
            return str(candidate)
    return None


@given(
    taken=st.lists(subnets_of_10_0, max_size=30),
    avoid=st.lists(subnets_of_10_0, max_size=5),
    size=st.integers(20, 28),
)
def test_allocate_subnet_returns_the_first_subnet_clear_of_taken_and_avoided_ones(
    taken, avoid, size
):
    expected = first_free_by_brute_force("10.0.0.0/16", size, taken + avoid)
    if expected is None:
        with pytest.raises(SwarmctlError, match="exhausted"):
            allocate_subnet(("10.0.0.0/16",), size, taken, avoid)
    else:
        subnet = allocate_subnet(("10.0.0.0/16",), size, taken, avoid)
        assert subnet == expected
        assert not any(overlapping(subnet, other) for other in taken + avoid)


# ------------------------------------------------------------------- check_subnet


def refused(subnet, gateway=None, taken=None, avoid=()):
    with pytest.raises(SwarmctlError) as error:
        check_subnet(subnet, gateway, taken or {}, avoid)
    return str(error.value)


def test_check_subnet_defaults_the_gateway_to_the_first_host_address():
    assert check_subnet("10.0.1.0/24", None, {}, []) == ("10.0.1.0/24", "10.0.1.1")


def test_check_subnet_keeps_a_given_gateway():
    assert check_subnet("10.0.1.0/24", "10.0.1.254", {}, []) == ("10.0.1.0/24", "10.0.1.254")


def test_check_subnet_refuses_an_invalid_address():
    assert refused("10.0.0.300/24") == "invalid subnet '10.0.0.300/24'"


def test_check_subnet_refuses_an_address_without_a_prefix():
    assert refused("10.0.0.0") == "invalid subnet '10.0.0.0'"


def test_check_subnet_refuses_host_bits_and_suggests_the_network():
    assert refused("10.0.1.5/24") == (
        "subnet 10.0.1.5/24 has host bits set (did you mean 10.0.1.0/24?)"
    )


def test_check_subnet_refuses_ipv6():
    assert refused("fd00::/64") == "only IPv4 subnets are supported"


def test_check_subnet_refuses_a_subnet_smaller_than_a_28():
    assert refused("10.0.0.0/30") == "subnet 10.0.0.0/30 is too small (use /28 or larger)"


def test_check_subnet_accepts_a_28():
    assert check_subnet("10.0.0.16/28", None, {}, []) == ("10.0.0.16/28", "10.0.0.17")


def test_check_subnet_refuses_an_overlap_with_another_network():
    taken = {"web": "10.1.0.0/24", "ngx_net": "10.0.0.0/16"}
    assert refused("10.0.0.0/24", taken=taken) == (
        "subnet 10.0.0.0/24 overlaps network ngx_net (10.0.0.0/16)"
    )


def test_check_subnet_refuses_an_overlap_with_the_underlay():
    assert refused("10.99.0.0/16", avoid=["10.99.0.0/24"]) == (
        "subnet 10.99.0.0/16 overlaps the hosts' underlay network 10.99.0.0/24"
    )


def test_check_subnet_refuses_an_overlap_with_dockers_default_bridge():
    assert refused("172.17.5.0/24") == (
        "subnet 172.17.5.0/24 overlaps Docker's default bridge network 172.17.0.0/16"
    )


def test_check_subnet_refuses_the_loopback_range():
    assert refused("127.0.0.0/24") == "subnet 127.0.0.0/24 overlaps the loopback range 127.0.0.0/8"


def test_check_subnet_refuses_a_gateway_outside_the_subnet():
    assert refused("10.0.0.0/24", "10.0.1.1") == "gateway 10.0.1.1 is not in subnet 10.0.0.0/24"


def test_check_subnet_refuses_an_invalid_gateway():
    assert refused("10.0.0.0/24", "10.0.0.256") == "invalid gateway '10.0.0.256'"


def test_check_subnet_refuses_the_network_address_as_gateway():
    assert refused("10.0.0.0/24", "10.0.0.0") == (
        "gateway 10.0.0.0 is the network address of subnet 10.0.0.0/24"
    )


def test_check_subnet_refuses_the_broadcast_address_as_gateway():
    assert refused("10.0.0.0/24", "10.0.0.255") == (
        "gateway 10.0.0.255 is the broadcast address of subnet 10.0.0.0/24"
    )


# ---------------------------------------------------------------------- node ranges


@pytest.mark.parametrize(
    ("subnet", "prefix"),
    [("10.0.0.0/8", 16), ("10.0.0.0/16", 24), ("10.0.0.0/20", 28), ("10.0.0.0/24", 28)],
)
def test_large_subnets_get_blocks_8_bits_longer_but_no_smaller_than_a_28(subnet, prefix):
    assert node_range_prefix(subnet) == prefix


@pytest.mark.parametrize(
    ("subnet", "prefix"),
    [("10.0.0.0/26", 28), ("10.0.0.0/27", 29), ("10.0.0.0/28", 30)],
)
def test_subnets_smaller_than_a_26_are_cut_in_four_blocks(subnet, prefix):
    assert node_range_prefix(subnet) == prefix


def test_the_reserved_range_is_block_zero():
    assert reserved_range("10.0.0.0/24") == "10.0.0.0/28"
    assert reserved_range("10.1.0.0/16") == "10.1.0.0/24"


def test_the_first_node_gets_the_block_after_block_zero():
    assert allocate_node_range("10.0.0.0/24", "10.0.0.1", []) == "10.0.0.16/28"


def test_the_next_node_skips_blocks_in_use():
    taken = ["10.0.0.16/28", "10.0.0.32/28"]
    assert allocate_node_range("10.0.0.0/24", "10.0.0.1", taken) == "10.0.0.48/28"


def test_a_block_freed_by_a_node_is_handed_out_again():
    taken = ["10.0.0.16/28", "10.0.0.48/28"]
    assert allocate_node_range("10.0.0.0/24", "10.0.0.1", taken) == "10.0.0.32/28"


def test_a_taken_range_of_another_size_blocks_every_block_it_overlaps():
    taken = ["10.0.0.16/28", "10.0.0.32/27"]
    assert allocate_node_range("10.0.0.0/24", "10.0.0.1", taken) == "10.0.0.64/28"


def test_the_block_holding_a_user_given_gateway_is_never_handed_out():
    taken = [f"10.0.0.{16 * i}/28" for i in range(1, 12)]
    assert allocate_node_range("10.0.0.0/24", "10.0.0.200", taken) == "10.0.0.208/28"


def test_the_last_block_with_the_broadcast_address_is_handed_out():
    taken = [f"10.0.0.{16 * i}/28" for i in range(1, 15)]
    assert allocate_node_range("10.0.0.0/24", "10.0.0.1", taken) == "10.0.0.240/28"


def test_allocate_node_range_says_how_many_nodes_use_the_subnet_when_full():
    taken = [f"10.0.0.{16 * i}/28" for i in range(1, 16)]
    with pytest.raises(SwarmctlError) as error:
        allocate_node_range("10.0.0.0/24", "10.0.0.1", taken)
    assert str(error.value) == (
        "network subnet 10.0.0.0/24 has no address range left for another node "
        "(15 nodes use it; create the network with a larger --subnet)"
    )


def test_a_28_subnet_serves_three_nodes():
    taken: list[str] = []
    for _ in range(3):
        taken.append(allocate_node_range("10.0.0.16/28", "10.0.0.17", taken))
    assert taken == ["10.0.0.20/30", "10.0.0.24/30", "10.0.0.28/30"]
    with pytest.raises(SwarmctlError, match="no address range left"):
        allocate_node_range("10.0.0.16/28", "10.0.0.17", taken)


@given(
    subnet=st.builds(lambda p: str(net(f"10.8.0.0/{p}")), st.integers(16, 28)),
    gateway_offset=st.integers(min_value=1),
    nodes=st.integers(1, 64),
)
def test_node_ranges_never_overlap_and_stay_in_the_subnet_clear_of_the_gateway(
    subnet, gateway_offset, nodes
):
    network = net(subnet)
    gateway = str(network.network_address + 1 + gateway_offset % (network.num_addresses - 2))
    ranges: list[str] = []
    for _ in range(nodes):
        try:
            ranges.append(allocate_node_range(subnet, gateway, ranges))
        except SwarmctlError:
            break
    prefix = node_range_prefix(subnet)
    blocks = 1 << (prefix - network.prefixlen)
    kept_back = {network.network_address, net(f"{gateway}/{prefix}").network_address}
    assert len(ranges) == min(nodes, blocks - len(kept_back))
    for block in ranges:
        assert net(block).subnet_of(network)
        assert ipaddress.IPv4Address(gateway) not in net(block)
        assert network.network_address not in net(block)
    ordered = sorted(net(block) for block in ranges)
    assert not any(a.overlaps(b) for a, b in itertools.pairwise(ordered))


# ------------------------------------------------------------------------ virtual IPs


def test_the_first_virtual_ip_follows_the_gateway():
    assert allocate_vip("10.0.0.0/24", "10.0.0.1", []) == "10.0.0.2"


def test_allocate_vip_skips_taken_addresses_given_with_or_without_a_prefix():
    assert allocate_vip("10.0.0.0/24", "10.0.0.1", ["10.0.0.2/24", "10.0.0.3"]) == "10.0.0.4"


def test_allocate_vip_uses_the_usual_gateway_address_when_the_gateway_is_elsewhere():
    assert allocate_vip("10.0.0.0/24", "10.0.0.200", []) == "10.0.0.1"


def test_allocate_vip_fails_when_block_zero_is_full():
    taken = [f"10.0.0.{i}" for i in range(2, 16)]
    with pytest.raises(SwarmctlError) as error:
        allocate_vip("10.0.0.0/24", "10.0.0.1", taken)
    assert str(error.value) == (
        "network subnet 10.0.0.0/24 has no virtual IP left "
        "(14 in use in 10.0.0.0/28; create the network with a larger --subnet)"
    )


# ---------------------------------------------------------------------- other knobs


def test_validate_mtu_returns_a_valid_mtu():
    assert validate_mtu(1450) == 1450


def test_validate_mtu_refuses_a_value_below_68():
    with pytest.raises(SwarmctlError, match=r"^mtu 20 is out of range \(68-9000\)$"):
        validate_mtu(20)


def test_validate_mtu_refuses_a_value_above_9000():
    with pytest.raises(SwarmctlError, match=r"^mtu 9001 is out of range \(68-9000\)$"):
        validate_mtu(9001)


def test_validate_vxlan_port_accepts_a_number_given_as_text():
    assert validate_vxlan_port("4789") == 4789


def test_validate_vxlan_port_refuses_port_zero():
    with pytest.raises(SwarmctlError, match=r"^vxlan port 0 is out of range \(1-65535\)$"):
        validate_vxlan_port(0)


def test_validate_vxlan_port_refuses_text_that_is_not_a_number():
    with pytest.raises(SwarmctlError, match=r"^vxlan port 'vxlan' is not an integer$"):
        validate_vxlan_port("vxlan")


def test_validate_vxlan_port_refuses_a_boolean():
    with pytest.raises(SwarmctlError, match="is not an integer"):
        validate_vxlan_port(True)
