from pathlib import Path

import pytest

from swarmctl.errors import SwarmctlError
from swarmctl.lab import manager
from swarmctl.lab.layout import LabLayout
from swarmctl.lab.manager import preflight, render_inventory

REPO = Path(__file__).resolve().parents[2]


def test_the_default_lab_is_the_walkthrough_machines() -> None:
    hosts = LabLayout().hosts(3)
    assert [(h.name, h.role, h.address) for h in hosts] == [
        ("manager1", "manager", "10.99.0.11"),
        ("worker1", "worker", "10.99.0.12"),
        ("worker2", "worker", "10.99.0.13"),
    ]


def test_lab_macs_follow_the_address_so_peers_keep_their_arp_entries() -> None:
    assert LabLayout().hosts(1)[0].mac == "02:99:0a:63:00:0b"


def test_every_lab_interface_name_fits_linux_limit() -> None:
    for name in ("lab", "t", "abcdef"):
        for host in LabLayout(name).hosts(200):
            assert len(host.veth) <= 15


def test_labs_with_other_names_get_their_own_prefix_and_subnet() -> None:
    default, other = LabLayout(), LabLayout("t")
    assert other.prefix != default.prefix
    assert not other.subnet.overlaps(default.subnet)
    assert other.dir != default.dir


@pytest.mark.parametrize("name", ["", "Lab", "a;b", "toolongname", "1ab"])
def test_a_bad_lab_name_is_refused(name: str) -> None:
    with pytest.raises(SwarmctlError, match="lab name"):
        LabLayout(name)


def test_host_count_is_bounded() -> None:
    with pytest.raises(SwarmctlError, match="--hosts 0"):
        LabLayout().hosts(0)


def test_the_shipped_lab_inventory_is_what_lab_up_writes() -> None:
    layout = LabLayout()
    assert (REPO / "inventory" / "lab.yml").read_text() == render_inventory(layout, layout.hosts(3))


def test_lab_needs_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(manager.os, "geteuid", lambda: 1000)
    with pytest.raises(SwarmctlError) as error:
        preflight()
    assert (
        str(error.value) == "swarmctl lab needs root (network namespaces, mounts): run it as root"
    )


def test_lab_names_the_missing_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(manager.os, "geteuid", lambda: 0)
    real_which = manager.shutil.which
    monkeypatch.setattr(
        manager.shutil,
        "which",
        lambda prog, path=None: None if prog == "docker-registry" else real_which(prog, path=path),
    )
    with pytest.raises(SwarmctlError) as error:
        preflight()
    assert str(error.value) == (
        "docker-registry is missing: install the Debian package "
        "docker-registry (scripts/setup installs everything the lab needs)"
    )


@pytest.mark.parametrize("url", ["http://10.99.0.11:abc/", "http://10.99.0.11:99999/", "ftp://x/"])
def test_lab_curl_refuses_a_url_it_cannot_send_before_sending_anything(url: str) -> None:
    with pytest.raises(SwarmctlError, match="give an http://ADDRESS"):
        manager.fetch(LabLayout("nolab"), url)
