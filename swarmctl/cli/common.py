"""What every CLI module shares: how a command group is made."""

from typing import Annotated

import typer


def new_app(help: str, **kwargs) -> typer.Typer:
    # Plain (not rich) help and errors: quicker to import, and errors stay on one line.
    return typer.Typer(
        help=help,
        no_args_is_help=True,
        add_completion=False,
        rich_markup_mode=None,
        pretty_exceptions_enable=False,
        **kwargs,
    )


# For commands that pass the rest of the line on (`lab ssh HOST docker ps --format …`).
PASSTHROUGH = {"allow_interspersed_args": False, "ignore_unknown_options": True}

# Options every listing takes.
FormatOpt = Annotated[str, typer.Option("--format", help="table or json.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Only print IDs.")]
