"""The lab itself: real hosts with their own sshd and dockerd, a registry, and faults."""

import json
import os
import shlex
import subprocess
import time
from pathlib import Path

import paramiko
import pytest

from swarmctl import netns
from swarmctl.lab.layout import LabLayout
from swarmctl.lab.manager import Lab
from tests.integration.conftest import RunningLab, swarmctl

pytestmark = pytest.mark.lab


def _server_key(lab: RunningLab, address: str) -> paramiko.PKey:
    sock = netns.connect(address, 22, netns=lab.layout.ctl_netns, timeout=5)
    transport = paramiko.Transport(sock)
    try:
        transport.start_client(timeout=5)
        return transport.get_remote_server_key()
    finally:
        transport.close()


def test_every_host_answers_ssh_with_its_own_host_key(lab: RunningLab) -> None:
    seen = set()
    for host in lab.hosts:
        key = _server_key(lab, host.address)
        expected = (host.dir / "ssh" / "ssh_host_ed25519_key.pub").read_text().split()[1]
        assert key.get_base64() == expected
        seen.add(key.get_base64())
    assert len(seen) == len(lab.hosts)


def test_each_host_runs_its_own_docker_daemon(lab: RunningLab) -> None:
    infos = [
        json.loads(lab.ssh(h.name, "docker info --format '{{json .}}'").stdout) for h in lab.hosts
    ]
    assert len({info["ID"] for info in infos}) == len(lab.hosts)
    assert [info["Name"] for info in infos] == [h.name for h in lab.hosts]
    assert [info["DockerRootDir"] for info in infos] == [str(h.dir / "docker") for h in lab.hosts]


def test_hosts_pull_the_walkthrough_image_from_the_lab_registry_and_run_it(lab: RunningLab) -> None:
    for host in lab.hosts:
        lab.ssh(host.name, "docker rmi -f nginx >/dev/null 2>&1; true")
        pulled = lab.ssh(host.name, "docker pull nginx")
        assert "Pulling from library/nginx" in pulled.stdout
        digests = lab.ssh(host.name, "docker image inspect -f '{{json .RepoDigests}}' nginx")
        assert "nginx@sha256:" in digests.stdout
        hostname = lab.ssh(
            host.name,
            "docker run --rm --hostname replica-x nginx "
            "sh -c 'nginx && wget -qO- http://127.0.0.1/'",
        )
        assert hostname.stdout.strip() == "replica-x"


def test_two_hosts_reach_each_other_over_the_lab_network(lab: RunningLab) -> None:
    worker1, worker2 = lab.host("worker1"), lab.host("worker2")
    lab.ssh(
        "worker2",
        "docker rm -f lab-web >/dev/null 2>&1; "
        "docker run -d --name lab-web --hostname on-worker2 -p 8080:80 nginx",
    )
    try:
        answer = lab.ssh(
            "worker1",
            "docker run --rm --init --network host swarmctl/tools "
            f"timeout 5 wget -qO- http://{worker2.address}:8080/",
        )
        assert answer.stdout.strip() == "on-worker2"
        ping = lab.ssh(
            "worker2", f"docker run --rm swarmctl/tools ping -c 1 -W 2 {worker1.address}"
        )
        assert "1 packets received" in ping.stdout
    finally:
        lab.ssh("worker2", "docker rm -f lab-web")


def test_a_lab_host_cannot_reach_outside_the_lab(lab: RunningLab) -> None:
    # A public address: the switch forwards nothing, so this can only fail, fast.
    result = lab.ssh("worker1", "timeout 3 bash -c 'echo > /dev/tcp/192.0.2.1/80'", check=False)
    assert result.returncode != 0
    routes = subprocess.run(
        ["ip", "route", "get", lab.host("worker1").address], capture_output=True, text=True
    ).stdout
    # The root namespace has no link into the lab: swarmctl never sends from there.
    assert not any(name.startswith(lab.layout.prefix) for name in _root_links())
    assert lab.layout.prefix not in routes


def _root_links() -> list[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]


def _connect_error(lab: RunningLab, address: str, timeout: float) -> tuple[str, float]:
    started = time.monotonic()
    try:
        netns.connect(address, 22, netns=lab.layout.ctl_netns, timeout=timeout).close()
        outcome = "connected"
    except ConnectionRefusedError:
        outcome = "refused"
    except TimeoutError:
        outcome = "timeout"
    except OSError as exc:
        outcome = f"error {exc.errno}"
    return outcome, time.monotonic() - started


def test_a_killed_host_refuses_connections_and_boots_again_with_its_data(lab: RunningLab) -> None:
    worker2 = lab.host("worker2")
    lab.ssh("worker2", "docker pull swarmctl/tools >/dev/null")
    lab.ssh("worker2", "docker run -d --name survivor --restart always swarmctl/tools sleep 1d")
    swarmctl("lab", "kill", "worker2", env=_env(lab), check=True)
    assert _connect_error(lab, worker2.address, 2)[0] == "refused"
    assert not lab.lab._running(worker2)
    swarmctl("lab", "start", "worker2", env=_env(lab), check=True)
    ps = lab.ssh("worker2", "docker ps --format '{{.Names}}'")
    assert "survivor" in ps.stdout
    lab.ssh("worker2", "docker rm -f survivor")


# One DNS query sent to the switch, the hosts' resolver, which turns every query away
# (ICMP port unreachable): what docker's lookup of a registry's name meets on a node.
DNS_QUERY = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.connect((sys.argv[1], 53))
s.send(bytes.fromhex("123401000001000000000000076578616d706c6503636f6d0000010001"))
try:
    s.recv(512)
    print("answered")
except ConnectionRefusedError:
    print("refused")
except TimeoutError:
    print("timeout")
"""


def test_a_host_reboot_leaves_the_others_resolver_answering(lab: RunningLab) -> None:
    # The switch keeps its MAC when a host's cable is made anew: left to the bridge, it
    # changed, and the other hosts' queries went unanswered until their ARP entries aged
    # (~45 s in which every docker lookup of a registry waited out 5 s timeouts).
    def switch_mac() -> str:
        argv = ["ip", "-j", "-n", lab.layout.switch_netns, "link", "show", "br0"]
        return json.loads(subprocess.run(argv, capture_output=True, check=True).stdout)[0][
            "address"
        ]

    ask = f"python3 -c {shlex.quote(DNS_QUERY)} {lab.layout.gateway}"
    assert (switch_mac(), lab.ssh("manager1", ask).stdout.strip()) == (
        lab.layout.gateway_mac,
        "refused",
    )
    lab.lab.kill("worker2")
    lab.lab.start("worker2")
    assert switch_mac() == lab.layout.gateway_mac
    assert [lab.ssh("manager1", ask).stdout.strip() for _ in range(3)] == ["refused"] * 3


def test_an_unplugged_host_times_out_and_keeps_running_until_plugged(lab: RunningLab) -> None:
    worker1 = lab.host("worker1")
    swarmctl("lab", "unplug", "worker1", env=_env(lab), check=True)
    try:
        outcome, _ = _connect_error(lab, worker1.address, 1)
        assert outcome in ("timeout", "error 113")  # 113: no route to host
        assert lab.lab._running(worker1)
    finally:
        swarmctl("lab", "plug", "worker1", env=_env(lab), check=True)
    assert _connect_error(lab, worker1.address, 5)[0] == "connected"


def test_a_powered_off_host_times_out_then_starts_again(lab: RunningLab) -> None:
    worker1 = lab.host("worker1")
    swarmctl("lab", "off", "worker1", env=_env(lab), check=True)
    assert not lab.lab._running(worker1)
    assert _connect_error(lab, worker1.address, 1)[0] in ("timeout", "error 113")
    swarmctl("lab", "start", "worker1", env=_env(lab), check=True)
    assert lab.ssh("worker1", "hostname").stdout.strip() == "worker1"


def test_restarting_docker_gives_a_new_daemon_process(lab: RunningLab) -> None:
    before = lab.ssh("manager1", "cat /run/docker.pid").stdout.strip()
    swarmctl("lab", "restart-docker", "manager1", env=_env(lab), check=True)
    after = lab.ssh("manager1", "cat /run/docker.pid").stdout.strip()
    assert before != after
    assert lab.ssh("manager1", "docker info --format '{{.Name}}'").stdout.strip() == "manager1"


def test_lab_exec_runs_inside_the_host(lab: RunningLab) -> None:
    result = swarmctl(
        "lab", "exec", "worker1", "hostname && ip -o -4 addr show eth0", env=_env(lab), check=True
    )
    assert result.stdout.startswith("worker1\n")
    assert lab.host("worker1").address in result.stdout


def test_lab_up_twice_changes_nothing(lab: RunningLab) -> None:
    pids = [(h.dir / "init.pid").read_text() for h in lab.hosts]
    swarmctl("lab", "up", env=_env(lab), check=True)
    assert [(h.dir / "init.pid").read_text() for h in lab.hosts] == pids


def test_the_lab_inventory_lists_every_host(lab: RunningLab) -> None:
    text = lab.layout.inventory.read_text()
    for host in lab.hosts:
        assert f"{host.name}:\n" in text and host.address in text
    assert f"netns: {lab.layout.ctl_netns}" in text


def test_unknown_lab_host_is_one_clear_line(lab: RunningLab) -> None:
    result = swarmctl("lab", "kill", "worker9", env=_env(lab))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "Error: lab host 'worker9' does not exist (hosts: manager1, worker1, worker2)"
    )


def _env(lab: RunningLab) -> dict:
    return {**os.environ, "SWARMCTL_LAB": lab.layout.name}


# ---- a second, short-lived lab for up/down itself -------------------------------------


def _leftovers(layout: LabLayout) -> list[str]:
    found = []
    found += [
        n
        for n in subprocess.run(
            ["ip", "netns", "list"], capture_output=True, text=True
        ).stdout.split()
        if n.startswith(layout.prefix)
    ]
    found += [name for name in _root_links() if name.startswith(layout.prefix)]
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if str(layout.dir).encode() in cmdline:
                found.append(f"process {pid}")
    mounts = Path("/proc/self/mountinfo").read_text()
    if str(layout.dir) in mounts:
        found.append("mount")
    found += [str(p) for p in Path("/sys/fs/cgroup").glob(f"*/{layout.prefix}-*")]
    if layout.dir.exists():
        found.append(str(layout.dir))
    return found


def test_lab_down_leaves_nothing_behind_even_after_a_half_built_up() -> None:
    layout = LabLayout("t2")
    lab = Lab(layout, say=lambda _: None)
    lab.down()
    subprocess.run(["ip", "netns", "add", f"{layout.prefix}-net"], check=True)
    refused = swarmctl("lab", "up", "--hosts", "2", "--lab", "t2")
    assert refused.returncode == 1
    assert "half-built" in refused.stderr and "swarmctl lab down" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    lab.down()
    lab.up(2)
    subprocess.run(
        lab.ssh_argv("worker1", ["docker run -d -p 80:80 nginx"]), check=True, capture_output=True
    )
    assert _leftovers(layout)
    swarmctl("lab", "down", "--lab", "t2", check=True)
    assert _leftovers(layout) == []
