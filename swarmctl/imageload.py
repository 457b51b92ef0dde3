"""`image load`: an image archive from the control node into every node's `docker load`.

For clusters that reach no registry. The archive (what `docker save` writes) is checked
whole before any node is touched: a tar with a manifest.json whose configs and layers
are all there, images built for the nodes' architecture. Then it goes to the nodes in
parallel, one SSH channel each. The peer-to-peer copy of a missing image is executor.py's.
"""

import io
import json
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass

from swarmctl import pause
from swarmctl.commands import docker
from swarmctl.errors import SwarmctlError
from swarmctl.models import Node
from swarmctl.transport.group import Pool

LOAD_TIMEOUT = 600.0


@dataclass(frozen=True)
class Archive:
    data: bytes
    tags: tuple[str, ...]  # the names it holds (RepoTags), or image IDs for untagged ones
    architectures: tuple[str, ...]


def read_archive(data: bytes, source: str) -> Archive:
    """The images in a `docker save` archive, or one SwarmctlError saying what is wrong."""

    def refuse(cause: str) -> SwarmctlError:
        return SwarmctlError(f"{source}: {cause}, so no node was touched")

    if not data:
        raise refuse("empty: no image archive (try `docker save IMAGE | swarmctl image load`)")
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            files = {m.name.removeprefix("./"): m for m in tar.getmembers() if m.isfile()}

            def read(name: str) -> bytes:
                member = files.get(name)
                if member is None:
                    raise refuse(f"not a docker save archive ({name} is missing)")
                return tar.extractfile(member).read()

            try:
                manifest = json.loads(read("manifest.json"))
                tags, architectures = [], []
                for entry in manifest:
                    config = json.loads(read(entry["Config"]))
                    for layer in entry["Layers"]:
                        read(layer)
                    tags += entry.get("RepoTags") or [entry["Config"]]
                    architectures.append(str(config.get("architecture", "")))
            except (ValueError, KeyError, TypeError) as exc:
                raise refuse(f"not a docker save archive (bad manifest or config: {exc})") from None
    except (tarfile.TarError, EOFError, OSError) as exc:
        # tarfile's "could not be opened" lists every compression it tried, one a line.
        detail = str(exc).splitlines()[0].rstrip(":") or type(exc).__name__
        raise refuse(f"not a readable image archive ({detail})") from None
    if not tags:
        raise refuse("holds no image")
    return Archive(data, tuple(tags), tuple(architectures))


def check_architecture(archive: Archive, nodes: Sequence[Node], source: str) -> None:
    for node in nodes:
        machine = pause.docker_arch(node.facts.arch)
        wrong = [a for a in archive.architectures if machine and a and a != machine]
        if wrong:
            raise SwarmctlError(
                f"{source}: its image is for {wrong[0]}, node {node.hostname} is {machine}, "
                "so no node was touched"
            )


def load(pool: Pool, nodes: Sequence[Node], archive: Archive) -> dict[str, str]:
    """`docker load` the archive on every node at once; {hostname: error} of those that failed."""
    results = pool.each(
        lambda conn: conn.run(docker.load_image(), stdin=archive.data, timeout=LOAD_TIMEOUT),
        [n.hostname for n in nodes],
    )
    return {name: str(r) for name, r in results.items() if isinstance(r, SwarmctlError)}
