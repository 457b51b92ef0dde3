"""The `swarmctl` command: one module per noun, wired together here.

Errors a user can cause are SwarmctlError: printed as one line, exit status 1.
"""

import sys

import typer

from swarmctl.cli import lab
from swarmctl.errors import SwarmctlError

app = typer.Typer(
    name="swarmctl",
    help="Agentless container orchestration over SSH, in the spirit of Docker swarm mode.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(lab.app, name="lab")


def main() -> None:
    try:
        app(standalone_mode=True)
    except SwarmctlError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("Error: interrupted", file=sys.stderr)
        sys.exit(130)
