"""`swarmctl secret create|ls|inspect|rm|update`: the cluster's secrets.

`config` is the same set of commands over configs (cli/config.py); they differ only in
that a secret's value is never shown, and a config's is with `inspect --pretty`.
"""

import sys
from typing import Annotated

import typer

from swarmctl.cli.common import DryRunOpt, FormatOpt, InspectFormatOpt, QuietOpt, new_app
from swarmctl.cli.context import env
from swarmctl.cli.inspect import file_json
from swarmctl.cli.output import warn
from swarmctl.errors import SwarmctlError

Detach = Annotated[
    bool, typer.Option("--detach", "-d", help="Exit at once, without waiting for the tasks.")
]


def make_app(kind: str) -> typer.Typer:
    app = new_app(f"Manage {kind}s.")
    NameArg = Annotated[str, typer.Argument(metavar="NAME", help=f"The {kind}'s name.")]
    FileArg = Annotated[
        str, typer.Argument(metavar="FILE|-", help="A file holding the value, or - for stdin.")
    ]

    @app.command(help=f"Create a {kind} from a file or standard input; print its ID.")
    def create(
        ctx: typer.Context,
        name: NameArg,
        file: FileArg,
        label: Annotated[list[str] | None, typer.Option("--label", "-l", help="key=value.")] = None,
        dry_run: DryRunOpt = False,
    ) -> None:
        from swarmctl import secrets
        from swarmctl.naming import parse_key_values
        from swarmctl.spec import check_file_name
        from swarmctl.state.repo import Repo

        check_file_name(kind, name)
        labels = parse_key_values(label, "--label")
        data = secrets.read_source(kind, file, _stdin(file))

        def record_new(repo):
            repo.cluster()
            if repo.files(kind).find(name) is not None:
                raise SwarmctlError(
                    f"{kind} {name} already exists (change it with `{kind} update`)"
                )
            return secrets.put(repo, kind, name, data, labels)[0]

        if dry_run:
            from swarmctl.cli.plan import dry_run as preview

            preview(env(ctx).store, record_new)
        with env(ctx).store.transaction() as db:
            record = record_new(Repo(db))
        typer.echo(record.id)

    @app.command("ls")
    def ls(ctx: typer.Context, fmt: FormatOpt = "table", quiet: QuietOpt = False) -> None:
        """List them, as docker does."""
        from swarmctl.cli.goformat import render_rows
        from swarmctl.cli.output import table
        from swarmctl.clock import ago

        records = sorted(_read(ctx, kind), key=lambda r: r.name)
        if quiet:
            for record in records:
                typer.echo(record.id)
            return
        rows = [
            {
                "ID": r.id,
                "Name": r.name,
                "CreatedAt": ago(r.created_at),
                "UpdatedAt": ago(r.updated_at),
                "Version": r.version,
                "Labels": ",".join(f"{k}={v}" for k, v in sorted(r.labels.items())),
            }
            for r in records
        ]
        render_rows(
            fmt,
            rows,
            lambda: table(
                ("ID", "NAME", "CREATED", "UPDATED"),
                [(r["ID"], r["Name"], r["CreatedAt"], r["UpdatedAt"]) for r in rows],
            ),
            headers={"CreatedAt": "CREATED", "UpdatedAt": "UPDATED"},
        )

    @app.command()
    def inspect(
        ctx: typer.Context,
        names: Annotated[list[str], typer.Argument(metavar="NAME…", help="Names or IDs.")],
        fmt: InspectFormatOpt = None,
        pretty: Annotated[
            bool, typer.Option("--pretty", help="Human-readable text.", show_default=False)
        ] = False,
    ) -> None:
        """Show them in detail (never a secret's value)."""
        from swarmctl.cli.goformat import render_documents
        from swarmctl.state.repo import Repo

        if pretty and fmt:
            raise SwarmctlError("--format and --pretty cannot be given together")
        with env(ctx).store.read() as db:
            repo = Repo(db)
            found = [repo.files(kind).get(ref) for ref in names]
        if not pretty:
            render_documents(fmt, [file_json(kind, r) for r in found])
            return
        for record in found:
            _pretty(kind, record)

    @app.command()
    def rm(
        ctx: typer.Context,
        names: Annotated[list[str], typer.Argument(metavar="NAME…", help="Names or IDs.")],
        dry_run: DryRunOpt = False,
    ) -> None:
        """Remove them (refused while a service uses one)."""
        from swarmctl import secrets
        from swarmctl.state.repo import Repo

        if dry_run:
            from swarmctl.cli.plan import dry_run as preview

            preview(env(ctx).store, lambda repo: secrets.remove(repo, kind, names))

        with env(ctx).store.transaction() as db:
            removed = secrets.remove(Repo(db), kind, names)
        for record in removed:
            typer.echo(record.name)

    @app.command()
    def update(
        ctx: typer.Context,
        name: NameArg,
        file: FileArg,
        detach: Detach = False,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress.")] = False,
        dry_run: DryRunOpt = False,
    ) -> None:
        """Give it a new value (a new version) and roll every service using it, each with
        its update policy (exits non-zero when one did not complete)."""
        from swarmctl import secrets, services
        from swarmctl.state.repo import Repo

        data = secrets.read_source(kind, file, _stdin(file))
        e = env(ctx)

        def record_value(repo):
            record = repo.files(kind).get(name)
            record, changed = secrets.put(repo, kind, record.name, data)
            if changed:
                return record, changed, services.renew_users(repo, kind, record.name)
            # A rerun after Ctrl-C carries on the updates the first one recorded.
            users = secrets.users(repo.services.all(), kind, record.name)
            going = [s for s in users if s.update_status and s.update_status.state.in_progress]
            return record, changed, going

        if dry_run:
            from swarmctl.cli.plan import Change
            from swarmctl.cli.plan import dry_run as preview

            preview(e.store, lambda repo: Change({s.id for s in record_value(repo)[2]}))
        with e.store.transaction() as db:
            record, changed, renewed = record_value(Repo(db))
        if changed:
            typer.echo(f"{record.name}: version {record.version}")
        elif not renewed:
            typer.echo(f"{record.name}: value unchanged, no service rolled")
            return
        if not renewed or detach:
            for service in renewed:
                typer.echo(f"{service.spec.name}: update recorded")
            return
        _roll_all(e, renewed, quiet)

    return app


def _stdin(file: str) -> bytes | None:
    return sys.stdin.buffer.read() if file == "-" else None


def _read(ctx: typer.Context, kind: str):
    from swarmctl.state.repo import Repo

    with env(ctx).store.read() as db:
        repo = Repo(db)
        repo.cluster()
        return repo.files(kind).all()


def _pretty(kind: str, record) -> None:
    import base64

    typer.echo(f"ID:              {record.id}")
    typer.echo(f"Name:            {record.name}")
    if record.labels:
        typer.echo("Labels:")
        for key, value in sorted(record.labels.items()):
            typer.echo(f" - {key}={value}")
    typer.echo(f"Version:         {record.version}")
    typer.echo(f"Created at:      {record.created_at}")
    typer.echo(f"Updated at:      {record.updated_at}")
    if kind == "config":
        typer.echo("Data:")
        typer.echo(base64.b64decode(record.data).decode(errors="replace"))


def _roll_all(e, renewed, quiet: bool) -> None:
    """Carry each service's update through; fail naming those that did not complete."""
    from swarmctl import rolling

    def progress(task) -> None:
        error = f": {task.error}" if task.error else ""
        typer.echo(f"{task.slot or task.node_id[:12]}: {task.state.value}{error}")

    failed = []
    with e.pool() as pool:
        for service in renewed:
            if not quiet:
                typer.echo(f"{service.spec.name}: rolling")
            status, warnings = rolling.roll(e.store, pool, service.id, None if quiet else progress)
            warn(warnings)
            state = status.state.value if status else "gone"
            if state != "completed":
                message = status.message if status else "the service was removed"
                failed.append(f"service {service.spec.name}: {state.replace('_', ' ')}: {message}")
            elif not quiet:
                typer.echo(f"{service.spec.name}: {status.message}")
    if failed:
        raise SwarmctlError("; ".join(failed))


app = make_app("secret")
