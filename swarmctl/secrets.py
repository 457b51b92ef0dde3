"""Secrets and configs: their records, the encryption of secrets, and a task's files.

Owns the secrets key (derived by scrypt from a key file or a passphrase the user holds;
the state keeps only the salt and a check value, so a wrong key is named, never used),
create/update/remove of records, and the archive a node unpacks into a task's tmpfs.
Sending that archive is the executor's; rolling the services that use a secret is the
caller's (services.update_service with force).
"""

import base64
import io
import os
import tarfile
from collections.abc import Iterable
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

from swarmctl import clock
from swarmctl.errors import SwarmctlError
from swarmctl.models import SecretsKey, Service, ServiceSpec, StoredFile
from swarmctl.naming import new_id
from swarmctl.spec import check_file_name
from swarmctl.state.repo import Repo

KEY_FILE_ENV = "SWARMCTL_SECRETS_KEY_FILE"
PASSPHRASE_ENV = "SWARMCTL_SECRETS_PASSPHRASE"
CHECK_TEXT = b"swarmctl secrets key check"
MAX_SIZE = 500 * 1024  # docker's limit for a secret or a config
WRONG_KEY = "the secrets key does not open this cluster's secrets"
KINDS = ("secret", "config")


def key_material() -> bytes:
    """What the user gave as the secrets key: a key file's bytes, else a passphrase."""
    path = os.environ.get(KEY_FILE_ENV)
    if path:
        try:
            material = Path(path).read_bytes().strip()
        except OSError as exc:
            raise SwarmctlError(
                f"secrets key file {path}: cannot read it ({exc.strerror})"
            ) from None
        if not material:
            raise SwarmctlError(f"secrets key file {path} is empty")
        return material
    passphrase = os.environ.get(PASSPHRASE_ENV)
    if passphrase:
        return passphrase.encode()
    raise SwarmctlError(
        f"secrets need a key: set {KEY_FILE_ENV} (or pass --secrets-key-file) or {PASSPHRASE_ENV}"
    )


@lru_cache(maxsize=4)
def _fernet(material: bytes, salt: bytes):
    # Imported here: cryptography costs import time that commands without secrets skip.
    from cryptography.fernet import Fernet
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    key = Scrypt(salt=salt, length=32, n=2**15, r=8, p=1).derive(material)
    return Fernet(base64.urlsafe_b64encode(key))


def cipher(repo: Repo, create: bool = False):
    """The Fernet that opens this cluster's secrets; `create` makes the salt and check
    value on the first secret. A key that fails the check is refused in one line."""
    from cryptography.fernet import InvalidToken

    material = key_material()
    record = repo.secrets_key()
    if record is None:
        if not create:
            raise SwarmctlError("this cluster holds no secrets yet")
        salt = os.urandom(16)
        fernet = _fernet(material, salt)
        repo.set_secrets_key(
            SecretsKey(base64.b64encode(salt).decode(), fernet.encrypt(CHECK_TEXT).decode())
        )
        return fernet
    fernet = _fernet(material, base64.b64decode(record.salt))
    try:
        fernet.decrypt(record.check.encode())
    except InvalidToken:
        raise SwarmctlError(WRONG_KEY) from None
    return fernet


def value(repo: Repo, kind: str, record: StoredFile) -> bytes:
    """The plain value of a secret or config."""
    if kind == "config":
        return base64.b64decode(record.data)
    from cryptography.fernet import InvalidToken

    try:
        return cipher(repo).decrypt(record.data.encode())
    except InvalidToken:
        raise SwarmctlError(f"secret {record.name}: {WRONG_KEY}") from None


def read_source(kind: str, source: str, stdin: bytes | None = None) -> bytes:
    """The bytes of FILE, or of standard input for "-"; too big or unreadable is refused."""
    if source == "-":
        data = stdin if stdin is not None else b""
    else:
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise SwarmctlError(f"{kind} file {source}: cannot read it ({exc.strerror})") from None
    if not data:
        raise SwarmctlError(f"{kind} data from {'stdin' if source == '-' else source} is empty")
    if len(data) > MAX_SIZE:
        raise SwarmctlError(
            f"{kind} data from {source}: {len(data)} bytes, more than {MAX_SIZE // 1024} KiB"
        )
    return data


def put(
    repo: Repo, kind: str, name: str, data: bytes, labels: dict[str, str] | None = None
) -> tuple[StoredFile, bool]:
    """Create the secret or config, or give it this value (a new version) if it differs;
    returns the record and whether its value is new (services using it must then roll).
    Labels given replace the record's. Call inside the caller's state transaction."""
    check_file_name(kind, name)
    if len(data) > MAX_SIZE:
        raise SwarmctlError(f"{kind} {name}: {len(data)} bytes, more than {MAX_SIZE // 1024} KiB")
    table = repo.files(kind)
    found = next((r for r in table.all() if r.name == name), None)
    now = clock.now()
    if found is None:
        record = StoredFile(new_id(), name, now, now, _encode(repo, kind, data), 1, labels or {})
        table.put(record)
        return record, True
    wanted_labels = found.labels if labels is None else labels
    if value(repo, kind, found) == data:
        if wanted_labels != found.labels:
            found = replace(found, labels=wanted_labels, updated_at=now)
            table.put(found)
        return found, False
    record = replace(
        found,
        data=_encode(repo, kind, data),
        version=found.version + 1,
        updated_at=now,
        labels=wanted_labels,
    )
    table.put(record)
    return record, True


def _encode(repo: Repo, kind: str, data: bytes) -> str:
    if kind == "config":
        return base64.b64encode(data).decode()
    return cipher(repo, create=True).encrypt(data).decode()


def users(services: Iterable[Service], kind: str, name: str) -> list[Service]:
    """The services whose spec uses the secret or config called `name`."""
    return [s for s in services if any(r.source == name for r in _refs(s.spec, kind))]


def remove(repo: Repo, kind: str, refs: Iterable[str]) -> list[StoredFile]:
    """Remove secrets or configs; one a service uses is refused, naming the services."""
    table = repo.files(kind)
    found = [table.get(ref) for ref in refs]
    services = repo.services.all()
    for record in found:
        using = users(services, kind, record.name)
        if using:
            names = ", ".join(sorted(s.spec.name for s in using))
            raise SwarmctlError(f"{kind} {record.name} is in use by service {names}")
    table.delete(r.id for r in found)
    return found


def check_refs(repo: Repo, spec: ServiceSpec) -> None:
    """Every secret and config the spec names exists, and the secrets key opens them (its
    tasks could not start otherwise)."""
    for kind in KINDS:
        names = {r.name for r in repo.files(kind).all()}
        for ref in _refs(spec, kind):
            if ref.source not in names:
                raise SwarmctlError(
                    f"--{kind} {ref.source}: no such {kind} (create it with "
                    f"`swarmctl {kind} create {ref.source} FILE`)"
                )
    if spec.secrets:
        cipher(repo)


def _refs(spec: ServiceSpec, kind: str):
    return spec.secrets if kind == "secret" else spec.configs


def archive(repo: Repo, spec: ServiceSpec) -> bytes:
    """The task's secrets and configs as a tar archive, one member per reference named
    as commands.docker.task_file names it, owned and moded as asked; b"" if none."""
    refs = [("secret", i, r) for i, r in enumerate(spec.secrets)]
    refs += [("config", i, r) for i, r in enumerate(spec.configs)]
    if not refs:
        return b""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for kind, index, ref in refs:
            data = value(repo, kind, repo.files(kind).get(ref.source))
            info = tarfile.TarInfo(f"{kind}-{index}")
            info.size, info.mode = len(data), ref.mode
            info.uid, info.gid = int(ref.uid), int(ref.gid)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
