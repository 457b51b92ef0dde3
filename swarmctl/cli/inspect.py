"""`swarmctl inspect [--type T] REF…`: any object by name, ID or ID prefix, as docker's
`inspect`. Tasks come as swarmctl's own task records (every field the supervisor keeps),
which is what scripts that follow tasks need now that `service ps --format json` prints
docker's rows."""

from typing import Annotated

import typer

from swarmctl.cli.common import InspectFormatOpt
from swarmctl.cli.context import env
from swarmctl.errors import SwarmctlError

TYPES = ("service", "node", "network", "task", "secret", "config")


def inspect(
    ctx: typer.Context,
    refs: Annotated[list[str], typer.Argument(metavar="NAME|ID…", help="Objects to show.")],
    type_: Annotated[
        str | None,
        typer.Option(
            "--type",
            help="service, node, network, task, secret or config (default: the first found).",
        ),
    ] = None,
    fmt: InspectFormatOpt = None,
) -> None:
    """Show objects in detail, as JSON or through a --format template."""
    from swarmctl.cli import network, node, service
    from swarmctl.cli.goformat import render_documents
    from swarmctl.codec import to_json
    from swarmctl.state.repo import Repo

    if type_ is not None and type_ not in TYPES:
        raise SwarmctlError(f"--type {type_!r}: use {', '.join(TYPES)}")
    with env(ctx).store.read() as db:
        repo = Repo(db)
        networks, nodes = repo.networks.all(), {n.id: n for n in repo.nodes.all()}
        documents = {
            "service": lambda s: service.inspect_json(s, networks),
            "node": node.inspect_json,
            "network": lambda n: network.inspect_json(n, nodes),
            "task": to_json,
            "secret": lambda r: file_json("secret", r),
            "config": lambda r: file_json("config", r),
        }
        tables = {
            "service": repo.services,
            "node": repo.nodes,
            "network": repo.networks,
            "task": repo.tasks,
            "secret": repo.secrets,
            "config": repo.configs,
        }
        found = []
        for ref in refs:
            for kind in [type_] if type_ else TYPES:
                item = tables[kind].find(ref)
                if item is not None:
                    found.append(documents[kind](item))
                    break
            else:
                raise SwarmctlError(f"no such {type_ or 'object'}: {ref!r}")
    render_documents(fmt, found)


def file_json(kind: str, record) -> dict:
    """As `docker secret inspect` / `docker config inspect` print one."""
    spec: dict = {"Name": record.name, "Labels": record.labels}
    if kind == "config":
        spec["Data"] = record.data  # base64, as docker shows it
    return {
        "ID": record.id,
        "Version": {"Index": record.version},
        "CreatedAt": record.created_at,
        "UpdatedAt": record.updated_at,
        "Spec": spec,
    }
