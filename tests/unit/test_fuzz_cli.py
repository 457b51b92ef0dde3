"""Generated hostile values in every option and argument of the commands that reach no host.

Each run must fail as a user error: exit status 1 or 2, exactly one `Error:` line, no
traceback, the state file unchanged. The commands run in-process (a subprocess each would
allow a few dozen examples in the time); the state holds no cluster, so a value that is
valid still fails before any host is contacted. Inventory keys get the same values.
"""

import contextlib
import hashlib
import io
import sys
from pathlib import Path

import click
import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swarmctl import cli
from swarmctl.errors import SwarmctlError
from swarmctl.inventory import load_inventory
from swarmctl.state import StateStore

HOSTILE = st.one_of(
    st.sampled_from(
        ["", ";", "a;reboot", "$(touch /tmp/pwned)", "`id`", "'", '"', "a\nb", "\r", "-", "--"]
    ),
    st.text(min_size=1, max_size=20),
    st.text(alphabet="a;$`'\"\n\\ é\u202e\x00", min_size=1, max_size=30),
    st.just("x" * 5000),
    st.just("9" * 5000),
)

# Commands that reach no host when the state holds no cluster. state backup|restore write
# files wherever their argument points; init, join, leave and lab connect by design.
COMMANDS = [
    ("node", "ls"),
    ("node", "inspect"),
    ("node", "update"),
    ("node", "rm"),
    ("node", "ps"),
    ("node", "trust"),
    ("network", "create"),
    ("network", "ls"),
    ("network", "inspect"),
    ("network", "rm"),
    ("service", "create"),
    ("service", "ls"),
    ("service", "inspect"),
    ("service", "ps"),
    ("service", "logs"),
    ("service", "update"),
    ("service", "rollback"),
    ("service", "scale"),
    ("service", "rm"),
    ("info",),
]


def _command(path: tuple[str, ...]) -> click.Command:
    command = typer.main.get_command(cli.app)
    for name in path:
        command = command.get_command(click.Context(command), name)  # type: ignore[attr-defined]
    return command


def _parameters():
    return [(path, p) for path in COMMANDS for p in _command(path).params if p.name != "help"]


PARAMETERS = _parameters()


@pytest.fixture(scope="module")
def state(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fuzz") / "cluster.state.json"
    StateStore(path).create()
    return path


def run(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with (
        contextlib.redirect_stderr(err),
        contextlib.redirect_stdout(io.StringIO()),
        pytest.MonkeyPatch.context() as patch,
    ):
        patch.setattr(sys, "argv", ["swarmctl", *argv])
        patch.setattr(sys, "stdin", io.StringIO())  # not a terminal: no prompt
        try:
            cli.main()
        except SystemExit as exit:
            return exit.code if isinstance(exit.code, int) else 1, err.getvalue()
    return 0, err.getvalue()


def test_every_listed_command_exists():
    for path in COMMANDS:
        _command(path)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(choice=st.sampled_from(PARAMETERS), value=HOSTILE, other=HOSTILE)
def test_a_hostile_value_fails_in_one_error_line_and_changes_nothing(state, choice, value, other):
    path, param = choice
    before = hashlib.sha256(state.read_bytes()).digest()
    arguments = [
        other for p in _command(path).params if isinstance(p, click.Argument) and p is not param
    ]
    if isinstance(param, click.Argument):
        arguments.insert(0, value)
        options = []
    elif param.is_flag:
        options = [param.opts[0]]
        arguments = arguments or [value]
    else:
        options = [f"{param.opts[0]}={value}"] if value.startswith("-") else [param.opts[0], value]
    argv = ["--state", str(state), "-i", str(state.parent / "absent.yml"), *path]

    status, err = run([*argv, *options, "--", *arguments] if arguments else [*argv, *options])

    assert "Traceback" not in err
    assert status in (1, 2), err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    assert hashlib.sha256(state.read_bytes()).digest() == before


INVENTORY_KEYS = [
    "ansible_host",
    "ansible_user",
    "ansible_port",
    "key",
    "labels",
    "iface",
    "known_hosts",
    "netns",
    "role",
]


@settings(max_examples=200, deadline=None)
@given(key=st.sampled_from(INVENTORY_KEYS), value=HOSTILE)
def test_a_hostile_inventory_value_loads_or_fails_in_one_line(tmp_path_factory, key, value):
    path = tmp_path_factory.mktemp("inv") / "hosts.ini"
    quoted = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    path.write_text(f'[workers]\nw1 ansible_host=10.0.0.1 {key}="{quoted}"\n')
    try:
        load_inventory(path)
    except SwarmctlError as exc:
        assert "\n" not in str(exc)
