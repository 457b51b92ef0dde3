"""The helpers' image setting: "" is the built-in pause image; old states' busybox maps to it."""

from pathlib import Path

import pytest

from swarmctl.codec import to_json
from swarmctl.models import Cluster
from swarmctl.state import StateStore
from swarmctl.state.repo import Repo


def stored(tmp_path: Path, helper_image: str | None) -> Cluster:
    store = StateStore(tmp_path / "state.json")
    store.create()
    document = to_json(Cluster("c1", "2026-01-01T00:00:00Z"))
    if helper_image is None:
        del document["helper_image"]
    else:
        document["helper_image"] = helper_image
    with store.transaction() as db:
        db.table("cluster").insert(document)
    with store.read() as db:
        return Repo(db).cluster()


def test_a_new_cluster_uses_the_built_in_image() -> None:
    assert Cluster("c1", "2026-01-01T00:00:00Z").helper_image == ""


@pytest.mark.parametrize(("saved", "read"), [("busybox", ""), (None, ""), ("", "")])
def test_an_old_states_default_reads_as_the_built_in_image(
    tmp_path: Path, saved: str | None, read: str
) -> None:
    assert stored(tmp_path, saved).helper_image == read


def test_an_image_of_the_users_own_is_kept(tmp_path: Path) -> None:
    assert stored(tmp_path, "registry.local/pause:3.9").helper_image == "registry.local/pause:3.9"
