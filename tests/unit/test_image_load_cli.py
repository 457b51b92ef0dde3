"""`swarmctl image load` refuses bad input in one line before any node is touched."""

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from swarmctl.models import Cluster, Node, NodeFacts, Role
from swarmctl.state import StateStore
from swarmctl.state.repo import Repo
from tests.unit.test_image_load import docker_save


@pytest.fixture
def state(tmp_path: Path) -> Path:
    path = tmp_path / "state.json"
    store = StateStore(path)
    store.create()
    with store.transaction() as db:
        repo = Repo(db)
        repo.set_cluster(Cluster("c1", "2026-01-01T00:00:00Z"))
        for name in ("manager1", "worker1"):
            repo.nodes.put(
                Node(name, name, Role.WORKER, "192.0.2.1", "t", "t", facts=NodeFacts(arch="x86_64"))
            )
    return path


def image_load(state: Path, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "swarmctl", "--state", str(state), "image", "load", *args],
        input=stdin,
        capture_output=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["-i", "/nonexistent.tar"], b"", "Error: /nonexistent.tar: No such file or directory"),
        (
            [],
            b"",
            "Error: standard input: empty: no image archive (try `docker save IMAGE | "
            "swarmctl image load`), so no node was touched",
        ),
        (["--node", "nosuch"], docker_save(), "Error: --node nosuch: no such node in this cluster"),
        (
            [],
            docker_save(arch="arm64"),
            "Error: standard input: its image is for arm64, node manager1 is amd64, "
            "so no node was touched",
        ),
    ],
    ids=["missing-file", "empty-stdin", "unknown-node", "wrong-arch"],
)
def test_bad_input_is_one_line_and_changes_nothing(
    state: Path, args: list[str], stdin: bytes, message: str
) -> None:
    before = hashlib.sha256(state.read_bytes()).hexdigest()
    result = image_load(state, *args, stdin=stdin)
    assert result.returncode == 1
    assert result.stderr.decode().strip().splitlines() == [message]
    assert hashlib.sha256(state.read_bytes()).hexdigest() == before
