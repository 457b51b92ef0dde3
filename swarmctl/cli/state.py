"""`swarmctl state path|backup|restore`: the cluster's state file."""

from typing import Annotated

import typer

from swarmctl.cli.common import new_app
from swarmctl.cli.context import env

app = new_app("The cluster's state file: where it is, backups and restores.")


@app.command()
def path(ctx: typer.Context) -> None:
    """Print where the state file is."""
    typer.echo(env(ctx).state_path)


@app.command()
def backup(
    ctx: typer.Context,
    dest: Annotated[
        str, typer.Argument(help="A file, or a directory for a time-stamped copy.")
    ] = ".",
) -> None:
    """Copy the state, consistently, while other commands may be writing it."""
    typer.echo(env(ctx).store.backup(dest))


@app.command()
def restore(
    ctx: typer.Context, src: Annotated[str, typer.Argument(help="A backup made by `state backup`.")]
) -> None:
    """Replace the state with a backup (the current file is kept as *.before-restore)."""
    store = env(ctx).store
    store.restore(src)
    typer.echo(f"restored {store.path} from {src}")
