"""The `swarmctl` command: one module per noun, wired together here.

Errors a user can cause (SwarmctlError, bad usage) are printed as one line, with a
non-zero exit status and no traceback.
"""

import gc
import importlib
import os
import sys
from typing import Annotated

import click
import typer
import typer.main
from typer.core import TyperGroup

from swarmctl.cli import cluster, inspect, supervise
from swarmctl.cli.common import new_app
from swarmctl.cli.context import Env
from swarmctl.errors import SwarmctlError, cut

NOUNS = (
    "node",
    "network",
    "service",
    "stack",
    "secret",
    "config",
    "volume",
    "image",
    "state",
    "lab",
)


class Nouns(TyperGroup):
    """The root group. A noun's module is imported, and its commands built, only when it is
    run or listed: `service ls` pays for one noun of six (read-only commands answer in
    under 150 ms, and most of that is start-up)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*(n for n in self.commands if n not in NOUNS), *NOUNS]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            # An unknown name loads every noun, so that the error suggests from all of them.
            for noun in [cmd_name] if cmd_name in NOUNS else NOUNS:
                self._load(noun)
        return super().get_command(ctx, cmd_name)

    def _load(self, noun: str) -> None:
        if noun not in self.commands:
            module = importlib.import_module(f"swarmctl.cli.{noun}")
            self.add_command(typer.main.get_group(module.app), noun)


app = new_app(
    "Agentless container orchestration over SSH, in the spirit of Docker swarm mode.",
    cls=Nouns,
)


@app.callback()
def root(
    ctx: typer.Context,
    inventory: Annotated[
        str | None,
        typer.Option(
            "--inventory",
            "-i",
            envvar="SWARMCTL_INVENTORY",
            show_envvar=False,  # the help text names it
            help="Inventory file (Ansible YAML or INI); or $SWARMCTL_INVENTORY.",
        ),
    ] = None,
    state_file: Annotated[
        str | None,
        typer.Option(
            "--state",
            envvar="SWARMCTL_STATE",
            show_envvar=False,
            help="State file (default: <inventory>.state.json beside the inventory); "
            "or $SWARMCTL_STATE.",
        ),
    ] = None,
    secrets_key_file: Annotated[
        str | None,
        typer.Option(
            "--secrets-key-file",
            help="File holding the key to the cluster's secrets; or $SWARMCTL_SECRETS_KEY_FILE "
            "(or a passphrase in $SWARMCTL_SECRETS_PASSPHRASE).",
        ),
    ] = None,
) -> None:
    if secrets_key_file:  # where secrets.key_material looks, in this process and its children
        os.environ["SWARMCTL_SECRETS_KEY_FILE"] = secrets_key_file
    ctx.obj = Env(inventory, state_file)


for command in (
    cluster.init,
    cluster.join,
    cluster.leave,
    cluster.info,
    inspect.inspect,
    supervise.supervise,
    supervise.events,
):
    app.command()(command)


def main() -> None:
    try:
        _run()
    finally:
        # What the command made is left to the process's end: the collections the
        # interpreter runs on its way out walk every object (~40 ms after a command that
        # reached hosts) to free memory the operating system takes back anyway.
        gc.freeze()


def _run() -> None:
    try:
        status = app(standalone_mode=False)
    except SwarmctlError as exc:
        _fail(str(exc), exc.exit_code)
    except click.exceptions.NoArgsIsHelpError as exc:  # a group given no command: its help
        print(exc.format_message())
        sys.exit(0)
    except click.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx else "swarmctl"
        _fail(f"{cut(exc.format_message(), 300)} (see `{command} --help`)", exc.exit_code)
    except click.ClickException as exc:
        _fail(cut(exc.format_message(), 300), exc.exit_code)
    except (click.Abort, KeyboardInterrupt):
        _interrupted()
    if status == 130:  # typer's exit status for Ctrl-C
        _interrupted()
    sys.exit(status if isinstance(status, int) else 0)


def _fail(message: str, code: int) -> None:
    # One line whatever the user typed: click echoes values, line breaks included.
    one_line = "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)
    print(f"Error: {one_line}", file=sys.stderr)
    sys.exit(code)


def _interrupted() -> None:
    print(
        "Error: interrupted (the state file is whole; the next command on the same services, "
        "or the supervisor, finishes what was started)",
        file=sys.stderr,
        flush=True,
    )
    sys.stdout.flush()
    # Now, without waiting for SSH threads that may sit in a connect for seconds more.
    os._exit(130)
