"""The `swarmctl` command: one module per noun, wired together here.

Errors a user can cause (SwarmctlError, bad usage) are printed as one line, with a
non-zero exit status and no traceback.
"""

import sys

import typer
from typer.exceptions import TyperException

from swarmctl.cli import lab
from swarmctl.cli.common import new_app
from swarmctl.errors import SwarmctlError

app = new_app("Agentless container orchestration over SSH, in the spirit of Docker swarm mode.")
app.add_typer(lab.app, name="lab")


def main() -> None:
    try:
        status = app(standalone_mode=False)
    except SwarmctlError as exc:
        _fail(str(exc), exc.exit_code)
    except TyperException as exc:  # click's usage errors, as vendored by typer
        message = exc.format_message()
        if message.startswith("Usage:"):  # a command group given no command: its help
            print(message)
            sys.exit(0)
        ctx = getattr(exc, "ctx", None)
        _fail(message + (f" (see `{ctx.command_path} --help`)" if ctx else ""), exc.exit_code)
    except typer.Abort:
        _fail("aborted", 1)
    sys.exit(status if isinstance(status, int) else 0)


def _fail(message: str, code: int) -> None:
    print(f"Error: {message}", file=sys.stderr)
    sys.exit(code)
