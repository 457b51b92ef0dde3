"""Who may act: leases kept in the state, so two supervisors, or a supervisor and a
CLI command, never act on the same thing at once.

A lease has a holder ("host:pid:random") and an expiry. Taking it succeeds when it is
free, expired or already ours; a holder that dies simply stops renewing, and the lease
is taken over once it expires, or at once when the holder was a process of this
machine that no longer exists. Taking and releasing happen in the caller's transaction
(the state file's lock makes them atomic across processes).
"""

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

from tinydb import Query, TinyDB

SUPERVISOR = "supervisor"


def me() -> str:
    """This process's identity as a lease holder."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


def service_lease(service_id: str) -> str:
    return f"service:{service_id}"


@dataclass(frozen=True)
class Lease:
    name: str
    holder: str
    expires_at: str
    note: str = ""  # what the holder does (e.g. its last tick), for `info`

    def held_by_other(self, holder: str, now: datetime) -> bool:
        return (
            self.holder != holder
            and datetime.fromisoformat(self.expires_at) > now
            and _may_live(self.holder)
        )


def _may_live(holder: str) -> bool:
    """False when the holder is a process of this machine that is gone: its lease is
    free at once, not only when it expires (a killed CLI command must not block the
    supervisor for minutes)."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def get(db: TinyDB, name: str) -> Lease | None:
    doc = db.table("leases").get(Query().name == name)
    return Lease(**doc) if doc else None


def take(
    db: TinyDB, name: str, holder: str, ttl: float, now: datetime, note: str = ""
) -> Lease | None:
    """Take or renew the lease; returns the other holder's lease if it is held."""
    current = get(db, name)
    if current is not None and current.held_by_other(holder, now):
        return current
    expires = (now + timedelta(seconds=ttl)).isoformat(timespec="milliseconds")
    lease = Lease(name, holder, expires, note)
    db.table("leases").upsert(lease.__dict__, Query().name == name)
    return None


def release(db: TinyDB, name: str, holder: str) -> None:
    db.table("leases").remove((Query().name == name) & (Query().holder == holder))
