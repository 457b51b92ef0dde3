"""Read-only commands stay quick: they import nothing that reaches a host, and only the
noun they run (start-up is most of their time; see bench/readonly.py).

Each command runs in a fresh interpreter through typer's CliRunner, on a state file with
services, tasks and networks but no inventory, so no host could be reached anyway.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from swarmctl.cli import NOUNS
from swarmctl.models import (
    Cluster,
    Mode,
    Network,
    Node,
    PortSpec,
    Role,
    Service,
    ServiceSpec,
    StoredFile,
    Task,
    TaskState,
)
from swarmctl.state import StateStore
from swarmctl.state.repo import Repo

NOW = "2026-01-02T03:04:05.000+00:00"
NODES = [
    Node(f"node{i}" + "0" * 20, name, role, f"10.0.0.{i}", NOW, NOW, leader=i == 1)
    for i, name, role in ((1, "manager1", Role.MANAGER), (2, "worker1", Role.WORKER))
]
FRONT = Network("front" + "0" * 20, "front", "10.0.1.0/24", "10.0.1.1", 4097, NOW)
WEB = Service(
    "websvc" + "0" * 19,
    ServiceSpec("web", "nginx:1.25", replicas=4, networks=("front",), ports=(PortSpec(80),)),
    NOW,
    NOW,
)
MON = Service("monsvc" + "0" * 19, ServiceSpec("mon", "nginx", mode=Mode.GLOBAL), NOW, NOW)
TASKS = [
    Task(
        f"webtask{slot}" + "0" * 17, WEB.id, slot, NOW, NODES[slot % 2].id, state=TaskState.RUNNING
    )
    for slot in range(1, 5)
] + [Task(f"montask{i}" + "0" * 17, MON.id, 0, NOW, n.id) for i, n in enumerate(NODES)]
CONF = StoredFile("conf" + "0" * 21, "app_conf", NOW, NOW, "bGV2ZWw9MQo=")  # "level=1"

# What only commands that reach hosts, or create objects, need.
HOST_SIDE = {
    "paramiko",
    "fabric",
    "invoke",
    "jinja2",
    "docker",
    "yaml",
    "filelock",
    "secrets",
    "cryptography",
}
HOST_SIDE_OURS = tuple(
    f"swarmctl.{m}"
    for m in (
        "transport",
        "commands",
        "inventory",
        "executor",
        "supervisor",
        "membership",
        "provision",
        "services",
        "secrets",
        "imageload",
        "lab.manager",
        "lab.images",
    )
)

DRIVER = """
import json, sys
from typer.testing import CliRunner
from swarmctl.cli import app
result = CliRunner().invoke(app, sys.argv[1:])
print(json.dumps({"code": result.exit_code, "output": result.output, "modules": list(sys.modules)}))
"""

# (command, the nouns whose CLI module it may load, a line its output must hold)
COMMANDS = [
    (["node", "ls"], {"node"}, "worker1"),
    (["node", "ls", "--format", "json"], {"node"}, '"Hostname":"worker1"'),
    (["node", "ps", "worker1"], {"node"}, "web.1"),
    (["node", "inspect", "manager1"], {"node"}, '"Hostname": "manager1"'),
    (["service", "ls"], {"service"}, "web"),
    (["service", "ls", "--format", "{{.Name}} {{.Replicas}}"], {"service"}, "mon 0/2"),
    (["service", "ps", "web"], {"service"}, "web.4"),
    (["service", "inspect", "web"], {"service"}, '"Name": "web"'),
    (["service", "inspect", "--pretty", "mon"], {"service"}, "Service Mode:"),
    (["network", "ls"], {"network"}, "front"),
    (["network", "inspect", "front"], {"network"}, '"Subnet": "10.0.1.0/24"'),
    (["inspect", "--type", "task", TASKS[0].id], {"node", "network", "service"}, TASKS[0].id),
    (["config", "ls"], {"config", "secret"}, "app_conf"),
    (["config", "inspect", "--pretty", "app_conf"], {"config", "secret"}, "level=1"),
    (["inspect", "app_conf"], {"node", "network", "service"}, '"Name": "app_conf"'),
    (["info"], set(), "Nodes: 2"),
    (["--help"], set(NOUNS), "Manage services."),
]


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("readonly") / "cluster.state.json"
    store = StateStore(path)
    store.create()
    with store.transaction() as db:
        repo = Repo(db)
        repo.set_cluster(Cluster("c" * 25, NOW))
        repo.nodes.put_many(NODES)
        repo.networks.put(FRONT)
        repo.services.put_many([WEB, MON])
        repo.tasks.put_many(TASKS)
        repo.configs.put(CONF)
    return path


@pytest.mark.parametrize(
    ("argv", "nouns", "shown"), COMMANDS, ids=[" ".join(c[0][:2]) for c in COMMANDS]
)
def test_a_read_only_command_loads_nothing_host_side_and_no_other_noun(
    state: Path, tmp_path: Path, argv: list[str], nouns: set[str], shown: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, "--state", str(state), *argv],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},  # no inventory, no ~/.ssh
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["code"] == 0, result["output"]
    assert shown in result["output"]
    modules = set(result["modules"])
    assert not {m for m in modules if m.split(".")[0] in HOST_SIDE}
    assert not {m for m in modules if m.startswith(HOST_SIDE_OURS)}
    loaded_nouns = {m.split(".")[2] for m in modules if m.startswith("swarmctl.cli.")} & set(NOUNS)
    assert loaded_nouns <= nouns


def test_a_mistyped_noun_is_still_matched_against_every_noun(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "swarmctl", "netwrk", "ls"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("Error: No such command 'netwrk'. Did you mean 'network'?")
