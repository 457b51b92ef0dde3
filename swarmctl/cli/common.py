"""What every CLI module shares: how a command group is made."""

from typing import Annotated

import typer
import typer.core

# typer escapes "[required]" and "[default: 3]" for rich markup whenever rich is installed,
# even in plain help (rich_markup_mode=None), leaving "\[required]" on screen. Every other
# use of this flag is behind rich_markup_mode, which is None here.
typer.core.HAS_RICH = False


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
FormatOpt = Annotated[
    str,
    typer.Option(
        "--format",
        help="table, json (one object a line), 'table TEMPLATE' or a Go TEMPLATE "
        "like '{{.Name}}', as docker takes them.",
    ),
]
InspectFormatOpt = Annotated[
    str | None,
    typer.Option("--format", "-f", help="Go TEMPLATE applied to each document, e.g. '{{.ID}}'."),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Only print IDs.")]
# Every command that changes a cluster takes it (cli/plan.py); exit statuses as `nomad job plan`.
DryRunOpt = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Print the plan, change nothing; exit 0 if nothing would change, 2 if "
        "something would.",
    ),
]
