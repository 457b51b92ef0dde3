"""The state file on disk: its JSON format, validation, and crash-safe writes.

Owns the meta record, the schema check, the error messages about a bad file and the
write-temp-fsync-rename sequence. It does not lock: callers serialise writers (see store.py).
"""

import json
import os
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tinydb.storages import Storage

from swarmctl.errors import SwarmctlError
from swarmctl.state.schema import check_documents

SCHEMA_VERSION = 1
APP = "swarmctl"
RESTORE_HINT = ": restore a backup with `swarmctl state restore FILE`"

Tables = dict[str, dict[str, Any]]


class DictStorage(Storage):
    """TinyDB storage over tables already in memory; records whether TinyDB wrote to them."""

    def __init__(self, tables: Tables) -> None:
        self.tables = tables
        self.changed = False

    def read(self) -> Tables:
        return self.tables

    def write(self, data: Tables) -> None:
        self.tables = data
        self.changed = True


def new_state() -> Tables:
    created_at = datetime.now(UTC).isoformat(timespec="seconds")
    return {"meta": {"1": {"app": APP, "schema": SCHEMA_VERSION, "created_at": created_at}}}


def encode(tables: Tables) -> bytes:
    # Compact output keeps the C encoder (indent= falls back to pure Python) and the file small.
    return json.dumps(tables, separators=(",", ":"), allow_nan=False).encode()


def decode(raw: bytes, path: Path, remedy: str = RESTORE_HINT) -> Tables:
    """Parse and validate the bytes of a state file; every failure names `path`."""
    try:
        tables = json.loads(raw)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}: {exc.msg}"
        raise SwarmctlError(f"state file {path} is corrupt ({where}){remedy}") from exc
    except UnicodeDecodeError as exc:
        raise SwarmctlError(
            f"state file {path} is corrupt (not UTF-8 at byte {exc.start}){remedy}"
        ) from exc
    schema = _schema_of(tables)
    if schema is None:
        raise SwarmctlError(f"{path} is not a swarmctl state file")
    if schema > SCHEMA_VERSION:
        raise SwarmctlError(
            f"{path} was written by a newer swarmctl "
            f"(schema {schema}, this one reads up to {SCHEMA_VERSION})"
        )
    for name, table in tables.items():
        if not _is_table(table):
            raise SwarmctlError(
                f"state file {path} is corrupt (table {name!r} is not a table of documents){remedy}"
            )
    check_documents(tables, path, remedy)
    return tables


def _schema_of(tables: object) -> int | None:
    meta = tables.get("meta") if isinstance(tables, dict) else None
    if not isinstance(meta, dict):
        return None
    for record in meta.values():
        if isinstance(record, dict) and record.get("app") == APP:
            schema = record.get("schema")
            valid = isinstance(schema, int) and not isinstance(schema, bool) and schema >= 1
            return schema if valid else None
    return None


def _is_table(table: object) -> bool:
    # TinyDB turns every key into an int document id and expects a dict behind it.
    return isinstance(table, dict) and all(
        key.isdecimal() and isinstance(doc, dict) for key, doc in table.items()
    )


def write_atomic(path: Path, raw: bytes) -> None:
    """Replace `path` with `raw` (mode 0600) so that a crash leaves the old or the new file."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temp_prefix(path))  # mode 0600
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(raw)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        fsync_dir(path.parent)
    except OSError as exc:
        raise SwarmctlError(f"cannot write {path}: {exc.strerror}") from exc


def remove_stale_temp_files(path: Path) -> None:
    """Delete temp files a killed writer left beside `path`; call only while holding its lock."""
    pattern = re.compile(re.escape(_temp_prefix(path)) + r"[a-z0-9_]+")
    for entry in os.scandir(path.parent):
        if pattern.fullmatch(entry.name):
            Path(entry.path).unlink(missing_ok=True)


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.tmp-"


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_private_dirs(directory: Path) -> None:
    """Create `directory` and its missing parents, each mode 0700."""
    missing = [d for d in (directory, *directory.parents) if not d.exists()]
    try:
        for d in reversed(missing):
            d.mkdir(mode=0o700, exist_ok=True)
            fsync_dir(d.parent)
    except OSError as exc:
        raise SwarmctlError(f"cannot create directory {exc.filename}: {exc.strerror}") from exc
