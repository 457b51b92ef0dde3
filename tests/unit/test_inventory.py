import os
import shutil
import subprocess
from pathlib import Path

import pytest

from swarmctl.errors import SwarmctlError
from swarmctl.inventory import InventoryHost, inventory_path, load_inventory
from swarmctl.lab.layout import LabLayout
from swarmctl.lab.manager import render_inventory

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Write files under a fresh working directory, so messages show relative paths."""
    monkeypatch.chdir(tmp_path)

    def write(name: str, text: str) -> str:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return name

    return write


def error_of(path: str) -> str:
    with pytest.raises(SwarmctlError) as caught:
        load_inventory(path)
    return str(caught.value)


def one_host(write, text: str, name: str = "inventory/x.yml") -> InventoryHost:
    [host] = load_inventory(write(name, text)).hosts.values()
    return host


# --------------------------------------------------------------------------- layouts

NESTED_YAML = """\
all:
  vars:
    ansible_user: admin
  children:
    swarm:
      children:
        managers:
          hosts:
            manager1: {ansible_host: 10.0.0.1}
        workers:
          hosts:
            worker1:
            worker2: {ansible_host: 10.0.0.3}
"""


def test_yaml_hosts_belong_to_their_group_and_every_ancestor(write) -> None:
    hosts = load_inventory(write("inventory/x.yml", NESTED_YAML)).hosts
    assert hosts["manager1"].groups == ("all", "managers", "swarm")
    assert hosts["worker1"].groups == ("all", "swarm", "workers")
    assert hosts["worker2"].address == "10.0.0.3"
    assert {h.user for h in hosts.values()} == {"admin"}


def test_hosts_keep_the_order_of_the_file(write) -> None:
    hosts = load_inventory(write("inventory/x.yml", NESTED_YAML)).hosts
    assert list(hosts) == ["manager1", "worker1", "worker2"]


def test_a_null_host_entry_gets_ansible_defaults(write) -> None:
    host = one_host(write, "all:\n  hosts:\n    node1:\n")
    assert host == InventoryHost(name="node1", address="node1", groups=("all", "ungrouped"))
    assert (host.user, host.port, host.key, host.labels, host.role) == (
        "root",
        22,
        None,
        {},
        "worker",
    )


def test_top_level_groups_other_than_all_are_children_of_all(write) -> None:
    text = "all:\n  vars: {ansible_port: 2200}\nworkers:\n  hosts:\n    worker1:\n"
    host = one_host(write, text)
    assert host.groups == ("all", "workers")
    assert host.port == 2200


INI = """\
# the walkthrough machines
; semicolons comment too
[managers]
manager1 ansible_host=192.168.99.100 ansible_port=2222   # inline comment

[workers]
worker1 ansible_host=192.168.99.101 labels="zone=a,disk=ssd"
worker2

[swarm:children]
managers
workers

[swarm:vars]
iface = eth1

[all:vars]
ansible_user=deploy
"""


def test_ini_layout_reads_hosts_children_and_vars(write) -> None:
    hosts = load_inventory(write("inventory/hosts.ini", INI)).hosts
    assert list(hosts) == ["manager1", "worker1", "worker2"]
    manager = hosts["manager1"]
    assert (manager.address, manager.port, manager.role) == ("192.168.99.100", 2222, "manager")
    assert hosts["worker1"].labels == {"zone": "a", "disk": "ssd"}
    assert hosts["worker2"].groups == ("all", "swarm", "workers")
    assert {(h.user, h.iface) for h in hosts.values()} == {("deploy", "eth1")}


def test_an_ini_file_without_extension_is_read(write) -> None:
    assert list(load_inventory(write("inventory/hosts", INI)).hosts) == [
        "manager1",
        "worker1",
        "worker2",
    ]


def test_ini_hosts_before_any_section_are_ungrouped(write) -> None:
    host = one_host(write, "node1 user=ops\n[empty]\n", "inventory/x.ini")
    assert (host.groups, host.user) == (("all", "ungrouped"), "ops")


def test_ini_host_with_a_port_suffix_takes_that_port(write) -> None:
    assert one_host(write, "[g]\nnode1:2201\n", "inventory/x.ini").port == 2201


def test_a_yaml_file_with_another_extension_is_read_as_yaml(write) -> None:
    hosts = load_inventory(write("inventory/lab.inv", NESTED_YAML)).hosts
    assert list(hosts) == ["manager1", "worker1", "worker2"]


# ------------------------------------------------------------------------ precedence

PRECEDENCE = """\
all:
  vars: {user: fromall, iface: all0, netns: nsall, port: 1001}
  children:
    parent:
      vars: {iface: parent0, netns: nsparent, port: 1002}
      children:
        child:
          vars: {netns: nschild, port: 1003}
          hosts:
            node1: {port: 1004}
"""


def test_vars_go_from_all_to_parent_group_to_child_group_to_host(write) -> None:
    host = one_host(write, PRECEDENCE)
    assert (host.user, host.iface, host.netns, host.port) == (
        "fromall",
        "parent0",
        "nschild",
        1004,
    )


def test_groups_of_one_depth_merge_alphabetically_the_last_winning(write) -> None:
    text = """\
all:
  children:
    zeta: {vars: {iface: zeta0}, hosts: {node1: }}
    alpha: {vars: {iface: alpha0}, hosts: {node1: }}
"""
    assert one_host(write, text).iface == "zeta0"


def test_ansible_group_priority_beats_alphabetical_order(write) -> None:
    text = """\
all:
  children:
    zeta: {vars: {iface: zeta0, ansible_group_priority: 0}, hosts: {node1: }}
    alpha: {vars: {iface: alpha0}, hosts: {node1: }}
"""
    inventory = load_inventory(write("inventory/x.yml", text))
    assert inventory.hosts["node1"].iface == "alpha0"
    assert inventory.warnings == ()


def test_group_vars_files_beat_inline_group_vars_and_children_beat_all(write) -> None:
    write("inventory/group_vars/all.yml", "iface: fileall0\nuser: fileall\n")
    write("inventory/group_vars/child.yaml", "iface: filechild0\n")
    host = one_host(write, PRECEDENCE)
    assert (host.iface, host.user, host.port) == ("filechild0", "fileall", 1004)


def test_a_group_vars_directory_reads_its_files_in_order(write) -> None:
    write("inventory/group_vars/child/10-net.yml", "iface: first0\nnetns: first\n")
    write("inventory/group_vars/child/20-net.yml", "iface: second0\n")
    write("inventory/group_vars/child/README.md", "iface: ignored\n")
    host = one_host(write, PRECEDENCE)
    assert (host.iface, host.netns) == ("second0", "first")


def test_host_vars_files_beat_the_inventory_file(write) -> None:
    write("inventory/host_vars/node1.yml", "port: 2005\n")
    assert one_host(write, PRECEDENCE).port == 2005


# ------------------------------------------------------------------------- keys


def test_ansible_connection_keys_are_understood(write, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/ops")
    text = """\
all:
  hosts:
    node1:
      ansible_host: node1.example.com
      ansible_user: ops
      ansible_port: 2222
      ansible_ssh_private_key_file: ~/.ssh/swarm
"""
    host = one_host(write, text)
    assert (host.address, host.user, host.port, host.key) == (
        "node1.example.com",
        "ops",
        2222,
        "/home/ops/.ssh/swarm",
    )


def test_legacy_ansible_ssh_keys_are_understood(write) -> None:
    text = "n1: {ansible_ssh_host: 10.1.1.1, ansible_ssh_user: a, ansible_ssh_port: 23}"
    text = f"all:\n  hosts:\n    {text}\n"
    host = one_host(write, text)
    assert (host.address, host.user, host.port) == ("10.1.1.1", "a", 23)


def test_a_short_key_beats_its_ansible_alias_at_the_same_level(write) -> None:
    text = "n1: {address: 10.0.0.9, ansible_host: 10.0.0.1, port: 1, ansible_port: 2}"
    text = f"all:\n  hosts:\n    {text}\n"
    host = one_host(write, text)
    assert (host.address, host.port) == ("10.0.0.9", 1)


def test_an_ansible_alias_on_the_host_beats_a_short_key_on_its_group(write) -> None:
    text = "all:\n  vars: {address: 10.0.0.9}\n  hosts:\n    n1: {ansible_host: 10.0.0.1}\n"
    assert one_host(write, text).address == "10.0.0.1"


def test_known_hosts_and_netns_are_read(write) -> None:
    text = "all:\n  hosts:\n    n1: {known_hosts: /etc/swarm/known_hosts, netns: swl-ctl}\n"
    host = one_host(write, text)
    assert (host.known_hosts, host.netns) == ("/etc/swarm/known_hosts", "swl-ctl")


def test_hosts_in_managers_or_its_children_are_managers(write) -> None:
    text = """\
managers:
  hosts: {manager1: }
  children:
    backup_managers: {hosts: {manager2: }}
workers:
  hosts: {worker1: }
"""
    hosts = load_inventory(write("inventory/x.yml", text)).hosts
    assert {name: h.role for name, h in hosts.items()} == {
        "manager1": "manager",
        "manager2": "manager",
        "worker1": "worker",
    }


def test_a_role_var_overrides_the_group(write) -> None:
    text = (
        "managers:\n  hosts:\n    m1: {role: worker}\nworkers:\n  hosts:\n    w1: {role: manager}\n"
    )
    hosts = load_inventory(write("inventory/x.yml", text)).hosts
    assert (hosts["m1"].role, hosts["w1"].role) == ("worker", "manager")


def test_yaml_labels_are_a_mapping_of_text(write) -> None:
    text = "all:\n  hosts:\n    n1:\n      labels: {zone: a, disks: 2, gpu: true, spare: }\n"
    assert one_host(write, text).labels == {"zone": "a", "disks": "2", "gpu": "true", "spare": ""}


def test_ini_labels_may_be_a_json_object(write) -> None:
    text = """[g]\nn1 labels='{"zone": "b", "disk": "hdd"}'\n"""
    assert one_host(write, text, "inventory/x.ini").labels == {"zone": "b", "disk": "hdd"}


def test_ini_labels_in_a_vars_section_are_key_value_pairs(write) -> None:
    text = "[g]\nn1\n[g:vars]\nlabels = zone=c, rack=r1\n"
    assert one_host(write, text, "inventory/x.ini").labels == {"zone": "c", "rack": "r1"}


def test_an_unknown_key_is_a_warning_once_per_host(write) -> None:
    text = """\
all:
  vars: {app_version: 3}
  children:
    workers:
      vars: {app_version: 4}
      hosts:
        worker1: {adress: 10.0.0.1}
        worker2:
"""
    inventory = load_inventory(write("inventory/x.yml", text))
    assert inventory.warnings == (
        "inventory/x.yml: host worker1: unknown key 'app_version' (ignored)",
        "inventory/x.yml: host worker1: unknown key 'adress' (ignored)",
        "inventory/x.yml: host worker2: unknown key 'app_version' (ignored)",
    )


def test_a_warning_names_the_vars_file_the_key_came_from(write) -> None:
    write("inventory/host_vars/n1.yml", "colour: blue\n")
    inventory = load_inventory(write("inventory/x.yml", "all:\n  hosts:\n    n1:\n"))
    assert inventory.warnings == (
        "inventory/host_vars/n1.yml: host n1: unknown key 'colour' (ignored)",
    )


# ------------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{port: abc}", "port 'abc' is not a number"),
        ("{port: 70000}", "port 70000 is out of range (1-65535)"),
        ("{port: 0}", "port 0 is out of range (1-65535)"),
        (
            "{ansible_host: '10.0.0.1; reboot'}",
            "address '10.0.0.1; reboot' is not a hostname or IP address",
        ),
        (
            "{ansible_host: '-oProxyCommand=x'}",
            "address '-oProxyCommand=x' is not a hostname or IP address",
        ),
        (
            "{ansible_host: 'fe80::1%$(x)'}",
            "address 'fe80::1%$(x)' is not a hostname or IP address",
        ),
        ("{user: Root}", "user 'Root' is not a valid user name"),
        ("{user: 0}", "user must be text, not int"),
        ("{iface: averyverylongiface}", "iface 'averyverylongiface' is not a valid interface name"),
        ("{netns: 'a b'}", "netns 'a b' is not a valid namespace name"),
        ("{role: boss}", "role 'boss' is not manager or worker"),
        ('{key: "a\\nb"}', "key 'a\\nb' is not a file path"),
        (
            "{labels: {'bad key': a}}",
            "label 'bad key': invalid key (letters, digits, '.', '_', '-')",
        ),
        ('{labels: {zone: "a\\nb"}}', "label zone: value 'a\\nb' is not one line of text"),
        ("{labels: [a, b]}", "labels must be a mapping or key=value,... text, not a list"),
        ("{labels: 'zone'}", "labels: 'zone' is not key=value"),
    ],
)
def test_a_bad_value_names_file_host_and_key(write, entry: str, message: str) -> None:
    path = write("inventory/lab.yml", f"all:\n  hosts:\n    worker3: {entry}\n")
    assert error_of(path) == f"inventory/lab.yml: host worker3: {message}"


def test_a_bad_value_from_group_vars_names_that_file(write) -> None:
    write("inventory/group_vars/workers.yml", "port: abc\n")
    path = write("inventory/lab.yml", "workers:\n  hosts:\n    worker3:\n")
    assert (
        error_of(path)
        == "inventory/group_vars/workers.yml: host worker3: port 'abc' is not a number"
    )


def test_an_overridden_bad_value_is_harmless(write) -> None:
    text = "all:\n  vars: {port: abc}\n  hosts:\n    n1: {port: 22}\n"
    assert one_host(write, text).port == 22


@pytest.mark.parametrize("name", ["a;rm -rf /", "$(x)", "-oProxyCommand=x", "../etc", "a b"])
def test_a_hostile_host_name_is_refused(write, name: str) -> None:
    path = write("inventory/x.yml", f"all:\n  hosts:\n    {name!r}:\n")
    assert error_of(path) == (
        f"inventory/x.yml: host {name!r}: invalid name (letters, digits, '.', '_', '-')"
    )


def test_a_hostile_ini_host_name_is_refused(write) -> None:
    path = write("inventory/x.ini", "[g]\n$(reboot)\n")
    assert error_of(path) == (
        "inventory/x.ini: host '$(reboot)': invalid name (letters, digits, '.', '_', '-')"
    )


def test_a_hostile_group_name_is_refused(write) -> None:
    path = write("inventory/x.yml", "all:\n  children:\n    ../../etc: {hosts: {n1: }}\n")
    assert error_of(path) == (
        "inventory/x.yml: group '../../etc': invalid name (letters, digits, '.', '_', '-')"
    )


# ------------------------------------------------------------------------ bad files


def test_a_missing_file_is_named(write) -> None:
    assert error_of("inventory/nope.yml") == "inventory/nope.yml: no such file"


def test_a_directory_is_not_an_inventory(write) -> None:
    write("inventory/x.yml", NESTED_YAML)
    assert error_of("inventory") == "inventory: is a directory, not an inventory file"


def test_an_unreadable_file_is_named(write) -> None:
    write("inventory/x.yml", NESTED_YAML)
    assert error_of("inventory/x.yml/more") == "inventory/x.yml/more: cannot read (Not a directory)"


def test_a_yaml_syntax_error_names_the_line(write) -> None:
    path = write("inventory/x.yml", "all:\n  hosts:\n    n1: {port: 22\n")
    assert error_of(path).startswith("inventory/x.yml: YAML syntax error at line 4: ")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- n1\n", "expected a mapping of groups (like `all: {hosts: ...}`), got a list"),
        ("all: [1, 2]\n", "group all: expected a mapping with hosts, vars or children, got a list"),
        (
            "all:\n  host: {n1: }\n",
            "group all: unexpected key 'host' (expected hosts, vars or children)",
        ),
        ("all:\n  hosts: [n1, n2]\n", "group all: hosts must be a mapping, got a list"),
        ("all:\n  hosts:\n    n1: 10.0.0.1\n", "host n1 must be a mapping, got text"),
        ("a:\n  children: {b: {children: {a: }}}\n", "groups contain each other (a -> b -> a)"),
    ],
)
def test_a_yaml_file_of_the_wrong_shape_is_refused(write, text: str, message: str) -> None:
    assert error_of(write("inventory/x.yml", text)) == f"inventory/x.yml: {message}"


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "all:\n  children:\n    workers:\n"])
def test_an_inventory_without_hosts_is_refused(write, text: str) -> None:
    assert error_of(write("inventory/x.yml", text)) == "inventory inventory/x.yml: no hosts"


def test_a_vars_file_that_is_not_a_mapping_is_named(write) -> None:
    write("inventory/group_vars/all.yml", "- port: 22\n")
    path = write("inventory/x.yml", NESTED_YAML)
    assert (
        error_of(path)
        == "inventory/group_vars/all.yml: expected a mapping of variables, got a list"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[g]\nn1\n[workerz:vars]\nx=1\n",
            ":3: [workerz:vars] is for the group 'workerz', which is never defined",
        ),
        (
            "[g]\nn1\n[all:children]\ng\nh\n",
            ":5: [all:children] names the group 'h', which is never defined",
        ),
        ("[g]\nn1 port\n", ":2: expected key=value after the host name, got 'port'"),
        ("[g]\nn1 labels='a=b\n", ':2: no closing quotation in "n1 labels=\'a=b"'),
        ("[g:vars]\nport 22\n[g]\n", ":2: expected key=value in [g:vars], got 'port 22'"),
        ("[g:kids]\nn1\n", ":1: unknown section type ':kids' (use :vars or :children)"),
        ("[g\nn1\n", ":1: invalid section header '[g'"),
    ],
)
def test_an_ini_mistake_names_the_line(write, text: str, message: str) -> None:
    assert error_of(write("inventory/x.ini", text)) == f"inventory/x.ini{message}"


# ------------------------------------------------------------------------- lookups


def test_asking_for_an_unknown_host_lists_the_known_ones(write) -> None:
    text = "managers:\n  hosts: {manager1: }\nworkers:\n  hosts: {worker1: }\n"
    inventory = load_inventory(write("inventory/lab.yml", text))
    assert inventory.get("worker1").name == "worker1"
    with pytest.raises(SwarmctlError) as caught:
        inventory.get("worker9")
    assert (
        str(caught.value) == "inventory/lab.yml: no host named 'worker9' (hosts: manager1, worker1)"
    )


def test_the_inventory_option_beats_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARMCTL_INVENTORY", "from/env.yml")
    assert inventory_path("inventory/lab.yml") == Path("inventory/lab.yml")
    assert inventory_path(None) == Path("from/env.yml")


def test_no_inventory_anywhere_says_how_to_give_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SWARMCTL_INVENTORY", raising=False)
    with pytest.raises(
        SwarmctlError, match=r"^no inventory: pass -i PATH or set SWARMCTL_INVENTORY$"
    ):
        inventory_path(None)


# ---------------------------------------------------------------- shipped inventories


def test_the_lab_inventory_parses(tmp_path: Path) -> None:
    layout = LabLayout()
    path = tmp_path / "inventory.yml"
    path.write_text(render_inventory(layout, layout.hosts(3)))
    inventory = load_inventory(path)
    assert inventory.warnings == ()
    assert [(h.name, h.role, h.address) for h in inventory.hosts.values()] == [
        ("manager1", "manager", "10.99.0.11"),
        ("worker1", "worker", "10.99.0.12"),
        ("worker2", "worker", "10.99.0.13"),
    ]
    for host in inventory.hosts.values():
        assert (host.user, host.port, host.iface, host.netns) == ("root", 22, "eth0", "swl-ctl")
        assert (host.key, host.known_hosts) == (str(layout.key), str(layout.known_hosts))


@pytest.mark.parametrize("name", ["example.yml", "vagrant.yml"])
def test_the_shipped_inventories_parse_without_warnings(name: str) -> None:
    inventory = load_inventory(REPO / "inventory" / name)
    assert inventory.warnings == ()
    assert {h.role for h in inventory.hosts.values()} == {"manager", "worker"}


def test_the_vagrant_inventory_matches_the_vagrantfile() -> None:
    hosts = load_inventory(REPO / "inventory" / "vagrant.yml").hosts
    vagrantfile = (REPO / "vagrant" / "Vagrantfile").read_text()
    for host in hosts.values():
        assert f'"{host.name}" => "{host.address}"' in vagrantfile
        assert host.key == f"vagrant/.vagrant/machines/{host.name}/virtualbox/private_key"
        assert (host.user, host.iface) == ("root", "eth1")


@pytest.mark.skipif(not shutil.which("vagrant"), reason="vagrant is not installed")
def test_the_vagrantfile_is_valid(tmp_path: Path) -> None:
    env = {**os.environ, "VAGRANT_DOTFILE_PATH": str(tmp_path / ".vagrant")}
    result = subprocess.run(
        ["vagrant", "validate"], cwd=REPO / "vagrant", env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
