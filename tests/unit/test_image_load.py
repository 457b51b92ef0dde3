"""`image load`'s archive check: refused with one line before any node is touched."""

import io
import json
import tarfile

import pytest

from swarmctl.errors import SwarmctlError
from swarmctl.imageload import check_architecture, read_archive
from swarmctl.models import Node, NodeFacts, Role


def docker_save(arch: str = "amd64", tags: list[str] | None = None, drop: str = "") -> bytes:
    """An archive shaped as `docker save` writes it (the legacy and OCI layouts share it)."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        info = tarfile.TarInfo("hello")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    files = {
        "blobs/sha256/aaaa": json.dumps({"architecture": arch, "os": "linux"}).encode(),
        "blobs/sha256/bbbb": layer.getvalue(),
        "manifest.json": json.dumps(
            [
                {
                    "Config": "blobs/sha256/aaaa",
                    "RepoTags": ["nginx:latest"] if tags is None else tags,
                    "Layers": ["blobs/sha256/bbbb"],
                }
            ]
        ).encode(),
    }
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in files.items():
            if name == drop:
                continue
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def node(hostname: str, arch: str) -> Node:
    return Node(hostname, hostname, Role.WORKER, "10.0.0.1", "t", "t", facts=NodeFacts(arch=arch))


def test_a_docker_save_archive_is_read_with_its_tags_and_architecture() -> None:
    archive = read_archive(docker_save(), "nginx.tar")
    assert archive.tags == ("nginx:latest",)
    assert archive.architectures == ("amd64",)


def test_an_untagged_image_is_named_by_its_config() -> None:
    assert read_archive(docker_save(tags=[]), "x.tar").tags == ("blobs/sha256/aaaa",)


@pytest.mark.parametrize(
    ("data", "cause"),
    [
        (b"", "empty"),
        (b"this is no tar at all" * 100, "not a readable image archive"),
        (docker_save()[:1500], "not a"),  # cut short, as by a failed copy
        (docker_save(drop="manifest.json"), "manifest.json is missing"),
        (docker_save(drop="blobs/sha256/bbbb"), "blobs/sha256/bbbb is missing"),
    ],
    ids=["empty", "garbage", "truncated", "no-manifest", "missing-layer"],
)
def test_a_bad_archive_is_refused_in_one_line_naming_it(data: bytes, cause: str) -> None:
    with pytest.raises(SwarmctlError) as refused:
        read_archive(data, "bad.tar")
    message = str(refused.value)
    assert message.startswith("bad.tar: ") and cause in message and "\n" not in message
    assert "no node was touched" in message


def test_a_bad_manifest_is_refused() -> None:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"{nope"))
    with pytest.raises(SwarmctlError, match="bad manifest"):
        read_archive(out.getvalue(), "bad.tar")


def test_an_image_for_another_architecture_is_refused_naming_the_node() -> None:
    archive = read_archive(docker_save(arch="arm64"), "nginx.tar")
    with pytest.raises(SwarmctlError, match="is for arm64, node w2 is amd64"):
        check_architecture(archive, [node("w1", "aarch64"), node("w2", "x86_64")], "nginx.tar")


def test_an_image_for_the_nodes_architecture_passes() -> None:
    archive = read_archive(docker_save(arch="amd64"), "nginx.tar")
    check_architecture(archive, [node("w1", "x86_64"), node("w2", "")], "nginx.tar")
