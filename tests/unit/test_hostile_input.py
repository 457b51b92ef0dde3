"""Inputs a hostile or careless user gives (issue 11): each is refused in one line, before
anything is written, with no traceback. Every command runs as a shell would run it."""

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from swarmctl.errors import SwarmctlError
from swarmctl.inventory import load_inventory
from swarmctl.models import Service
from swarmctl.spec import MAX_REPLICAS, build_spec
from swarmctl.state import StateStore
from swarmctl.state.repo import Repo
from tests.unit.test_membership_cli import NOW, make_state, one_error, swarmctl


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def state(tmp_path: Path) -> Path:
    path = make_state(tmp_path / "cluster.state.json")
    with StateStore(path).transaction() as db:
        spec = build_spec(name="web", image="nginx", replicas=2)
        Repo(db).services.put(Service(id="s" * 25, spec=spec, created_at=NOW, updated_at=NOW))
    return path


@pytest.mark.parametrize(
    "count, cause",
    [
        ("1000000", f"more than the limit of {MAX_REPLICAS} replicas per service"),
        ("99999999999999999999", f"more than the limit of {MAX_REPLICAS} replicas per service"),
        ("9" * 5000, f"more than the limit of {MAX_REPLICAS} replicas per service"),
        ("5000", "more than 4 node(s) can hold (1024 tasks per node)"),
    ],
)
def test_a_huge_replica_count_is_refused_before_anything_is_written(state, count, cause):
    before = digest(state)

    error = one_error(swarmctl("--state", str(state), "service", "scale", f"web={count}"))

    assert error.endswith(cause)
    assert len(error) < 200  # the 5,000 digits are not echoed back
    assert digest(state) == before


def test_an_empty_service_name_is_refused_not_replaced_by_the_images(state):
    before = digest(state)

    error = one_error(swarmctl("--state", str(state), "service", "create", "--name", "", "nginx"))

    assert error.startswith("service name '': ")
    assert digest(state) == before


@pytest.mark.parametrize(
    "label, cause",
    [
        ("k" * 256 + "=v", "key longer than 255"),
        ("k=" + "v" * 5000, "value of 5000 characters, more than the limit of 4096"),
    ],
)
def test_a_label_past_the_limits_is_refused_and_not_echoed_whole(state, label, cause):
    before = digest(state)

    error = one_error(swarmctl("--state", str(state), "node", "update", "--label-add", label, "w1"))

    assert error.endswith(cause)
    assert len(error) < 200
    assert digest(state) == before


def test_a_state_file_left_at_0644_is_made_private_on_first_read(state):
    os.chmod(state, 0o644)

    swarmctl("--state", str(state), "node", "ls")

    assert stat.S_IMODE(state.stat().st_mode) == 0o600


def test_scale_with_the_cluster_table_gone_fails_before_writing(state):
    tables = json.loads(state.read_bytes())
    del tables["cluster"]
    state.write_text(json.dumps(tables))
    os.chmod(state, 0o600)
    before = digest(state)

    error = one_error(swarmctl("--state", str(state), "service", "scale", "web=3"))

    assert "run `swarmctl init` first" in error
    assert digest(state) == before


def wrong_shape(path: Path, table: str, field: str, value: object) -> None:
    tables = json.loads(path.read_bytes())
    doc = next(iter(tables[table].values()))
    doc[field] = value
    path.write_text(json.dumps(tables))
    os.chmod(path, 0o600)


@pytest.mark.parametrize(
    "table, field, value, command",
    [
        ("nodes", "labels", [1, 2], ["node", "ls"]),
        ("nodes", "facts", "none", ["node", "ls"]),
        ("services", "spec", {"name": 5}, ["service", "ls"]),
        ("services", "version", "one", ["service", "scale", "web=3"]),
        ("cluster", "id", {"x": 1}, ["service", "scale", "web=3"]),
    ],
)
def test_a_document_of_the_wrong_shape_is_named_in_one_line(state, table, field, value, command):
    wrong_shape(state, table, field, value)
    before = digest(state)

    error = one_error(swarmctl("--state", str(state), *command))

    assert error.startswith(f"state file {state} is corrupt (table {table!r}, record ")
    assert field in error
    assert digest(state) == before


def test_state_restore_refuses_a_file_with_a_document_of_the_wrong_shape(state, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_bytes(state.read_bytes())
    wrong_shape(bad, "nodes", "availability", "sometimes")
    before = digest(state)

    error = one_error(swarmctl("--state", str(state), "state", "restore", str(bad)))

    assert "table 'nodes'" in error and "availability" in error
    assert digest(state) == before


def test_a_usage_error_echoing_a_line_break_stays_one_line(state):
    error = one_error(
        swarmctl("--state", str(state), "service", "create", "--replicas", "1\n2", "x")
    )

    assert "'1\\n2' is not a valid integer" in error


def test_an_inventory_port_of_5000_digits_is_refused_in_one_line(tmp_path):
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(f"[workers]\nw1 ansible_host=10.0.0.1 ansible_port={'9' * 5000}\n")

    with pytest.raises(SwarmctlError, match=r"port 9{80}… \(5000 characters\) is out of range"):
        load_inventory(inventory)
