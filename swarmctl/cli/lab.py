"""`swarmctl lab …`: a multi-host lab on this machine, and the faults to rehearse on it."""

import os
import sys
from typing import Annotated

import typer

from swarmctl.cli.common import PASSTHROUGH, new_app
from swarmctl.lab.layout import DEFAULT_LAB, LabLayout

app = new_app("A local lab of hosts (network namespaces with sshd and dockerd).")

LabName = Annotated[
    str,
    typer.Option(
        "--lab",
        envvar="SWARMCTL_LAB",
        show_envvar=False,
        help="Which lab (several can run side by side); or $SWARMCTL_LAB.",
    ),
]
HostArg = Annotated[str, typer.Argument(help="A lab host, e.g. worker1.")]
CommandArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="One argument is a shell command line; several are a command and its arguments."
    ),
]


def _lab(name: str):
    from swarmctl.lab.manager import Lab

    return Lab(LabLayout(name), say=typer.echo)


@app.command()
def up(
    hosts: Annotated[int, typer.Option("--hosts", "-n", help="Number of hosts.")] = 3,
    managers: Annotated[int, typer.Option(help="How many of them are managers.")] = 1,
    offline: Annotated[
        bool | None,
        typer.Option(
            "--offline/--online",
            help="Hosts with no registry or mirror: images reach them by docker save | load. "
            "Default: the mode the lab is already up in (online for a new lab).",
        ),
    ] = None,
    lab: LabName = DEFAULT_LAB,
) -> None:
    """Bring the lab up (again): hosts, registry, images. Running twice is harmless."""
    the_lab = _lab(lab)
    the_lab.up(hosts, managers, offline)
    typer.echo(f"inventory: {the_lab.layout.inventory}")
    typer.echo(f"use it with: swarmctl -i {the_lab.layout.inventory} …")


@app.command()
def down(lab: LabName = DEFAULT_LAB) -> None:
    """Remove every process, namespace, link, mount and file of the lab."""
    _lab(lab).down()


@app.command()
def status(lab: LabName = DEFAULT_LAB) -> None:
    """Show each lab host and whether its sshd and dockerd answer."""
    from rich.console import Console
    from rich.table import Table

    the_lab = _lab(lab)
    states = the_lab.status()
    if not states:
        typer.echo(f"lab {lab}: down")
        raise typer.Exit(0)
    table = Table(box=None, pad_edge=False)
    for column in ("NAME", "ADDRESS", "STATE", "SSH", "DOCKER"):
        table.add_column(column)
    for s in states:
        table.add_row(
            s.host.name, s.host.address, s.state, "up" if s.ssh else "-", "up" if s.docker else "-"
        )
    Console().print(table)
    typer.echo(f"registry: {the_lab.layout.registry}  inventory: {the_lab.layout.inventory}")


@app.command()
def kill(host: HostArg, lab: LabName = DEFAULT_LAB) -> None:
    """Crash a host: every process on it dies at once, containers included."""
    _lab(lab).kill(host)


@app.command()
def off(host: HostArg, lab: LabName = DEFAULT_LAB) -> None:
    """Power a host off: a crash with the cable pulled (connections time out)."""
    _lab(lab).off(host)


@app.command()
def unplug(host: HostArg, lab: LabName = DEFAULT_LAB) -> None:
    """Cut a host off the network; its processes keep running (a partition)."""
    _lab(lab).unplug(host)


@app.command()
def plug(host: HostArg, lab: LabName = DEFAULT_LAB) -> None:
    """Put a host's cable back."""
    _lab(lab).plug(host)


@app.command()
def start(host: HostArg, lab: LabName = DEFAULT_LAB) -> None:
    """Boot a crashed or powered-off host again; its Docker data is kept."""
    _lab(lab).start(host)


@app.command("restart-docker")
def restart_docker(host: HostArg, lab: LabName = DEFAULT_LAB) -> None:
    """Restart a host's dockerd, as `systemctl restart docker` would."""
    _lab(lab).docker_restart(host)


@app.command(context_settings=PASSTHROUGH)
def ssh(host: HostArg, command: CommandArg = None, lab: LabName = DEFAULT_LAB) -> None:
    """Run a command on a host over SSH, from the lab's control namespace."""
    _replace_process(_lab(lab).ssh_argv(host, command or []))


@app.command("exec", context_settings=PASSTHROUGH)
def exec_(host: HostArg, command: CommandArg = None, lab: LabName = DEFAULT_LAB) -> None:
    """Run a command inside a host's namespaces, without SSH."""
    _replace_process(_lab(lab).exec_argv(host, command or []))


@app.command(context_settings=PASSTHROUGH)
def control(command: CommandArg = None, lab: LabName = DEFAULT_LAB) -> None:
    """Run a command in the lab's control namespace with a dead resolver, as from an ops
    laptop whose DNS does not answer (queries logged in <lab dir>/control/dns-queries.log)."""
    _replace_process(_lab(lab).control_argv(command or []))


@app.command()
def curl(
    url: Annotated[str, typer.Argument(help="http://ADDRESS[:PORT]/PATH")],
    lab: LabName = DEFAULT_LAB,
) -> None:
    """GET a URL from the lab's control namespace, as a user outside the cluster would."""
    from swarmctl.lab.manager import fetch

    typer.echo(fetch(LabLayout(lab), url), nl=False)


def _replace_process(argv: list[str]) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(argv[0], argv)
