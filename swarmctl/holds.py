"""The leases a supervisor step holds while it carries out its plan on the hosts.

A step's plan is written to the state before any host is touched; the services' leases
then only keep a command from planning over it while the hosts do what it says. So:
- they are renewed (with the supervisor's own) while the step lasts;
- a host call that has not answered within `patience` lets its services' leases go: a
  command on such a service gets it at once, instead of waiting on a host that may be
  cut off (the call's outcome is still recorded, as an observation, when it comes);
- before any further action on a service, the step takes its lease again; a service
  whose lease another holder took, or that the step cannot vouch for (renewals failing
  past the leases' expiry), is left alone for the rest of the step.
It does not decide what to do, nor record outcomes: that is the supervisor's and the
executor's.
"""

import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from itertools import count

from swarmctl.errors import SwarmctlError
from swarmctl.state import StateStore, leases

Warn = Callable[[str], None]


class Holding:
    def __init__(
        self,
        store: StateStore,
        holder: str,
        service_ids: Collection[str],
        ttl: float,
        patience: float,
        warn: Warn,
    ) -> None:
        self.store = store
        self.holder = holder
        self.ttl = ttl
        self.patience = patience
        self.warn = warn
        self.guarded = frozenset(service_ids)  # the others' tasks (removed services') need none
        self.held = set(service_ids)  # taken by the caller, in the step's transaction
        self.lost: set[str] = set()
        # What the last renewal vouches for: the supervisor's lease, renewed by the tick
        # once half of it is gone, has at least that much left; the keeper renews at once.
        self.valid_until = time.monotonic() + ttl / 2
        self.calls: dict[int, tuple[float, frozenset[str]]] = {}  # host calls in flight
        self.ids = count()
        self.lock = threading.RLock()
        self.done = threading.Event()
        self.keeper = threading.Thread(target=self._keep, name="swarmctl-lease", daemon=True)

    def __enter__(self) -> "Holding":
        self.keeper.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.keeper.join()

    def may_act(self, service_id: str) -> bool:
        """Whether the step may still act on the service, its lease taken again if it
        was let go while a host did not answer."""
        with self.lock:
            if service_id in self.lost or time.monotonic() > self.valid_until:
                return False
            if service_id in self.guarded and service_id not in self.held:
                try:
                    self._take([service_id])
                except SwarmctlError as exc:  # the state busy: not ours for now
                    self.warn(f"taking the lease of service {service_id} failed: {exc}")
            return service_id in self.held or service_id not in self.guarded

    @contextmanager
    def waiting(self, service_ids: Collection[str]) -> Iterator[None]:
        """Around a host call made for these services."""
        call = next(self.ids)
        with self.lock:
            self.calls[call] = (time.monotonic(), frozenset(service_ids))
        try:
            yield
        finally:
            with self.lock:
                del self.calls[call]

    def _keep(self) -> None:
        renewed = float("-inf")
        while not self.done.wait(min(self.patience, self.ttl / 3) / 4):
            # An error here must neither end the thread (the leases would expire under a
            # step still applying its plan) nor go unsaid; may_act refuses once the last
            # renewal no longer vouches for the leases.
            try:
                self._let_go_of_late()
                if time.monotonic() - renewed >= self.ttl / 3:
                    renewed = time.monotonic()
                    self._take([leases.SUPERVISOR, *self.held], renewal=True)
            except Exception as exc:  # any failure: said, then tried again
                why = str(exc) if isinstance(exc, SwarmctlError) else repr(exc)
                self.warn(f"renewing the supervisor's leases failed: {why}")

    def _let_go_of_late(self) -> None:
        with self.lock:
            now = time.monotonic()
            late = {
                service_id
                for started, service_ids in self.calls.values()
                if now - started > self.patience
                for service_id in service_ids
            } & self.held
            if late:
                with self.store.transaction() as db:
                    for service_id in late:
                        leases.release(db, leases.service_lease(service_id), self.holder)
                self.held -= late

    def _take(self, names: list[str], renewal: bool = False) -> None:
        """Take (or renew) the supervisor's lease and the named services'; a service
        another holder has is lost to the step, and all are when the supervisor's is."""
        with self.lock:
            started = time.monotonic()
            now = datetime.now(UTC)
            taken = {}
            with self.store.transaction() as db:
                own = leases.get(db, leases.SUPERVISOR)
                for name in {leases.SUPERVISOR, *names}:
                    # The supervisor lease keeps its note, the last tick's time, so that
                    # `info` tells how long this step has lasted.
                    lease_name = name if name == leases.SUPERVISOR else leases.service_lease(name)
                    note = own.note if own and name == leases.SUPERVISOR else ""
                    taken[name] = leases.take(db, lease_name, self.holder, self.ttl, now, note)
            if other := taken.pop(leases.SUPERVISOR):
                self._lose(self.held | set(names) - {leases.SUPERVISOR}, other)
                self.valid_until = 0.0
                return
            if renewal:
                self.valid_until = started + self.ttl
            for service_id, other in taken.items():
                if other:
                    self._lose({service_id}, other)
                else:
                    self.held.add(service_id)

    def _lose(self, service_ids: set[str], other: leases.Lease) -> None:
        self.held -= service_ids
        for service_id in sorted(service_ids - self.lost):
            self.warn(
                f"{other.name} was taken by {other.holder}: "
                f"this step leaves service {service_id} to it"
            )
        self.lost |= service_ids
