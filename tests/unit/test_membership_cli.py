"""The membership commands as a user runs them, on a state file built here (no hosts).

Every command runs in a subprocess (`python -m swarmctl`), so exit codes, stderr lines
and the absence of tracebacks are what a shell would see.
"""

import json
import os
import re
import subprocess
import sys
from contextlib import contextmanager, suppress
from dataclasses import replace
from pathlib import Path

import pytest

from swarmctl import membership
from swarmctl.commands import steps
from swarmctl.errors import SwarmctlError
from swarmctl.facts import JoinPlan
from swarmctl.inventory import load_inventory
from swarmctl.models import Availability, Cluster, Network, Node, NodeFacts, NodeState, Role
from swarmctl.network.overlay import assign_ranges
from swarmctl.provision import Provisioned
from swarmctl.state import StateStore, storage
from swarmctl.state.repo import Repo
from swarmctl.transport.fake import FakeHosts
from swarmctl.transport.ssh import Trust

NOW = "2026-01-02T03:04:05.000+00:00"
CLUSTER = Cluster(id="c" * 25, created_at=NOW)
FACTS = NodeFacts(
    os="Debian GNU/Linux 12 (bookworm)",
    kernel="6.1.0",
    arch="x86_64",
    engine_version="24.0.5",
    cpus=2,
    memory_bytes=4 * 2**30,
    iface="eth0",
)


def node(id: str, hostname: str, role: Role = Role.WORKER, **changes) -> Node:
    address = f"10.0.0.{len(hostname) + ord(hostname[-1]) % 50}"
    return replace(
        Node(
            id=id,
            hostname=hostname,
            role=role,
            address=address,
            created_at=NOW,
            updated_at=NOW,
            facts=replace(FACTS, address=address),
            last_seen=NOW,
        ),
        **changes,
    )


LEADER = node("l" * 24 + "1", "manager1", Role.MANAGER, leader=True)
MANAGER2 = node("m" * 24 + "2", "manager2", Role.MANAGER)
WORKER1 = node("w" * 24 + "1", "worker1", labels={"zone": "a"})
WORKER2 = node("w" * 24 + "2", "worker2", availability=Availability.DRAIN)
NODES = [WORKER2, LEADER, WORKER1, MANAGER2]  # stored out of order on purpose


def make_state(path: Path, nodes: list[Node] = NODES, cluster: Cluster | None = CLUSTER) -> Path:
    store = StateStore(path)
    store.create()
    with store.transaction() as db:
        repo = Repo(db)
        if cluster:
            repo.set_cluster(cluster)
        for item in nodes:
            repo.nodes.put(item)
    return path


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return make_state(tmp_path / "cluster.state.json")


def swarmctl(*args: str, cwd: Path | None = None, env: dict | None = None):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SWARMCTL_")}
    return subprocess.run(
        [sys.executable, "-m", "swarmctl", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**clean, **(env or {})},
        timeout=60,
    )


def ok(*args: str, **kwargs) -> str:
    result = swarmctl(*args, **kwargs)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def one_error(result: subprocess.CompletedProcess) -> str:
    """The single stderr line of a failed command, without its "Error: " prefix."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    return lines[0].removeprefix("Error: ")


def stored_nodes(path: Path) -> dict[str, Node]:
    with StateStore(path).read() as db:
        return {n.hostname: n for n in Repo(db).nodes.all()}


# -------------------------------------------------------------------------- node ls


def test_node_ls_prints_docker_columns_sorted_by_name(state: Path) -> None:
    assert ok("--state", str(state), "node", "ls").splitlines() == [
        "ID                          NAME       MEMBERSHIP   STATUS   AVAILABILITY   "
        "MANAGER STATUS",
        f"{LEADER.id}   manager1   Accepted     Ready    Active         Leader",
        f"{MANAGER2.id}   manager2   Accepted     Ready    Active         Reachable",
        f"{WORKER1.id}   worker1    Accepted     Ready    Active",
        f"{WORKER2.id}   worker2    Accepted     Ready    Drain",
    ]


def test_node_ls_shows_a_down_node_as_down(tmp_path: Path) -> None:
    path = make_state(tmp_path / "s.json", [LEADER, replace(WORKER1, state=NodeState.DOWN)])
    rows = ok("--state", str(path), "node", "ls").splitlines()
    assert rows[2].split()[1:5] == ["worker1", "Accepted", "Down", "Active"]


def test_node_ls_quiet_prints_only_ids(state: Path) -> None:
    ids = ok("--state", str(state), "node", "ls", "-q").split()
    assert ids == [LEADER.id, MANAGER2.id, WORKER1.id, WORKER2.id]
    assert ok("--state", str(state), "node", "ls", "--quiet").split() == ids


def test_node_ls_json_prints_one_docker_row_a_line(state: Path) -> None:
    lines = ok("--state", str(state), "node", "ls", "--format", "json").splitlines()
    rows = [json.loads(line) for line in lines]
    assert [r["Hostname"] for r in rows] == ["manager1", "manager2", "worker1", "worker2"]
    assert rows[0] == {
        "Availability": "Active",
        "EngineVersion": "24.0.5",
        "Hostname": "manager1",
        "ID": rows[0]["ID"],
        "ManagerStatus": "Leader",
        "Self": True,
        "Status": "Ready",
        "TLSStatus": "Ready",
    }
    assert rows[2]["ManagerStatus"] == "" and rows[2]["Self"] is False


def test_node_inspect_keeps_the_full_documents(state: Path) -> None:
    docs = json.loads(ok("--state", str(state), "node", "inspect", "manager1", "worker1"))
    assert docs[0]["ManagerStatus"] == {
        "Leader": True,
        "Reachability": "reachable",
        "Addr": LEADER.address,
    }
    assert "ManagerStatus" not in docs[1]
    assert docs[1]["Spec"] == {"Labels": {"zone": "a"}, "Role": "worker", "Availability": "active"}


def test_node_ls_takes_a_go_template_and_a_table_template(state: Path) -> None:
    assert ok("--state", str(state), "node", "ls", "--format", "{{.Hostname}} {{.Status}}") == (
        "manager1 Ready\nmanager2 Ready\nworker1 Ready\nworker2 Ready\n"
    )
    table = ok(
        "--state", str(state), "node", "ls", "--format", "table {{.Hostname}}\\t{{.ManagerStatus}}"
    )
    assert table.splitlines()[:2] == ["HOSTNAME   MANAGER STATUS", "manager1   Leader"]


def test_an_unsupported_template_is_refused_in_one_line(state: Path) -> None:
    result = swarmctl("--state", str(state), "node", "ls", "--format", "{{range .}}x{{end}}")
    assert one_error(result).startswith("--format '{{range .}}x{{end}}': 'range' is not supported")
    assert result.stdout == ""


def test_node_ls_refuses_an_unknown_format(state: Path) -> None:
    result = swarmctl("--state", str(state), "node", "ls", "--format", "yaml")
    assert one_error(result) == (
        "--format 'yaml': use table, json, 'table TEMPLATE' or a Go template like '{{.ID}}'"
    )


def test_node_ls_with_only_the_leader(tmp_path: Path) -> None:
    path = make_state(tmp_path / "s.json", [LEADER])
    assert len(ok("--state", str(path), "node", "ls").splitlines()) == 2


# ------------------------------------------------------------- where the state lives


def test_the_state_defaults_to_the_inventory_stem_beside_it(tmp_path: Path) -> None:
    make_state(tmp_path / "prod.state.json")
    inventory = tmp_path / "prod.yml"  # never read by a read-only command: it need not exist
    assert ok("-i", str(inventory), "state", "path").strip() == str(tmp_path / "prod.state.json")
    assert ok("-i", str(inventory), "node", "ls", "-q").split()[0] == LEADER.id


def test_swarmctl_state_overrides_the_inventory_default(tmp_path: Path, state: Path) -> None:
    env = {"SWARMCTL_STATE": str(state), "SWARMCTL_INVENTORY": str(tmp_path / "other.yml")}
    assert ok("state", "path", env=env).strip() == str(state)
    assert len(ok("node", "ls", "-q", env=env).split()) == 4


def test_read_only_commands_never_load_ssh(state: Path) -> None:
    driver = (
        "import sys\n"
        "from swarmctl.cli import main\n"
        "sys.argv = ['swarmctl', *sys.argv[1:]]\n"
        "try:\n"
        "    main()\n"
        "finally:\n"
        "    loaded = {'paramiko', 'fabric', 'swarmctl.transport.ssh'} & set(sys.modules)\n"
        "    print('LOADED', sorted(loaded), file=sys.stderr)\n"
    )
    for command in (
        ["node", "ls"],
        ["node", "inspect", "worker1"],
        ["info"],
        ["node", "ps", "worker2"],
    ):
        result = subprocess.run(
            [sys.executable, "-c", driver, "--state", str(state), *command],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr
        assert result.stderr.strip() == "LOADED []", command


# ------------------------------------------------------------------ node inspect


def test_node_inspect_finds_a_node_by_name_id_or_unique_prefix(state: Path) -> None:
    for ref, wanted in (("worker1", WORKER1), (WORKER1.id, WORKER1), ("ll", LEADER)):
        [doc] = json.loads(ok("--state", str(state), "node", "inspect", ref))
        assert doc["ID"] == wanted.id


def test_node_inspect_of_an_unknown_node_is_one_line(state: Path) -> None:
    result = swarmctl("--state", str(state), "node", "inspect", "worker9")
    assert one_error(result) == "node 'worker9' not found"


def test_node_inspect_of_an_ambiguous_prefix_is_one_line(state: Path) -> None:
    result = swarmctl("--state", str(state), "node", "inspect", "www")
    assert one_error(result) == "node 'www' is ambiguous: it matches 2 IDs"


def test_node_inspect_pretty_is_human_readable(state: Path) -> None:
    text = ok("--state", str(state), "node", "inspect", "--pretty", "manager1", "worker1")
    assert f"ID:                     {LEADER.id}" in text
    assert " Leader:                Yes" in text
    assert " Memory:                4 GiB" in text
    assert "Labels:\n - zone=a" in text
    assert text.count("Hostname:") == 2


# ------------------------------------------------------------------- node update


def test_node_update_changes_availability_and_labels(state: Path) -> None:
    args = ["--state", str(state), "node", "update"]
    assert ok(*args, "worker1", "--availability", "pause", "--label-add", "disk=ssd").strip() == (
        "worker1"
    )
    changed = stored_nodes(state)["worker1"]
    assert changed.availability == Availability.PAUSE
    assert changed.labels == {"zone": "a", "disk": "ssd"}
    assert changed.version == WORKER1.version + 1
    ok(*args, "worker1", "--label-rm", "zone", "--label-rm", "absent")
    assert stored_nodes(state)["worker1"].labels == {"disk": "ssd"}


def test_node_update_with_nothing_new_writes_nothing(state: Path) -> None:
    before = state.read_bytes()
    ok("--state", str(state), "node", "update", "worker1", "--availability", "active")
    assert state.read_bytes() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--availability", "off"], "--availability 'off': use active, pause or drain"),
        (["--availability", "Active"], "--availability 'Active': use active, pause or drain"),
        (["--role", "boss"], "--role 'boss': use worker or manager"),
        (
            ["--label-add", "=x"],
            "--label-add: label '': invalid key (letters, digits, '.', '_', '-')",
        ),
        (
            ["--label-add", "bad key=x"],
            "--label-add: label 'bad key': invalid key (letters, digits, '.', '_', '-')",
        ),
        (
            ["--label-add", "k=two\nlines"],
            "--label-add: label k: value 'two\\nlines' is not one line of text",
        ),
    ],
)
def test_node_update_refuses_bad_input_and_changes_nothing(
    state: Path, args: list[str], message: str
) -> None:
    before = state.read_bytes()
    result = swarmctl("--state", str(state), "node", "update", "worker1", *args)
    assert one_error(result) == message
    assert state.read_bytes() == before


def test_the_leader_cannot_be_demoted(state: Path) -> None:
    result = swarmctl("--state", str(state), "node", "update", "manager1", "--role", "worker")
    assert one_error(result) == "node manager1 is the leader: it cannot be demoted"


def test_node_update_of_an_unknown_node_is_one_line(state: Path) -> None:
    result = swarmctl("--state", str(state), "node", "update", "nobody", "--availability", "drain")
    assert one_error(result) == "node 'nobody' not found"


# ------------------------------------------------------------------- node ps, rm, info


def test_node_ps_is_empty_until_services_exist(state: Path) -> None:
    assert ok("--state", str(state), "node", "ps", "worker1").splitlines() == [
        "ID   NAME   IMAGE   NODE   DESIRED STATE   CURRENT STATE   ERROR"
    ]
    assert ok("--state", str(state), "node", "ps", "-q", "worker1") == ""


def test_node_rm_of_a_ready_node_needs_force(state: Path) -> None:
    before = state.read_bytes()
    result = swarmctl("--state", str(state), "node", "rm", "worker1")
    assert one_error(result) == (
        "node worker1 is not down and can't be removed: `swarmctl leave worker1` cleans and "
        "removes it, or pass --force"
    )
    assert state.read_bytes() == before


def test_info_summarises_the_cluster(state: Path) -> None:
    lines = ok("--state", str(state), "info").splitlines()
    assert lines[:8] == [
        "Swarm: active",
        f" Cluster ID: {CLUSTER.id}",
        f" NodeID: {LEADER.id}",
        " Is Manager: true",
        " Managers: 2",
        " Nodes: 4",
        " Services: 0",
        " Running Tasks: 0",
    ]
    doc = json.loads(ok("--state", str(state), "info", "--format", "json"))
    assert (doc["Swarm"], doc["Nodes"], doc["DataPathPort"]) == ("active", 4, 4789)


def test_info_without_a_state_file_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "none.json"
    assert one_error(swarmctl("--state", str(missing), "info")) == (
        f"no cluster state at {missing}: run `swarmctl init` first (or pass --state)"
    )
    assert not missing.exists()


def test_info_on_a_state_without_a_cluster_is_one_line(tmp_path: Path) -> None:
    path = make_state(tmp_path / "s.json", [], cluster=None)
    assert one_error(swarmctl("--state", str(path), "info")) == (
        "this state holds no cluster yet: run `swarmctl init` first"
    )


def test_info_with_no_cluster_selected_is_one_line(tmp_path: Path) -> None:
    assert one_error(swarmctl("info", cwd=tmp_path)) == (
        "no cluster selected: pass -i INVENTORY (or set SWARMCTL_INVENTORY), or --state PATH"
    )


# ------------------------------------------------------- init/join refused before SSH

UNREACHABLE_INVENTORY = """\
all:
  children:
    managers:
      hosts:
        manager1: {ansible_host: 192.0.2.11}
    workers:
      hosts:
        worker1: {ansible_host: 192.0.2.12}
"""


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "lab.yml"
    path.write_text(UNREACHABLE_INVENTORY)
    return path


def test_init_refuses_a_state_that_already_holds_a_cluster(inventory: Path) -> None:
    state = make_state(inventory.with_name("lab.state.json"))
    before = state.read_bytes()
    assert one_error(swarmctl("-i", str(inventory), "init")) == (
        f"{state} already holds cluster {CLUSTER.id}: use `swarmctl join` to add hosts, "
        "or --state for another cluster"
    )
    assert state.read_bytes() == before


def test_join_before_init_is_one_line(inventory: Path) -> None:
    state = inventory.with_name("lab.state.json")
    assert one_error(swarmctl("-i", str(inventory), "join", "--all")) == (
        f"no cluster state at {state}: run `swarmctl init` first (or pass --state)"
    )
    assert not state.exists()


def test_joining_a_member_again_is_one_line_and_changes_nothing(inventory: Path) -> None:
    state = make_state(inventory.with_name("lab.state.json"), [LEADER, WORKER1])
    before = state.read_bytes()
    result = swarmctl("-i", str(inventory), "join", "worker1")
    assert one_error(result) == "worker1 is already a member of this cluster (as a worker)"
    assert state.read_bytes() == before


def test_join_all_when_everyone_is_a_member_says_so(inventory: Path) -> None:
    state = make_state(inventory.with_name("lab.state.json"), [LEADER, WORKER1])
    before = state.read_bytes()
    assert ok("-i", str(inventory), "join", "--all") == "every inventory host is already a member\n"
    assert state.read_bytes() == before


def test_joining_an_unknown_host_is_one_line_naming_it(inventory: Path) -> None:
    make_state(inventory.with_name("lab.state.json"), [LEADER])
    assert one_error(swarmctl("-i", str(inventory), "join", "worker1", "db7")) == (
        f"{inventory}: no host named 'db7' (hosts: manager1, worker1)"
    )


def test_init_of_an_unknown_host_is_one_line_and_creates_no_state(inventory: Path) -> None:
    assert one_error(swarmctl("-i", str(inventory), "init", "db7")) == (
        f"{inventory}: no host named 'db7' (hosts: manager1, worker1)"
    )
    assert not inventory.with_name("lab.state.json").exists()


ONE_LINE_ERRORS = [
    (["join"], "name the hosts to join, or pass --all"),
    (["join", "--all", "worker1"], "name hosts or pass --all, not both"),
    (["join", "--all", "--role", "admin"], "--role 'admin': use worker or manager"),
    (["init", "--listen-addr", "eth0"], "--listen-addr 'eth0': 'eth0' is not an IPv4 address"),
    (
        ["init", "--listen-addr", "192.0.2.11:99999"],
        "--listen-addr '192.0.2.11:99999': port '99999' is not 1-65535",
    ),
    (
        ["init", "--default-addr-pool-mask-length", "30"],
        "--default-addr-pool-mask-length 30: use 8 to 28",
    ),
    (["leave", "worker7"], "node 'worker7' not found"),
]


@pytest.mark.parametrize(("args", "message"), ONE_LINE_ERRORS, ids=lambda v: str(v))
def test_bad_membership_input_is_one_line_without_touching_the_state(
    inventory: Path, args: list[str], message: str
) -> None:
    state = make_state(inventory.with_name("lab.state.json"), [LEADER, WORKER1])
    before = state.read_bytes()
    assert one_error(swarmctl("-i", str(inventory), *args)) == message
    assert state.read_bytes() == before


def test_leaving_the_leader_of_a_bigger_cluster_needs_force(inventory: Path) -> None:
    state = make_state(inventory.with_name("lab.state.json"), [LEADER, WORKER1])
    before = state.read_bytes()
    assert one_error(swarmctl("-i", str(inventory), "leave", "manager1")) == (
        "node manager1 is the leader: removing it needs --force "
        "(another manager, if any, becomes the leader)"
    )
    assert state.read_bytes() == before


def test_every_error_is_one_line_without_traceback(state: Path, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text("{not json")
    cases = [
        ["--state", str(state), "node", "ls", "--format", "xml"],
        ["--state", str(state), "node", "inspect"],
        ["--state", str(state), "node", "update", "worker1", "--label-add"],
        ["--state", str(state), "node", "frobnicate"],
        ["--state", str(state), "info", "--format", "yaml"],
        ["--state", str(corrupt), "node", "ls"],
        ["--state", str(tmp_path), "node", "ls"],
        ["-i", str(tmp_path / "missing.yml"), "join", "--all"],
    ]
    for args in cases:
        result = swarmctl(*args)
        line = one_error(result)
        assert re.fullmatch(r"\S.*\S", line), (args, result.stderr)


# --------------------------------- membership.join killed before or during its write


class Killed(BaseException):
    """The process dying at this point: nothing after it runs."""


class FakePool(FakeHosts):
    """Every host answers and runs the overlay script; provisioning is replaced below."""

    def __init__(self) -> None:
        super().__init__(["manager1", "worker1"])
        self.trust = Trust()


def provisioned(
    pool, names, dry_run: bool = False, listen_addr: str | None = None
) -> dict[str, Provisioned]:
    addresses = {"worker1": "192.0.2.12"}
    return {n: Provisioned(replace(FACTS, address=addresses[n]), JoinPlan()) for n in names}


def cluster_with_one_network(inventory: Path) -> StateStore:
    store = StateStore(inventory.with_name("lab.state.json"))
    make_state(store.path, [LEADER])
    web = Network(
        id="n" * 25,
        name="web",
        subnet="10.0.1.0/24",
        gateway="10.0.1.1",
        vni=4097,
        created_at=NOW,
    )
    with store.transaction() as db:
        Repo(db).networks.put(assign_ranges(web, [LEADER]))
    return store


def join_worker1(store: StateStore, inventory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(membership, "provision", provisioned)
    membership.join(
        store,
        load_inventory(inventory),
        FakePool(),
        ["worker1"],
        role=None,
        everyone=False,
        dry_run=False,
        say=lambda _: None,
    )


def worker1_and_its_block(store: StateStore) -> tuple[bool, bool]:
    with store.read() as db:
        repo = Repo(db)
        worker1 = repo.nodes.find("worker1")
        [web] = repo.networks.all()
    return worker1 is not None, worker1 is not None and worker1.id in web.node_ranges


def test_a_join_gives_the_new_node_a_block_of_every_network(
    inventory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = cluster_with_one_network(inventory)
    join_worker1(store, inventory, monkeypatch)
    assert worker1_and_its_block(store) == (True, True)


def test_a_join_killed_before_its_first_write_leaves_the_state_as_before(
    inventory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = cluster_with_one_network(inventory)

    @contextmanager
    def dying(self):
        raise Killed
        yield

    monkeypatch.setattr(StateStore, "transaction", dying)
    with suppress(Killed):
        join_worker1(store, inventory, monkeypatch)
    monkeypatch.undo()
    assert worker1_and_its_block(store) == (False, False)


def die() -> None:
    os._exit(137)  # as SIGKILL: no finally, no clean-up


@pytest.mark.parametrize(
    ("target", "name", "landed"),
    [
        (os, "fsync", False),  # the new state written to the temp file, not yet synced
        (os, "replace", False),  # synced, not yet renamed over the state file
        (storage, "fsync_dir", True),  # renamed, its directory entry not yet synced
    ],
    ids=["before-sync", "before-rename", "after-rename"],
)
def test_a_join_killed_during_its_write_leaves_the_state_as_before_or_after(
    inventory: Path, monkeypatch: pytest.MonkeyPatch, target: object, name: str, landed: bool
) -> None:
    store = cluster_with_one_network(inventory)
    pid = os.fork()
    if pid == 0:  # the process that dies in the middle of writing the state file
        try:
            monkeypatch.setattr(target, name, lambda *args: die())
            join_worker1(store, inventory, monkeypatch)
        finally:
            os._exit(0)
    assert os.waitpid(pid, 0)[1] >> 8 == 137, "the join finished without writing"
    assert worker1_and_its_block(store) == (landed, landed)
    left = list(inventory.parent.glob(".lab.state.json.tmp-*"))
    assert bool(left) != landed  # a killed writer leaves its temp file behind …
    if not landed:
        join_worker1(store, inventory, monkeypatch)  # … the rerun joins, and sweeps it away
        assert worker1_and_its_block(store) == (True, True)
    assert not list(inventory.parent.glob(".lab.state.json.tmp-*"))


def test_leave_cleans_the_host_with_the_executor_then_converges_the_others(
    inventory: Path,
) -> None:
    store = cluster_with_one_network(inventory)
    with store.transaction() as db:
        Repo(db).nodes.put(WORKER1)
    pool = FakePool()
    membership.leave(
        store, load_inventory(inventory), pool, "worker1", force=False, say=lambda _: None
    )
    assert pool["worker1"].commands == [s.command for s in steps.clean(CLUSTER.id, "worker1")]
    assert len(pool["manager1"].commands) == 1  # its overlays, worker1 no longer a peer
    with store.read() as db:
        assert Repo(db).nodes.find("worker1") is None


def test_leave_refuses_a_host_it_cannot_clean_without_force(inventory: Path) -> None:
    store = cluster_with_one_network(inventory)
    with store.transaction() as db:
        Repo(db).nodes.put(WORKER1)
    pool = FakePool()
    pool["worker1"].reachable = False
    with pytest.raises(SwarmctlError) as error:
        membership.leave(
            store, load_inventory(inventory), pool, "worker1", force=False, say=lambda _: None
        )
    assert str(error.value) == (
        "worker1: connection refused: use --force to remove worker1 from the cluster anyway"
    )
    _, warnings = membership.leave(
        store, load_inventory(inventory), pool, "worker1", force=True, say=lambda _: None
    )
    assert warnings[0] == "worker1: connection refused (its containers were left as they are)"


@pytest.mark.parametrize("pair", ["web=²", "web=1.5", "web=", "web"])
def test_service_scale_refuses_a_count_that_is_not_a_number(state: Path, pair: str) -> None:
    before = state.read_bytes()
    result = swarmctl("--state", str(state), "service", "scale", pair)
    assert one_error(result) == f"{pair!r}: expected SERVICE=REPLICAS, e.g. nginx=5"
    assert state.read_bytes() == before
