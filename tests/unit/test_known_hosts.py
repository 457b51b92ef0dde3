"""known_hosts files as OpenSSH reads them: bad lines skipped with a warning, never a traceback."""

import pytest

from swarmctl.inventory import InventoryHost
from swarmctl.transport.ssh import SSHConnection, SSHError, read_known_hosts

GOOD = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


def test_a_line_with_bad_base64_is_skipped_with_one_warning_naming_file_and_line(tmp_path, capsys):
    path = tmp_path / "known_hosts"
    lines = ["# comment", "bad ssh-ed25519 AAAA!!notbase64", f"good {GOOD}", "[h]:2222 ssh-rsa A"]
    path.write_text("\n".join(lines) + "\n")

    pairs = read_known_hosts(str(path))

    assert [name for name, _ in pairs] == ["good"]
    warnings = capsys.readouterr().err.splitlines()
    assert len(warnings) == 2
    assert warnings[0].startswith(f"Warning: known_hosts {path} line 2: not a host key")
    assert f"{path} line 4" in warnings[1]


def test_the_same_bad_line_warns_once_per_process(tmp_path, capsys):
    path = tmp_path / "known_hosts"
    path.write_text("bad ssh-ed25519 AAAA!!notbase64\n")

    read_known_hosts(str(path))
    read_known_hosts(str(path))

    assert len(capsys.readouterr().err.splitlines()) == 1


def test_a_known_hosts_that_is_a_directory_is_ignored_with_a_warning(tmp_path, capsys):
    assert read_known_hosts(str(tmp_path)) == []
    assert "Is a directory" in capsys.readouterr().err


def test_a_missing_known_hosts_reads_as_empty_and_silent(tmp_path, capsys):
    assert read_known_hosts(str(tmp_path / "absent")) == []
    assert capsys.readouterr().err == ""


def test_a_missing_key_file_is_named_in_a_one_line_error_before_connecting(tmp_path):
    key = tmp_path / "id_missing"
    host = InventoryHost(name="w1", address="192.0.2.1", key=str(key))

    with pytest.raises(SSHError) as err:
        SSHConnection(host).run(["true"])

    assert str(err.value) == (
        f"w1 (192.0.2.1:22): cannot read key file {key}: No such file or directory"
    )


def test_node_trust_forget_drops_the_recorded_key_so_a_new_one_can_be_trusted(tmp_path):
    from dataclasses import replace

    from swarmctl.state import StateStore
    from swarmctl.state.repo import Repo
    from tests.unit.test_membership_cli import NODES, make_state, ok

    worker = NODES[-1]
    path = make_state(tmp_path / "c.state.json", [*NODES[:-1], replace(worker, host_key=GOOD)])

    out = ok("--state", str(path), "node", "trust", "--forget", worker.hostname)

    assert out == f"{worker.hostname}: key forgotten\n"
    with StateStore(path).read() as db:
        assert Repo(db).nodes.get(worker.id).host_key == ""
