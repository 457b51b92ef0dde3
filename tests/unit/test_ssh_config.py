"""How a host is connected to from the ssh config files, and at what cost.

The lookup made for every connection does no DNS unless the config asks for it: paramiko
computes the local FQDN (socket.getfqdn: a DNS lookup, seconds with a dead resolver) for
every value of a key that allows %l, such as any IdentityFile. Connecting imports no
invoke (paramiko's dependency, ~50 ms) unless a `Match exec` line runs.
"""

import shlex
import socket
import subprocess
import sys

import pytest

from swarmctl.inventory import InventoryHost
from swarmctl.transport import ssh

CONFIG = """
Host *
    IdentityFile ~/.ssh/id_ed25519
    ControlPath ~/.ssh/cm-%r@%h:%p
    User ops
"""


@pytest.fixture
def lookups(monkeypatch):
    calls = []

    def record(name):
        def lookup(*args, **kwargs):
            calls.append(name)
            if name == "getfqdn":  # never fails, answers the host name after the timeout
                return "laptop"
            raise socket.gaierror(f"{name} called")

        return lookup

    for name in ("getfqdn", "gethostbyname", "gethostbyaddr", "getaddrinfo"):
        monkeypatch.setattr(socket, name, record(name))
    ssh._local_fqdn.cache_clear()
    return calls


def write(tmp_path, text):
    path = tmp_path / "config"
    path.write_text(text)
    return str(path)


def test_no_name_lookup_when_config_does_not_use_local_fqdn(tmp_path, lookups):
    config = ssh.parse_ssh_config([write(tmp_path, CONFIG)]).lookup("10.0.0.5")
    kwargs = ssh.connect_kwargs(InventoryHost("w1", "10.0.0.5"), config)
    assert kwargs["key_filename"][0].endswith("/.ssh/id_ed25519")
    assert config["controlpath"].endswith("/.ssh/cm-ops@10.0.0.5:22")
    assert lookups == []


def test_plain_paramiko_config_looks_the_name_up(tmp_path, lookups):
    # what the subclass avoids: the same config in stock paramiko asks the resolver
    import paramiko

    with open(write(tmp_path, CONFIG)) as file:
        paramiko.SSHConfig.from_file(file).lookup("10.0.0.5")
    assert "getfqdn" in lookups


def test_local_fqdn_computed_once_when_used(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(socket, "getfqdn", lambda *a: calls.append(1) or "ops.example.org")
    ssh._local_fqdn.cache_clear()
    config = ssh.parse_ssh_config([write(tmp_path, "Host *\n    IdentityFile ~/keys/%l\n")])
    for address in ("10.0.0.5", "10.0.0.6"):
        assert config.lookup(address)["identityfile"][0].endswith("/keys/ops.example.org")
    assert calls == [1]


def kwargs_for(tmp_path, text: str, host: InventoryHost) -> dict:
    return ssh.connect_kwargs(
        host, ssh.parse_ssh_config([write(tmp_path, text)]).lookup(host.address)
    )


def test_the_inventory_user_and_port_win_and_hostname_and_keys_come_from_the_config(tmp_path):
    key = tmp_path / "id_inventory"
    key.write_text("")
    host = InventoryHost("w1", "w1.lan", port=2222, user="deploy", key=str(key))
    text = "Host w1.lan\n    HostName 10.0.0.7\n    User ops\n    Port 22\n    IdentityFile ~/k\n"
    kwargs = kwargs_for(tmp_path, text, host)
    assert kwargs["hostname"] == "10.0.0.7"
    assert (kwargs["port"], kwargs["username"]) == (2222, "deploy")
    assert kwargs["key_filename"][0] == str(key)
    assert kwargs["key_filename"][1].endswith("/k")
    assert "proxy_command" not in kwargs


def test_proxyjump_goes_through_openssh_as_ssh_does_it(tmp_path):
    host = InventoryHost("w1", "10.0.0.5", port=2222)
    kwargs = kwargs_for(tmp_path, "Host 10.0.0.*\n    ProxyJump ops@bastion:2200,inner\n", host)
    assert shlex.split(kwargs["proxy_command"]) == [
        "ssh", "-o", "BatchMode=yes", "-W", "10.0.0.5:2222", "-J", "ops@bastion:2200",
        "ssh://inner",
    ]  # fmt: skip


def test_proxyjump_to_an_ipv6_address_brackets_it_for_ssh_w(tmp_path):
    host = InventoryHost("w1", "fd00::5")
    kwargs = kwargs_for(tmp_path, "Host *\n    ProxyJump bastion\n", host)
    assert "[fd00::5]:22" in shlex.split(kwargs["proxy_command"])


def test_proxycommand_is_used_as_the_config_renders_it(tmp_path):
    host = InventoryHost("w1", "10.0.0.5")
    kwargs = kwargs_for(tmp_path, "Host *\n    ProxyCommand nc -x proxy:1080 %h %p\n", host)
    assert kwargs["proxy_command"] == "nc -x proxy:1080 10.0.0.5 22"
    none = kwargs_for(tmp_path, "Host *\n    ProxyJump none\n    ProxyCommand none\n", host)
    assert "proxy_command" not in none


def test_connecting_imports_no_invoke_until_a_match_exec_line_runs(tmp_path):
    config = write(tmp_path, f'Match exec "{shlex.join(["test", "-n", "x"])}"\n    User ops\n')
    driver = (
        "import sys\n"
        "from swarmctl.transport import ssh\n"
        "ssh.load_libraries()\n"
        "print(any(m.startswith('invoke.') for m in sys.modules))\n"
        "import importlib.util\n"
        "print(importlib.util.find_spec('invoke') is not None)\n"
        "print(ssh.parse_ssh_config([sys.argv[1]]).lookup('10.0.0.5')['user'])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", driver, config], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "True", "ops"]
