"""One cluster's state file: lock-free snapshots, locked read-modify-write transactions.

Owns who may write when (a filelock on "<path>.lock", held by one thread at a time), plus
backup and restore. The file format and the crash-safe write live in storage.py; what the
tables hold belongs to the callers.
"""

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

from tinydb import TinyDB

from swarmctl.errors import SwarmctlError
from swarmctl.state.storage import (
    SCHEMA_VERSION,
    DictStorage,
    Tables,
    decode,
    encode,
    make_private_dirs,
    new_state,
    remove_stale_temp_files,
    write_atomic,
)

__all__ = ["SCHEMA_VERSION", "StateStore"]

# Paths whose lock this thread holds: taking it again would wait on ourselves until timeout.
_held = threading.local()


def _held_paths() -> set[str]:
    if not hasattr(_held, "paths"):
        _held.paths = set()
    return _held.paths


def _make_private(fd: int) -> None:
    # The state holds services' -e values: a file made 0644 by hand or by an old copy is
    # put back to 0600 on the first read, as the writes would.
    if os.fstat(fd).st_mode & 0o077:
        with suppress(PermissionError):  # someone else's file: reading it is still fine
            os.fchmod(fd, 0o600)


class StateStore:
    """The state file of one cluster, shared by the CLI and the supervisor."""

    def __init__(self, path: str | Path, lock_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.lock_timeout = lock_timeout
        self._key = str(self.path.resolve())

    def exists(self) -> bool:
        return self.path.exists()

    def create(self) -> None:
        """Write a new state file holding only the meta record; refuse if one exists."""
        make_private_dirs(self.path.parent)
        with self._locked():
            if self.exists():
                raise SwarmctlError(
                    f"cluster state already exists at {self.path}: refusing to overwrite it"
                )
            self._commit(encode(new_state()))

    @contextmanager
    def read(self) -> Iterator[TinyDB]:
        """Yield the last committed state without locking; changes to it are never written.

        Writers replace the file by rename, so the one open() here sees a whole file.
        """
        yield TinyDB(self._load(), storage=DictStorage)

    def prepare_to_write(self) -> None:
        """Import what a transaction needs (~10-20 ms) now, while the caller waits for
        something else (a connection, a registry) before its first write."""
        import filelock  # noqa: F401

    @contextmanager
    def transaction(self) -> Iterator[TinyDB]:
        """Yield the current state under the lock; write it back on normal exit if it changed.

        An exception in the body propagates and nothing is written.
        """
        self._require_file()
        with self._locked():
            db = TinyDB(self._load(), storage=DictStorage)
            yield db
            storage = cast(DictStorage, db.storage)
            if storage.changed:
                self._commit(encode(storage.tables))

    def backup(self, dest: str | Path) -> Path:
        """Copy the state to `dest` (a file, or a directory to put a stamped copy in)."""
        dest = Path(dest)
        self._require_file()
        with self._locked():
            raw = self._read_bytes()
            decode(raw, self.path)
            target = self._backup_name(dest) if dest.is_dir() else dest
            write_atomic(target, raw)
        return target

    def restore(self, src: str | Path) -> None:
        """Replace the state with a validated copy of `src`, keeping the old file beside it.

        The current file is not validated: restoring is how a corrupt state gets repaired.
        """
        src = Path(src)
        try:
            raw = src.read_bytes()
        except OSError as exc:
            raise SwarmctlError(f"cannot read state file {src}: {exc.strerror}") from exc
        decode(raw, src, remedy="")
        make_private_dirs(self.path.parent)
        with self._locked():
            if self.exists():
                write_atomic(Path(f"{self.path}.before-restore"), self._read_bytes())
            self._commit(raw)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        held = _held_paths()
        if self._key in held:
            raise RuntimeError(
                f"nested transaction on state file {self.path}: this thread "
                "already holds its lock (transaction, backup or restore)"
            )
        # Imported here: filelock costs ~20 ms to import and read-only commands never lock.
        from filelock import FileLock, Timeout

        lock = FileLock(f"{self.path}.lock", timeout=self.lock_timeout, mode=0o600)
        try:
            lock.acquire()
        except Timeout as exc:
            raise SwarmctlError(
                f"state file {self.path} is busy: another swarmctl has held its "
                f"lock for more than {self.lock_timeout:g} s"
            ) from exc
        except OSError as exc:
            raise SwarmctlError(f"cannot lock state file {self.path}: {exc.strerror}") from exc
        held.add(self._key)
        try:
            yield
        finally:
            held.discard(self._key)
            lock.release()

    def _commit(self, raw: bytes) -> None:
        remove_stale_temp_files(self.path)
        write_atomic(self.path, raw)

    def _load(self) -> Tables:
        return decode(self._read_bytes(), self.path)

    def _read_bytes(self) -> bytes:
        try:
            with open(self.path, "rb") as file:
                _make_private(file.fileno())
                return file.read()
        except FileNotFoundError as exc:
            raise self._missing() from exc
        except OSError as exc:
            raise SwarmctlError(f"cannot read state file {self.path}: {exc.strerror}") from exc

    def _require_file(self) -> None:
        # Checked before locking, so a wrong --state does not leave a stray "<path>.lock".
        if not os.path.lexists(self.path):
            raise self._missing()

    def _missing(self) -> SwarmctlError:
        return SwarmctlError(
            f"no cluster state at {self.path}: run `swarmctl init` first (or pass --state)"
        )

    def _backup_name(self, directory: Path) -> Path:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        target = directory / f"{self.path.stem}-{stamp}.json"
        n = 1
        while target.exists():
            n += 1
            target = directory / f"{self.path.stem}-{stamp}-{n}.json"
        return target
