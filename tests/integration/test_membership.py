"""init, join and leave on real lab hosts, with the faults a user meets on the way.

Each test has a state file of its own (in tmp_path) and puts back whatever fault it
injects, so the tests run in any order on the one session lab.
"""

import json
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from swarmctl.models import Node
from swarmctl.state import StateStore
from swarmctl.state.repo import Repo
from tests.integration.conftest import RunningLab, interruptible, swarmctl

pytestmark = pytest.mark.lab

WORKERS = ("worker1", "worker2")
ID = re.compile(r"[a-z0-9]{25}")


@dataclass
class Cli:
    """swarmctl against one inventory and a state file of the test's own."""

    inventory: Path
    state: Path

    def __call__(self, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        return swarmctl("-i", str(self.inventory), "--state", str(self.state), *args, check=check)

    def argv(self, *args: str) -> list[str]:
        where = ["-i", str(self.inventory), "--state", str(self.state)]
        return [sys.executable, "-m", "swarmctl", *where, *args]

    def nodes(self) -> dict[str, Node]:
        with StateStore(self.state).read() as db:
            return {n.hostname: n for n in Repo(db).nodes.all()}

    def snapshot(self) -> bytes | None:
        return self.state.read_bytes() if self.state.exists() else None


@pytest.fixture
def cli(lab: RunningLab, tmp_path: Path) -> Cli:
    return Cli(lab.layout.inventory, tmp_path / "cluster.state.json")


@pytest.fixture
def initialized(cli: Cli) -> Cli:
    cli("init", check=True)
    return cli


def lab_cmd(lab: RunningLab, command: str, host: str, *args: str) -> None:
    swarmctl("lab", command, "--lab", lab.layout.name, host, *args, check=True)


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines and all(line.startswith("Error: ") for line in lines), result.stderr
    return [line.removeprefix("Error: ") for line in lines]


def one_error(result: subprocess.CompletedProcess) -> str:
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr
    return lines[0]


def host_key(lab: RunningLab, name: str) -> str:
    return " ".join(
        (lab.host(name).dir / "ssh" / "ssh_host_ed25519_key.pub").read_text().split()[:2]
    )


def inventory_copy(lab: RunningLab, tmp_path: Path, known_hosts: Path | None) -> Path:
    """The lab inventory with another known_hosts file, or none at all."""
    original = str(lab.layout.known_hosts)
    lines = lab.layout.inventory.read_text().splitlines(keepends=True)
    text = "".join(
        line.replace(original, str(known_hosts)) if known_hosts else line
        for line in lines
        if known_hosts or "known_hosts:" not in line
    )
    copy = tmp_path / "inventory.yml"
    copy.write_text(text)
    return copy


# ------------------------------------------------------------------ the happy path


def test_init_and_join_all_give_three_ready_nodes_and_one_leader(cli: Cli, lab: RunningLab):
    init = cli("init", check=True)
    leader_id = re.fullmatch(
        r"Swarm initialized: current node \(([a-z0-9]{25})\) is now a manager\.",
        init.stdout.splitlines()[0],
    )
    assert leader_id
    joined = cli("join", "--all", check=True)
    assert sorted(joined.stdout.splitlines()) == [
        "worker1: This node joined a swarm as a worker.",
        "worker2: This node joined a swarm as a worker.",
    ]
    assert joined.stderr == ""

    header, *rows = cli("node", "ls", check=True).stdout.splitlines()
    assert re.split(r" {2,}", header) == [
        "ID",
        "NAME",
        "MEMBERSHIP",
        "STATUS",
        "AVAILABILITY",
        "MANAGER STATUS",
    ]
    assert header.index("NAME") == 25 + 3  # IDs are 25 characters, columns 3 apart
    table = {row.split()[1]: row.split() for row in rows}
    assert sorted(table) == ["manager1", "worker1", "worker2"]
    assert all(ID.fullmatch(cells[0]) for cells in table.values())
    assert all(cells[2:5] == ["Accepted", "Ready", "Active"] for cells in table.values())
    assert [name for name, cells in table.items() if cells[5:] == ["Leader"]] == ["manager1"]
    assert table["manager1"][0] == leader_id[1]
    assert table["worker1"][5:] == table["worker2"][5:] == []

    ids = cli("node", "ls", "-q", check=True).stdout.split()
    assert ids == [table[name][0] for name in ("manager1", "worker1", "worker2")]
    rows = cli("node", "ls", "--format", "json", check=True).stdout.splitlines()
    assert [json.loads(row)["ID"] for row in rows] == ids


def test_a_joined_node_records_its_facts_and_underlay(initialized: Cli, lab: RunningLab):
    initialized("join", "worker1", check=True)
    [doc] = json.loads(initialized("node", "inspect", "worker1", check=True).stdout)
    worker1 = lab.host("worker1")
    assert doc["Spec"] == {"Labels": {}, "Role": "worker", "Availability": "active"}
    assert doc["Description"]["Underlay"] == {"Interface": "eth0", "Addr": worker1.address}
    assert doc["Status"]["State"] == "ready" and doc["Status"]["Addr"] == worker1.address
    assert doc["Description"]["Engine"]["EngineVersion"]
    assert doc["Description"]["Resources"]["NanoCPUs"] > 0
    pretty = initialized("node", "inspect", "--pretty", "worker1", check=True).stdout
    assert "Hostname:               worker1" in pretty
    info = initialized("info", check=True).stdout
    assert " Nodes: 2\n" in info and " Managers: 1\n" in info
    assert initialized("node", "ps", "worker1", check=True).stdout.splitlines() == [
        "ID   NAME   IMAGE   NODE   DESIRED STATE   CURRENT STATE   ERROR"
    ]


def test_init_with_a_listen_port_records_the_vxlan_port(cli: Cli, lab: RunningLab):
    cli("init", "--listen-addr", f"{lab.host('manager1').address}:4790", check=True)
    assert json.loads(cli("info", "--format", "json", check=True).stdout)["DataPathPort"] == 4790


def test_init_with_a_listen_addr_the_host_lacks_is_one_line(cli: Cli, lab: RunningLab):
    foreign = str(lab.layout.subnet.network_address + 250)
    assert one_error(cli("init", "--listen-addr", foreign)) == (
        f"manager1: --listen-addr {foreign} is not an address of this host"
    )
    assert not cli.state.exists()


def test_dry_run_changes_nothing(initialized: Cli, lab: RunningLab):
    before = initialized.snapshot()
    result = initialized("join", "--all", "--dry-run", check=True)
    for name in WORKERS:
        assert (
            f"{name}: would join as a worker (Debian GNU/Linux 12 (bookworm), kernel "
            in result.stdout
        )
        assert f"overlay via eth0 {lab.host(name).address})" in result.stdout
    assert "  - record the node in the cluster state" in result.stdout
    assert "joined" not in result.stdout
    assert initialized.snapshot() == before


def test_leave_forgets_the_node_and_removes_only_this_clusters_containers(
    initialized: Cli, lab: RunningLab
):
    initialized("join", "worker1", check=True)
    cluster_id = json.loads(initialized("info", "--format", "json", check=True).stdout)["ClusterID"]
    lab.ssh("worker1", "docker pull -q swarmctl/tools >/dev/null")
    ours = lab.ssh(
        "worker1", f"docker create --label swarmctl.cluster.id={cluster_id} swarmctl/tools true"
    ).stdout.strip()
    other = lab.ssh(
        "worker1", "docker create --label swarmctl.cluster.id=someotherclusterid swarmctl/tools"
    ).stdout.strip()
    try:
        result = initialized("leave", "worker1", check=True)
        assert result.stdout.splitlines()[-1] == "worker1: Node left the swarm."
        assert "worker1" not in initialized("node", "ls", check=True).stdout
        assert set(initialized.nodes()) == {"manager1"}
        left = lab.ssh("worker1", "docker ps -aq --no-trunc").stdout.split()
        assert ours not in left and other in left
    finally:
        lab.ssh("worker1", f"docker rm -f {ours} {other} >/dev/null 2>&1; true")


def test_a_node_that_left_can_join_again_with_a_new_id(initialized: Cli):
    initialized("join", "worker1", check=True)
    first = initialized.nodes()["worker1"].id
    initialized("leave", "worker1", check=True)
    initialized("join", "worker1", check=True)
    assert initialized.nodes()["worker1"].id != first


# --------------------------------------------------------------------- bad input


def test_joining_an_unknown_host_is_one_line_and_changes_nothing(initialized: Cli):
    before = initialized.snapshot()
    assert one_error(initialized("join", "worker1", "db7")) == (
        f"{initialized.inventory}: no host named 'db7' (hosts: manager1, worker1, worker2)"
    )
    assert initialized.snapshot() == before


def test_joining_a_member_again_is_one_line_and_changes_nothing(initialized: Cli):
    initialized("join", "worker1", check=True)
    before = initialized.snapshot()
    assert one_error(initialized("join", "worker1")) == (
        "worker1 is already a member of this cluster (as a worker)"
    )
    assert one_error(initialized("join", "manager1")) == (
        "manager1 is already a member of this cluster (as a manager)"
    )
    assert initialized.snapshot() == before


# ------------------------------------------------------------------------ faults


def test_a_stopped_host_fails_alone_and_the_others_join(initialized: Cli, lab: RunningLab):
    lab_cmd(lab, "kill", "worker2")
    try:
        result = initialized("join", "--all")
        assert result.returncode == 1
        assert result.stdout == "worker1: This node joined a swarm as a worker.\n"
        assert one_error(result) == (
            f"worker2 ({lab.host('worker2').address}:22): connection refused"
        )
        assert set(initialized.nodes()) == {"manager1", "worker1"}
    finally:
        lab_cmd(lab, "start", "worker2")
    initialized("join", "--all", check=True)
    assert set(initialized.nodes()) == {"manager1", "worker1", "worker2"}


def test_a_stopped_member_neither_blocks_a_join_nor_leaves_without_force(
    initialized: Cli, lab: RunningLab
):
    initialized("join", "worker2", check=True)
    lab_cmd(lab, "kill", "worker2")
    try:
        joined = initialized("join", "worker1")
        assert joined.returncode == 0, joined.stderr
        assert "worker1: This node joined a swarm as a worker." in joined.stdout
        before = initialized.snapshot()
        assert one_error(initialized("leave", "worker2")) == (
            f"worker2 ({lab.host('worker2').address}:22): connection refused: "
            "use --force to remove worker2 from the cluster anyway"
        )
        assert initialized.snapshot() == before
        forced = initialized("leave", "--force", "worker2", check=True)
        assert forced.stdout.splitlines()[-1] == "worker2: Node left the swarm."
        assert set(initialized.nodes()) == {"manager1", "worker1"}
    finally:
        lab_cmd(lab, "start", "worker2")


def test_a_refused_login_is_one_line_and_leaves_no_state(lab: RunningLab, tmp_path: Path):
    stranger = tmp_path / "stranger_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        lab.layout.inventory.read_text().replace(str(lab.layout.key), str(stranger))
    )
    cli = Cli(inventory, tmp_path / "cluster.state.json")
    message = one_error(cli("init"))
    assert message.startswith(
        f"manager1 ({lab.host('manager1').address}:22): authentication failed for user root "
        f"with key {stranger}"
    )
    assert not cli.state.exists()


def test_a_host_key_that_differs_from_known_hosts_is_refused(lab: RunningLab, tmp_path: Path):
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(
        lab.layout.known_hosts.read_text().replace(
            host_key(lab, "worker1").split()[1], host_key(lab, "worker2").split()[1]
        )
    )
    cli = Cli(inventory_copy(lab, tmp_path, known_hosts), tmp_path / "cluster.state.json")
    cli("init", check=True)
    before = cli.snapshot()
    message = one_error(cli("join", "worker1"))
    assert message.startswith(
        f"worker1 ({lab.host('worker1').address}:22): host key changed (expected ssh-ed25519 "
        "SHA256:"
    )
    assert message.endswith(
        "refusing to connect; if the host was reinstalled, check the new key, remove the old "
        "one from known_hosts or run `swarmctl node trust --forget worker1`, then pass "
        "--accept-new-host-keys"
    )
    assert cli.snapshot() == before


def test_a_malformed_known_hosts_line_is_skipped_with_one_warning(lab: RunningLab, tmp_path: Path):
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(
        "garbage ssh-ed25519 AAAA!!notbase64\n" + lab.layout.known_hosts.read_text()
    )
    cli = Cli(inventory_copy(lab, tmp_path, known_hosts), tmp_path / "cluster.state.json")
    result = cli("init")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "known_hosts" in line]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"Warning: known_hosts {known_hosts} line 1: not a host key")


def test_docker_absent_and_not_installable_is_one_line(initialized: Cli, lab: RunningLab):
    # Whiteouts in an overlay hide the programs in worker1's own mount namespace only.
    hidden = {"/usr/bin": ["docker", "apt-get"], "/usr/sbin": ["dockerd"], "/usr/local/bin": []}
    if Path("/usr/local/bin/docker").exists():
        hidden["/usr/local/bin"].append("docker")
    hide = ["set -e", "mkdir -p /run/hide", "mount -t tmpfs hide /run/hide"]
    for n, (folder, names) in enumerate(hidden.items()):
        hide += [f"mkdir /run/hide/{n}"]
        hide += [f"mknod /run/hide/{n}/{name} c 0 0" for name in names]
        hide += [f"mount -t overlay hide -o lowerdir=/run/hide/{n}:{folder} {folder}"]
    lab_cmd(lab, "exec", "worker1", "\n".join(hide))
    before = initialized.snapshot()
    try:
        # Never let a join run apt-get on the shared root file system: check the hiding first.
        assert lab.ssh("worker1", "command -v docker dockerd apt-get", check=False).stdout == ""
        expected = (
            "worker1: Docker is not installed and swarmctl cannot install it on "
            "Debian GNU/Linux 12 (bookworm): install Docker, then join again"
        )
        assert one_error(initialized("join", "worker1")) == expected
        assert one_error(initialized("join", "worker1", "--dry-run")) == expected
        assert initialized.snapshot() == before
    finally:
        unhide = [f"umount -l {folder}" for folder in hidden] + ["umount -l /run/hide"]
        lab_cmd(lab, "exec", "worker1", "; ".join(unhide) + "; rmdir /run/hide")
    assert lab.ssh("worker1", "command -v docker").stdout.strip()


def test_a_stopped_docker_daemon_is_one_line_naming_the_host(initialized: Cli, lab: RunningLab):
    lab_cmd(
        lab,
        "exec",
        "worker1",
        "pid=$(cat /run/docker.pid); kill $pid; "
        "while kill -0 $pid 2>/dev/null; do sleep 0.05; done",
    )
    before = initialized.snapshot()
    try:
        message = one_error(initialized("join", "worker1"))
        assert message.startswith("worker1: ")
        assert "docker" in message.lower()
        assert initialized.snapshot() == before
    finally:
        lab_cmd(lab, "restart-docker", "worker1")
    initialized("join", "worker1", check=True)


# ------------------------------------------------------------------- interruptions


def assert_whole_records(cli: Cli, lab: RunningLab) -> set[str]:
    """The state loads, and every node in it is a complete record; returns the names."""
    nodes = cli.nodes()
    for name, node in nodes.items():
        assert ID.fullmatch(node.id)
        assert node.address == lab.host(name).address == node.facts.address
        assert node.facts.engine_version and node.facts.iface == "eth0"
    return set(nodes)


@pytest.mark.parametrize("delay", [0.15, 0.3, 0.45, 0.6])
def test_a_killed_join_leaves_none_or_all_of_the_hosts(
    initialized: Cli, lab: RunningLab, delay: float
):
    # Which outcome a delay gives depends on the machine; both are fine, a mix is not.
    join = subprocess.Popen(initialized.argv("join", "--all"), stdout=subprocess.DEVNULL)
    time.sleep(delay)
    join.send_signal(signal.SIGKILL)
    join.wait()
    assert assert_whole_records(initialized, lab) in ({"manager1"}, {"manager1", *WORKERS})
    assert initialized("join", "--all").returncode == 0
    assert assert_whole_records(initialized, lab) == {"manager1", *WORKERS}


def interrupt_mid_join(cli: Cli, lab: RunningLab) -> tuple[subprocess.CompletedProcess, float]:
    """SIGINT a `join --all` while worker1 is provisioned and worker2 cannot be reached."""
    lab_cmd(lab, "unplug", "worker2")  # connecting to it now takes the 5 s connect timeout
    try:
        join = subprocess.Popen(
            cli.argv("join", "--all"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=interruptible,
        )
        time.sleep(1.5)
        assert join.poll() is None
        join.send_signal(signal.SIGINT)
        sent = time.monotonic()
        out, err = join.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        lab_cmd(lab, "plug", "worker2")
    return subprocess.CompletedProcess(join.args, join.returncode, out, err), took


def test_a_join_interrupted_half_way_leaves_the_state_as_before(initialized: Cli, lab: RunningLab):
    before = initialized.snapshot()
    result, _ = interrupt_mid_join(initialized, lab)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "joined" not in result.stdout
    assert initialized.snapshot() == before
    initialized("join", "--all", check=True)
    assert set(initialized.nodes()) == {"manager1", *WORKERS}


def test_a_join_interrupted_half_way_says_so_in_one_line_at_once(initialized: Cli, lab: RunningLab):
    result, took = interrupt_mid_join(initialized, lab)
    message = one_error(result)
    assert "interrupt" in message.lower()
    assert took < 2


# ----------------------------------------------------------- trust on first use


def test_unknown_host_keys_are_trusted_only_when_asked_and_then_held_to(
    lab: RunningLab, tmp_path: Path
):
    cli = Cli(inventory_copy(lab, tmp_path, known_hosts=None), tmp_path / "cluster.state.json")
    refused = one_error(cli("init"))
    assert re.fullmatch(
        rf"manager1 \({lab.host('manager1').address}:22\): host key not known "
        r"\(ssh-ed25519 SHA256:[A-Za-z0-9+/]{43}\): check it, then add it to known_hosts or "
        r"pass --accept-new-host-keys",
        refused,
    )
    assert not cli.state.exists()

    cli("init", "--accept-new-host-keys", check=True)
    before = cli.snapshot()
    lines = error_lines(cli("join", "--all"))
    assert sorted(line.split(" ")[0] for line in lines) == list(WORKERS)
    assert all("host key not known" in line for line in lines)
    assert cli.snapshot() == before

    cli("join", "--all", "--accept-new-host-keys", check=True)
    nodes = cli.nodes()
    assert {name: node.host_key for name, node in nodes.items()} == {
        name: host_key(lab, name) for name in ("manager1", *WORKERS)
    }

    # worker1 "was reinstalled": the key recorded for it no longer matches.
    store = StateStore(cli.state)
    with store.transaction() as db:
        Repo(db).nodes.put(replace(nodes["worker1"], host_key=host_key(lab, "worker2")))
    tampered = cli.snapshot()
    message = one_error(cli("leave", "worker1"))
    assert message.startswith(
        f"worker1 ({lab.host('worker1').address}:22): host key changed (expected ssh-ed25519 "
    )
    assert cli.snapshot() == tampered
    assert "worker1" in cli("node", "ls", check=True).stdout
