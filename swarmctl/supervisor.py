"""The supervisor: a polling loop that keeps the cluster as the user asked for it.

Each tick, level-triggered (the Kubernetes controller pattern), so a missed tick or a
restart of the supervisor itself can never leave the cluster wrong:
1. take (renew) the supervisor lease; a second supervisor waits and says why;
2. observe every member node in parallel: one request to its Docker engine's API, over
   a channel kept open on the node's SSH connection (runtime/engine.py), lists the
   cluster's containers — no process started on the node;
3. nodes that answer are Ready; a node that misses `misses` heartbeats in a row is Down
   (twice as many right after the supervisor starts, as swarm does; health.py decides);
4. merge what was seen into the tasks (observe.py): exited, removed or unhealthy
   containers make FAILED tasks; containers no task wants are removed, on a node that
   comes back before anything else happens there, so a healed partition never leaves
   more replicas than asked for;
5. reconcile and apply (reconciler.py, executor.py), service by service under a lease so
   that a CLI command changing the same service never races it;
6. bring the routing mesh up to date when endpoints changed, and the overlays of nodes
   that came back or whose dockerd restarted.
An unreachable node is unknown, never "has no containers": its tasks stay as they were
until it is declared down.
"""

import time
import traceback
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from swarmctl import clock, convergence, executor, health, holds, observe, rolling, sightings
from swarmctl.errors import SwarmctlError
from swarmctl.inventory import Inventory
from swarmctl.membership import recorded_trust
from swarmctl.models import Node, NodeState, TaskState
from swarmctl.network import networking
from swarmctl.reconciler import Plan
from swarmctl.runtime.containers import Container
from swarmctl.state import StateStore, events, leases
from swarmctl.state.repo import Repo
from swarmctl.transport.group import Pool
from swarmctl.transport.host import Host, Hosts

Say = Callable[[str], None]


@dataclass(frozen=True)
class Settings:
    interval: float = 1.0
    misses: int = 3  # heartbeats missed in a row before a node is declared down
    connect_timeout: float = 2.0
    observe_timeout: float = 3.0  # a slow node is late, not down, within this
    repair_every: int = 30  # ticks between full overlay and mesh converges

    @property
    def lease_ttl(self) -> float:
        return max(5.0, 3 * self.interval + self.observe_timeout)


class Supervisor:
    def __init__(
        self,
        store: StateStore,
        inventory: Inventory,
        settings: Settings,
        say: Say = print,
        hosts: Hosts | None = None,  # the inventory's over SSH unless given (tests: a fake)
    ) -> None:
        self.store = store
        self.settings = settings
        self.say = say
        self.holder = leases.me()
        self.pool = (
            hosts
            if hosts is not None
            else Pool(
                inventory.hosts.values(),
                recorded_trust(store),
                connect_timeout=settings.connect_timeout,
                command_timeout=settings.observe_timeout,
            )
        )
        self.misses: dict[str, int] = defaultdict(int)  # node id -> heartbeats missed in a row
        self.sessions: dict[str, int] = {}  # node id -> its engine's sessions, last seen
        self.endpoints: frozenset = frozenset()
        self.ticks = 0
        self.renew_at = 0.0  # when to renew the supervisor lease (monotonic clock)
        self.waiting_for = ""
        path = events.path_for(store.path)
        self.events_offset = path.stat().st_size if path.exists() else 0  # new events only

    def run(self, once: bool = False) -> None:
        with self.pool:
            try:
                while True:
                    started = time.monotonic()
                    wake = self.tick() if once else self._safe_tick()
                    if once:
                        return
                    pause = self.settings.interval - (time.monotonic() - started)
                    if wake is not None:
                        pause = min(pause, wake)
                    time.sleep(max(0.05, pause))
            finally:
                with self.store.transaction() as db:
                    leases.release(db, leases.SUPERVISOR, self.holder)

    def _safe_tick(self) -> float | None:
        """A tick that fails is logged and the next one tries again: the loop must live
        on, and being level-triggered, the next tick starts from what is, not from what
        this one meant to do."""
        try:
            return self.tick()
        except SwarmctlError as exc:
            self._warn([str(exc)])
        except Exception as exc:  # a bug: say so loudly, with the traceback, and go on
            self.say(f'time="{clock.now()}" level=error msg="tick failed: {exc!r}"')
            traceback.print_exc()
        return None

    # -------------------------------------------------------------------------- tick

    def tick(self) -> float | None:
        """One round; returns seconds until a back-off ends, if sooner than a tick."""
        now = datetime.now(UTC)
        other = None
        # Renewed when half of it is left, not every tick: an idle tick writes nothing.
        if time.monotonic() > self.renew_at:
            with self.store.transaction() as db:
                other = leases.take(
                    db,
                    leases.SUPERVISOR,
                    self.holder,
                    self.settings.lease_ttl,
                    now,
                    note=f"alive {now.isoformat(timespec='seconds')}",
                )
            self.renew_at = 0.0 if other else time.monotonic() + self.settings.lease_ttl / 2
        if other is not None:
            message = (
                f"waiting: another supervisor ({other.holder}) holds the lease "
                f"until {other.expires_at}"
            )
            if message.split(" until")[0] != self.waiting_for:
                self.say(message)
                self.waiting_for = message.split(" until")[0]
            return None
        self.waiting_for = ""
        self.ticks += 1
        with self.store.read() as db:
            repo = Repo(db)
            cluster, nodes = repo.cluster(), repo.nodes.all()
        seen, beats, restarted = self._observe(cluster.id, nodes)
        back = self._record_nodes(nodes, beats)
        with self.store.read() as db:
            tasks = Repo(db).tasks.all()
        merged = observe.merge(tasks, seen, now)
        executor.save(self.store, merged.changed, known_only=True)
        remove = self._not_being_stopped(merged.remove, seen, tasks, now)
        self._warn(sightings.remove_strays(self.store, self.pool, remove, nodes, seen))
        periodic = self.ticks % self.settings.repair_every == 1
        if back or restarted or periodic:
            repair = [n for n in nodes if n.id in (seen if periodic else back | restarted)]
            self._warn(networking.converge(self.store, self.pool, repair))
        wake = self._act(merged.start, set(seen))
        self._mesh(force=bool(back or restarted) or periodic)
        self._print_events()
        return wake

    def _observe(
        self, cluster_id: str, nodes: list[Node]
    ) -> tuple[dict[str, list[Container]], dict[str, health.Heartbeat], set[str]]:
        """The containers of every node that answered, every node's heartbeat, and the
        nodes whose engine restarted since the last tick."""

        def look(host: Host) -> tuple[list[Container], int]:
            return host.containers(cluster_id), host.engine_sessions

        results = self.pool.each(look, [n.hostname for n in nodes])
        allowed = health.allowed_misses(self.settings.misses, self.ticks)
        seen, beats, restarted = {}, {}, set()
        for node in nodes:
            result = results.get(node.hostname)
            if isinstance(result, SwarmctlError) or result is None:
                self.misses[node.id] += 1
                why = str(result) if result else "not in the inventory"
                beats[node.id] = health.Heartbeat(why, self.misses[node.id], allowed)
                continue
            self.misses[node.id] = 0
            beats[node.id] = health.Heartbeat()
            containers, sessions = result
            # The engine's channel broke and was made again: dockerd restarted, or the host
            # rebooted; either may have undone what the overlay and mesh set up there.
            if self.sessions.get(node.id, sessions) != sessions:
                restarted.add(node.id)
            self.sessions[node.id] = sessions
            seen[node.id] = containers
        return seen, beats, restarted

    def _not_being_stopped(
        self,
        remove: dict[str, list[str]],
        seen: dict[str, list[Container]],
        tasks: list,
        now: datetime,
    ) -> dict[str, list[str]]:
        """The containers to remove but those of tasks shut down (not orphaned) whose
        service's lease another holds: that command is stopping them itself, each with
        its stop grace period, which a removal now (SIGKILL) would cut short; what it
        leaves is removed once it lets go."""
        if not remove:
            return remove
        stopping = {t.id: t.service_id for t in tasks if t.state != TaskState.ORPHANED}
        task_of = {c.id: c.task_id for found in seen.values() for c in found}
        with self.store.read() as db:
            busy = {
                service_id
                for service_id in set(stopping.values())
                if (lease := leases.get(db, leases.service_lease(service_id)))
                and lease.held_by_other(self.holder, now)
            }
        kept = {
            node_id: [c for c in ids if stopping.get(task_of.get(c, "")) not in busy]
            for node_id, ids in remove.items()
        }
        return {node_id: ids for node_id, ids in kept.items() if ids}

    def _record_nodes(self, nodes: list[Node], beats: dict[str, health.Heartbeat]) -> set[str]:
        """Write node statuses; returns the nodes that came back. A tick with no news of
        any node writes nothing."""
        now = datetime.now(UTC)
        if all(health.assess(n, beats[n.id], now) == n for n in nodes if n.id in beats):
            return set()
        moved = executor.save(self.store, [], nodes=beats)
        return {after.id for _, after in moved if after.state == NodeState.READY}

    def _act(self, never_started: list, seen: set[str]) -> float | None:
        """Reconcile and apply every service not being changed by someone else.

        Only the services with work this round are leased, and only for the round: a
        command on any other service never waits for the supervisor. A service whose work
        would reach a node that did not answer this tick (`seen`) is left for a later
        tick, unleased: the supervisor never holds a lease while it waits on a host that
        may not answer; the node is declared down in a few ticks, or answers again."""
        now = datetime.now(UTC)
        with self.store.read() as db:
            repo = Repo(db)
            look = convergence.reconcile_now(repo, now)
            updating = rolling.drain_due(repo, now) or any(
                s.update_status and s.update_status.state.in_progress for s in repo.services.all()
            )
        if look.empty and not never_started and not updating:  # no lease to take, no write
            return (look.wake_at - now).total_seconds() if look.wake_at else None
        with self.store.transaction() as db:
            repo = Repo(db)
            free = {
                s.id
                for s in repo.services.all()
                if not (
                    (lease := leases.get(db, leases.service_lease(s.id)))
                    and lease.held_by_other(self.holder, now)
                )
            }
            tasks = repo.tasks.all()
            # Those found never started earlier in the tick, unless a command (holding the
            # lease until now) started or ended them meanwhile: their records then differ.
            recorded = {t.id: t for t in tasks}
            restart = tuple(
                t for t in never_started if t.service_id in free and recorded.get(t.id) == t
            )
            removed = {t.service_id for t in tasks} - {s.id for s in repo.services.all()}
            nodes = repo.nodes.all()
            # Rolling updates a command left (interrupted, or --detach) go on from here.
            steps = {
                s.id: step
                for s in repo.services.all()
                if s.id in free and (step := rolling.decide(s, tasks, now, nodes))
            }
            # Drains a command left (interrupted, or its host lost) too, with the policy;
            # a completed one (an old task on a drained node) is no work to lease for.
            drains = {
                s.id: step
                for s in repo.services.all()
                if s.id in free
                and (step := rolling.decide_drain(s, tasks, nodes, now))
                and step.outcome is None
            }
            renew = _renewals(steps, drains)
            plan = convergence.reconcile_now(repo, now, only=free | removed, renew=renew)
            wake_at = plan.wake_at
            away = {n.id for n in nodes if n.id not in seen and n.state != NodeState.DOWN}
            busy = _touched(plan, restart, recorded) | steps.keys() | drains.keys()
            mine = (busy & free) - _reaching(plan, restart, away)
            if mine != free:
                steps = {i: step for i, step in steps.items() if i in mine}
                drains = {i: step for i, step in drains.items() if i in mine}
                restart = tuple(t for t in restart if t.service_id in mine)
                renew = _renewals(steps, drains)
                plan = convergence.reconcile_now(repo, now, only=mine | removed, renew=renew)
            for service_id in mine:
                leases.take(
                    db, leases.service_lease(service_id), self.holder, self.settings.lease_ttl, now
                )
            decided_on = {s.id: s.update_status for s in repo.services.all() if s.id in steps}
        hold = holds.Holding(
            self.store,
            self.holder,
            mine,
            self.settings.lease_ttl,
            self.settings.connect_timeout,  # a host that has not answered by then may not
            lambda line: self._warn([line]),
        )
        try:
            with hold:
                if restart:
                    plan = replace(plan, update=plan.update + restart)
                with hold.waiting(mine):
                    self._warn(rolling.leave_mesh_first(self.store, self.pool, plan, skip=away))
                if not plan.empty:
                    outcome = executor.apply(self.store, self.pool, plan, guard=hold)
                    self._warn(
                        [
                            convergence.unreachable_warning(plan, node, e)
                            for node, e in outcome.unreachable.items()
                        ]
                    )
                for service_id, step in steps.items():
                    if step.outcome is not None and hold.may_act(service_id):
                        rolling.finish(self.store, service_id, step, decided_on[service_id])
            later = (*steps.values(), *drains.values())
            wakes = [w for w in (wake_at, *(s.wake_at for s in later)) if w]
            return (min(wakes) - now).total_seconds() if wakes else None
        finally:
            if mine:
                with self.store.transaction() as db:
                    for service_id in mine:
                        leases.release(db, leases.service_lease(service_id), self.holder)

    def _mesh(self, force: bool) -> None:
        with self.store.read() as db:
            current = observe.running_endpoints(Repo(db).tasks.all())
        if force or current != self.endpoints:
            self._warn(networking.converge_mesh(self.store, self.pool))
            self.endpoints = current

    def _warn(self, lines: list[str]) -> None:
        for line in lines:
            self.say(f'time="{clock.now()}" level=warning msg="{line}"')

    def _print_events(self) -> None:
        path = events.path_for(self.store.path)
        found, self.events_offset = events.read_after(path, self.events_offset)
        for event in found:
            self.say(event.line())


def _renewals(steps: dict, drains: dict) -> dict[str, tuple]:
    """The slots to renew, by service: those of updates still going and of drains."""
    renew = {i: step.renew for i, step in steps.items() if step.outcome is None}
    for service_id, step in drains.items():
        renew[service_id] = (*renew.get(service_id, ()), *step.renew)
    return renew


def _touched(plan: Plan, restart: tuple, recorded: dict) -> set[str]:
    """The services the plan (and the restarts) would change."""
    changed = (*plan.create, *plan.shutdown, *plan.update, *restart)
    forgotten = [recorded[i] for i in plan.forget if i in recorded]
    return {t.service_id for t in (*changed, *forgotten)}


def _reaching(plan: Plan, restart: tuple, away: set[str]) -> set[str]:
    """The services whose share of the plan would start or stop a container on a node
    in `away`."""
    starts = [t for t in (*plan.create, *plan.update, *restart) if t.state in observe.STARTABLE]
    stops = [t for t in plan.shutdown if t.state != TaskState.ORPHANED]
    return {t.service_id for t in (*starts, *stops) if t.node_id in away}
