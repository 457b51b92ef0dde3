"""The ssh config lookup made for every connection does no DNS unless the config asks for it.

paramiko computes the local FQDN (socket.getfqdn: a DNS lookup, seconds with a dead
resolver) for every value of a key that allows %l, such as any IdentityFile.
"""

import socket

import pytest
from fabric import Config, Connection

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
    config = ssh.parse_ssh_config([write(tmp_path, CONFIG)])
    conn = Connection("10.0.0.5", port=22, config=Config(ssh_config=config))
    assert conn.ssh_config["user"] == "ops"
    assert conn.ssh_config["identityfile"][0].endswith("/.ssh/id_ed25519")
    assert conn.ssh_config["controlpath"].endswith("/.ssh/cm-ops@10.0.0.5:22")
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
