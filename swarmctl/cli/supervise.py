"""`swarmctl supervise` and `swarmctl events`."""

import os
import shlex
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from swarmctl.cli.context import env
from swarmctl.errors import SwarmctlError

# Read by the unit if it exists: where a passphrase for the secrets belongs (root only).
ENVIRONMENT_FILE = "/etc/swarmctl/supervise.env"


def supervise(
    ctx: typer.Context,
    interval: Annotated[str, typer.Option(help="Time between ticks, e.g. 1s, 500ms.")] = "1s",
    once: Annotated[bool, typer.Option(help="Run one tick and exit (for scripts).")] = False,
    misses: Annotated[
        int, typer.Option(help="Heartbeats a node may miss in a row before it is declared down.")
    ] = 3,
    unit: Annotated[
        bool, typer.Option(help="Print a systemd unit that runs this supervisor, and exit.")
    ] = False,
) -> None:
    """Watch every node; replace failed tasks and the tasks of lost nodes."""
    from swarmctl.spec import parse_duration

    seconds = parse_duration(interval, "--interval")
    if not 0.1 <= seconds <= 3600:
        raise SwarmctlError(f"--interval {interval}: use 100ms to 1h")
    if misses < 1:
        raise SwarmctlError(f"--misses {misses}: must be 1 or more")
    e = env(ctx)
    if unit:
        _print_unit(e, interval, misses)
        return
    from swarmctl.supervisor import Settings, Supervisor

    with e.store.read():
        pass  # a missing or foreign state file is reported before anything starts
    # systemd and `kill` stop it with SIGTERM: leave through the same door as Ctrl-C, so
    # the lease is handed back at once.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    supervisor = Supervisor(
        e.store,
        e.inventory,
        Settings(interval=seconds, misses=misses),
        say=lambda line: print(line, flush=True),
    )
    supervisor.run(once=once)


def _print_unit(e, interval: str, misses: int) -> None:
    from swarmctl.commands.render import render
    from swarmctl.secrets import KEY_FILE_ENV, PASSPHRASE_ENV

    # The supervisor starts tasks that use secrets: it needs the key. A key file is named
    # in the unit; a passphrase never is written there, it goes in the EnvironmentFile.
    key_file = os.environ.get(KEY_FILE_ENV)
    if not key_file and os.environ.get(PASSPHRASE_ENV):
        typer.echo(
            f"Warning: the unit does not carry ${PASSPHRASE_ENV}: put it in {ENVIRONMENT_FILE}",
            err=True,
        )
    key_args = ["--secrets-key-file", str(Path(key_file).resolve())] if key_file else []
    command = shlex.join(
        [
            sys.executable,
            "-m",
            "swarmctl",
            "-i",
            str(e.inventory_path.resolve()),
            "--state",
            str(e.state_path.resolve()),
            *key_args,
            "supervise",
            "--interval",
            interval,
            "--misses",
            str(misses),
        ]
    )
    typer.echo(
        render(
            "systemd/swarmctl-supervise.service.j2",
            command=command,
            inventory=e.inventory_path.name,
            workdir=str(Path.cwd()),
            environment_file=ENVIRONMENT_FILE,
        ),
        nl=False,
    )


def events(
    ctx: typer.Context,
    since: Annotated[
        str | None,
        typer.Option(help="Only events from this time on (ISO 8601, or a duration like 10m)."),
    ] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new ones.")] = False,
    filter_: Annotated[list[str] | None, typer.Option("--filter", help="service=NAME")] = None,
    fmt: Annotated[str, typer.Option("--format", help="plain or json.")] = "plain",
) -> None:
    """Task and node state changes, as swarm's daemon log shows them."""
    import json
    from dataclasses import asdict
    from datetime import UTC, datetime, timedelta

    from swarmctl.spec import parse_duration
    from swarmctl.state import events as log

    if fmt not in ("plain", "json"):
        raise SwarmctlError(f"--format {fmt!r}: use plain or json")
    service = None
    for item in filter_ or []:
        key, _, value = item.partition("=")
        if key != "service" or not value:
            raise SwarmctlError(f"--filter {item!r}: use service=NAME")
        service = value
    start = None
    if since:
        try:
            start = datetime.fromisoformat(since).astimezone(UTC)
        except ValueError:
            start = datetime.now(UTC) - timedelta(seconds=parse_duration(since, "--since"))
    path = log.path_for(env(ctx).state_path)
    stamp = start.isoformat(timespec="milliseconds") if start else None
    try:
        for event in log.read(path, since=stamp, service=service, follow=follow):
            typer.echo(json.dumps(asdict(event)) if fmt == "json" else event.line())
    except KeyboardInterrupt:
        return
