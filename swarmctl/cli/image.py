"""`swarmctl image load`: images for nodes that reach no registry."""

import sys
from pathlib import Path
from typing import Annotated

import typer

from swarmctl.cli.common import new_app
from swarmctl.cli.context import env
from swarmctl.errors import SwarmctlError

app = new_app("Manage images on the nodes.")


@app.command()
def load(
    ctx: typer.Context,
    source: Annotated[
        str | None,
        typer.Option("--input", "-i", help="Archive from `docker save` (default: stdin)."),
    ] = None,
    node: Annotated[
        list[str] | None, typer.Option("--node", help="Only this node (repeatable).")
    ] = None,
) -> None:
    """Load an image archive into every node's Docker (or the named nodes'), in parallel."""
    from swarmctl import imageload
    from swarmctl.state.repo import Repo

    if source is None and sys.stdin.isatty():
        raise SwarmctlError("no archive: pass -i ARCHIVE or pipe `docker save IMAGE` into it")
    where = source or "standard input"
    try:
        data = Path(source).read_bytes() if source else sys.stdin.buffer.read()
    except OSError as exc:
        raise SwarmctlError(f"{where}: {exc.strerror or exc}") from None
    e = env(ctx)
    with e.store.read() as db:
        repo = Repo(db)
        repo.cluster()
        nodes = repo.nodes.all()
    if node:
        known = {n.hostname: n for n in nodes}
        unknown = [name for name in node if name not in known]
        if unknown:
            raise SwarmctlError(f"--node {unknown[0]}: no such node in this cluster")
        nodes = [known[name] for name in dict.fromkeys(node)]
    archive = imageload.read_archive(data, where)
    imageload.check_architecture(archive, nodes, where)
    with e.pool() as pool:
        failed = imageload.load(pool, nodes, archive)
    loaded = [n.hostname for n in nodes if n.hostname not in failed]
    if loaded:
        typer.echo(f"Loaded {', '.join(archive.tags)} on {', '.join(loaded)}")
    for name, error in failed.items():
        print(f"Error: {name}: not loaded: {error}", file=sys.stderr)
    if failed:
        raise typer.Exit(1)
