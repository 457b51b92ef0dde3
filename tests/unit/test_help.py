"""Every command's --help against a golden file (tests/unit/data/help/*.txt), at a fixed
width and without colour: help changes show up in review, and no stray markup escapes
("\\[required]") reach the screen. `UPDATE_GOLDEN=1 pytest tests/unit/test_help.py` rewrites
the files after an intended change."""

import os
from pathlib import Path

import click
import pytest
import typer.main

from swarmctl.cli import app

GOLDEN = Path(__file__).parent / "data" / "help"
WIDTH = 100


def commands(
    command: click.Command, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], click.Command]]:
    found = [(path, command)]
    if isinstance(command, click.Group):
        ctx = click.Context(command)
        for name in sorted(command.list_commands(ctx)):
            found += commands(subcommand(command, name), (*path, name))
    return found


def subcommand(group: click.Command, name: str) -> click.Command:
    """By click's API, which loads a noun the root group has not imported yet."""
    assert isinstance(group, click.Group)
    found = group.get_command(click.Context(group), name)
    assert found is not None, name
    return found


ALL = commands(typer.main.get_command(app))


def help_text(path: tuple[str, ...]) -> str:
    root = typer.main.get_command(app)
    ctx = click.Context(root, info_name="swarmctl", terminal_width=WIDTH, max_content_width=WIDTH)
    command: click.Command = root
    for name in path:
        command = subcommand(command, name)
        ctx = click.Context(command, info_name=name, parent=ctx)
    return command.get_help(ctx) + "\n"


@pytest.mark.parametrize("path", [p for p, _ in ALL], ids=lambda p: "-".join(["swarmctl", *p]))
def test_help_matches_its_golden_file(path: tuple[str, ...]) -> None:
    golden = GOLDEN / ("-".join(["swarmctl", *path]) + ".txt")
    text = help_text(path)
    if os.environ.get("UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text()


def test_no_help_shows_markup_escapes_or_contradicts_itself() -> None:
    for path, _ in ALL:
        text = help_text(path)
        assert "\\[" not in text, path
    attachable = help_text(("network", "create"))
    assert "--attachable" in attachable and "no-attachable" not in attachable
