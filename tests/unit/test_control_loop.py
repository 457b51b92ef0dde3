"""The executor and the supervisor's tick over in-memory hosts (transport/fake.py)."""

import shlex
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tinydb import Query

from swarmctl import clock, convergence, executor, rolling, services, sightings
from swarmctl.commands import docker, steps
from swarmctl.commands.render import render
from swarmctl.errors import SwarmctlError
from swarmctl.hoststep import HostStep, Kind
from swarmctl.models import (
    Availability,
    Cluster,
    Node,
    NodeState,
    Role,
    Service,
    ServiceSpec,
    TaskState,
    UpdatePolicy,
    UpdateState,
    UpdateStatus,
)
from swarmctl.network import networking
from swarmctl.network.overlay import node_overlays
from swarmctl.state import StateStore, events, leases
from swarmctl.state.repo import Repo
from swarmctl.supervisor import Settings, Supervisor
from swarmctl.transport.fake import Failure, FakeHosts

CLUSTER = Cluster("c" * 25, "2026-12-04T12:00:00.000+00:00")
NAMES = ("manager1", "worker1", "worker2", "worker3")


def nodes(count: int) -> list[Node]:
    return [
        Node(
            f"node{i}", NAMES[i], Role.MANAGER if i == 0 else Role.WORKER, f"10.0.0.{i + 1}", "", ""
        )
        for i in range(count)
    ]


def service(name: str, replicas: int) -> Service:
    return Service(f"svc-{name}", ServiceSpec(name, "nginx", replicas=replicas), "", "")


def make_store(path: Path, members: list[Node], wanted: list[Service]) -> StateStore:
    store = StateStore(path)
    store.create()
    with store.transaction() as db:
        repo = Repo(db)
        repo.set_cluster(CLUSTER)
        for item in members:
            repo.nodes.put(item)
        for item in wanted:
            repo.services.put(item)
    return store


@contextmanager
def cluster(node_count: int, wanted: list[Service]) -> Iterator[tuple[StateStore, FakeHosts]]:
    with tempfile.TemporaryDirectory() as tmp:
        members = nodes(node_count)
        yield make_store(Path(tmp) / "state.json", members, wanted), FakeHosts(NAMES[:node_count])


def supervisor(store: StateStore, hosts: FakeHosts, misses: int = 3) -> Supervisor:
    return Supervisor(store, None, Settings(misses=misses), say=lambda _: None, hosts=hosts)  # type: ignore[arg-type]


def tasks_of(store: StateStore):
    with store.read() as db:
        return Repo(db).tasks.all()


def nodes_of(store: StateStore) -> dict[str, Node]:
    with store.read() as db:
        return {n.hostname: n for n in Repo(db).nodes.all()}


def plan_now(store: StateStore):
    with store.read() as db:
        return convergence.reconcile_now(Repo(db), datetime.now(UTC))


def forget_commands(hosts: FakeHosts) -> None:
    for host in hosts:
        host.commands.clear()


# ------------------------------------------------------------------------ executor


def test_the_executor_starts_each_task_on_its_node_and_records_it_running(tmp_path) -> None:
    store = make_store(tmp_path / "state.json", nodes(3), [service("web", 3)])
    hosts = FakeHosts(NAMES[:3])
    outcome = executor.apply(store, hosts, plan_now(store))
    assert outcome.unreachable == {}
    tasks = tasks_of(store)
    assert {t.state for t in tasks} == {TaskState.RUNNING}
    by_node = {n.id: n.hostname for n in nodes(3)}
    for task in tasks:
        assert hosts[by_node[task.node_id]].task_ids() == [task.id]
        (script,) = hosts[by_node[task.node_id]].commands
        assert script == docker.run_task(CLUSTER.id, service("web", 3), task, [])


def test_a_start_whose_engine_api_is_silent_reads_its_container_with_docker_inspect(
    tmp_path,
) -> None:
    store = make_store(tmp_path / "state.json", nodes(1), [service("web", 1)])
    hosts = FakeHosts(NAMES[:1])
    hosts["manager1"].engine_down = True
    executor.apply(store, hosts, plan_now(store))
    (task,) = tasks_of(store)
    (container,) = hosts["manager1"].docker
    assert (task.state, task.container_id) == (TaskState.RUNNING, container)
    assert hosts["manager1"].commands[-1] == shlex.join(docker.inspect_container(container))


def test_a_node_the_executor_cannot_reach_is_down_and_its_starts_are_rejected(tmp_path) -> None:
    store = make_store(tmp_path / "state.json", nodes(2), [service("web", 2)])
    hosts = FakeHosts(NAMES[:2])
    hosts["worker1"].reachable = False
    outcome = executor.apply(store, hosts, plan_now(store))
    assert outcome.unreachable == {"node1": "worker1: connection refused"}
    worker1 = nodes_of(store)["worker1"]
    assert (worker1.state, worker1.message) == (NodeState.DOWN, "worker1: connection refused")
    states = {t.node_id: (t.state, t.error) for t in tasks_of(store)}
    assert states == {
        "node0": (TaskState.RUNNING, ""),
        "node1": (TaskState.REJECTED, "node unreachable: worker1: connection refused"),
    }
    logged, _ = events.read_after(events.path_for(store.path), 0)
    assert [(e.type, e.node, e.transition) for e in logged if e.type == "node"] == [
        ("node", "worker1", "READY->DOWN")
    ]


def test_an_image_no_registry_serves_is_copied_from_a_peer_and_the_start_retried(
    tmp_path,
) -> None:
    store = make_store(tmp_path / "state.json", nodes(2), [service("web", 2)])
    hosts = FakeHosts(NAMES[:2])
    hosts["worker1"].fail_on("docker inspect --format", docker.PULL_FAILED, "no registry", times=1)
    executor.apply(store, hosts, plan_now(store))
    assert {t.state for t in tasks_of(store)} == {TaskState.RUNNING}
    assert docker.save_image("nginx") in hosts["manager1"].commands
    assert hosts["worker1"].commands[1] == docker.load_image()


def test_shut_down_tasks_are_stopped_with_their_grace_then_removed(tmp_path) -> None:
    store = make_store(tmp_path / "state.json", nodes(1), [service("web", 2)])
    hosts = FakeHosts(NAMES[:1])
    executor.apply(store, hosts, plan_now(store))
    with store.transaction() as db:
        Repo(db).services.delete(["svc-web"])
    forget_commands(hosts)
    plan = plan_now(store)
    executor.apply(store, hosts, plan)
    assert hosts["manager1"].task_ids() == []
    assert hosts["manager1"].commands == [docker.stop_tasks([t.id for t in plan.shutdown])]


@pytest.mark.parametrize(
    "stderr",
    [
        "Error response from daemon: removal of container 2369cab26fe9 is already in progress",
        "Error: No such container: 2369cab26fe9",
    ],
)
def test_a_container_another_actor_is_removing_is_as_good_as_removed(stderr: str) -> None:
    # The supervisor carrying the same rollback removed it at the same moment: that once
    # rejected the new task started after the stop, and paused the rollback.
    hosts = FakeHosts(NAMES[:1])
    hosts["manager1"].fail_on("docker rm -f", stderr=stderr, times=1)
    (result,) = executor.run_steps(hosts, [steps.remove_strays("manager1", ["t" * 25])]).values()
    assert result.exit_code == 1


def test_a_removal_that_really_failed_says_where_and_why() -> None:
    hosts = FakeHosts(NAMES[:1])
    hosts["manager1"].fail_on("docker rm -f", stderr="Error response from daemon: device busy")
    (error,) = executor.run_steps(hosts, [steps.remove_strays("manager1", ["t" * 25])]).values()
    assert isinstance(error, SwarmctlError)
    assert str(error) == (
        "manager1: removing containers failed: Error response from daemon: device busy"
    )


# ---------------------------------------------------------------------- supervisor


def test_a_tick_starts_what_is_missing_and_the_next_tick_plans_and_writes_nothing(
    tmp_path,
) -> None:
    store = make_store(tmp_path / "state.json", nodes(3), [service("web", 3)])
    hosts = FakeHosts(NAMES[:3])
    sup = supervisor(store, hosts)
    sup.tick()
    assert sorted(t.state for t in tasks_of(store)) == [TaskState.RUNNING] * 3
    forget_commands(hosts)
    before = store.path.read_bytes()
    sup.tick()
    assert plan_now(store).empty
    assert [h.commands for h in hosts] == [[], [], []]
    assert store.path.read_bytes() == before


def test_a_node_that_stops_answering_is_unknown_then_down_and_its_tasks_move(
    tmp_path,
) -> None:
    store = make_store(tmp_path / "state.json", nodes(3), [service("web", 3)])
    hosts = FakeHosts(NAMES[:3])
    sup = supervisor(store, hosts, misses=1)
    sup.tick()
    lost = {t.id for t in tasks_of(store) if t.node_id == "node2"}
    hosts["worker2"].reachable = False
    sup.tick()  # tick 2: a supervisor just started allows 2 misses
    assert nodes_of(store)["worker2"].state == NodeState.UNKNOWN
    assert {t.id for t in tasks_of(store) if t.state == TaskState.RUNNING} >= lost
    sup.tick()
    assert nodes_of(store)["worker2"].state == NodeState.DOWN
    running = [t for t in tasks_of(store) if t.desired_state == TaskState.RUNNING]
    assert len(running) == 3 and all(t.node_id != "node2" for t in running)
    assert sorted(hosts["manager1"].task_ids() + hosts["worker1"].task_ids()) == sorted(
        t.id for t in running
    )


def test_a_container_no_task_knows_is_removed_with_remove_tasks(tmp_path) -> None:
    store = make_store(tmp_path / "state.json", nodes(1), [])
    hosts = FakeHosts(NAMES[:1])
    hosts["manager1"].add(CLUSTER.id, "t" * 25)
    supervisor(store, hosts).tick()
    assert hosts["manager1"].task_ids() == []
    assert docker.remove_tasks(["t" * 25]) in hosts["manager1"].commands


def test_a_killed_replica_is_recorded_failed_and_its_container_removed(tmp_path) -> None:
    store = make_store(tmp_path / "state.json", nodes(1), [service("web", 1)])
    hosts = FakeHosts(NAMES[:1])
    sup = supervisor(store, hosts)
    sup.tick()
    (first,) = tasks_of(store)
    hosts["manager1"].stop(first.id, exit_code=137)
    sup.tick()
    failed = next(t for t in tasks_of(store) if t.id == first.id)
    assert (failed.state, failed.error) == (TaskState.FAILED, "task: non-zero exit (137)")


# --------------------------------------------------------------------- properties


def scale(store: StateStore, service_id: str, replicas: int) -> None:
    with store.transaction() as db:
        repo = Repo(db)
        current = repo.services.get(service_id)
        spec = replace(current.spec, replicas=replicas)
        repo.services.put(replace(current, spec=spec, version=current.version + 1))


# Per tick: the nodes that do not answer, and the replicas then wanted of a service.
outages = st.integers(min_value=1, max_value=4).flatmap(
    lambda count: st.tuples(
        st.just(count),
        st.sampled_from([1, 3]),  # misses before down
        st.lists(
            st.tuples(st.sets(st.integers(0, count - 1)), st.integers(0, 6)),
            min_size=1,
            max_size=5,
        ),
    )
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(outages)
def test_a_tick_never_plans_a_start_on_a_node_it_cannot_see(case) -> None:
    count, misses, steps = case
    with cluster(count, [service("web", 0)]) as (store, hosts):
        sup = supervisor(store, hosts, misses=misses)
        for away, replicas in steps:
            for index in range(count):
                hosts[NAMES[index]].reachable = index not in away
            scale(store, "svc-web", replicas)
            known = {t.id for t in tasks_of(store)}
            sup.tick()
            new = [t for t in tasks_of(store) if t.id not in known]
            assert not [t for t in new if t.node_id in {f"node{i}" for i in away}]
            assert all(nodes_of(store)[NAMES[i]].state != NodeState.READY for i in away)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 4), st.lists(st.integers(0, 5), min_size=1, max_size=3))
def test_a_tick_on_a_converged_cluster_plans_nothing(count: int, replicas: list[int]) -> None:
    wanted = [service(f"s{i}", n) for i, n in enumerate(replicas)]
    with cluster(count, wanted) as (store, hosts):
        sup = supervisor(store, hosts)
        sup.tick()
        forget_commands(hosts)
        before = store.path.read_bytes()
        sup.tick()
        assert plan_now(store).empty
        assert all(h.commands == [] for h in hosts)
        assert store.path.read_bytes() == before


@pytest.mark.parametrize("misses", [1, 3])
def test_an_unreachable_node_keeps_its_tasks_until_it_is_down(tmp_path, misses: int) -> None:
    store = make_store(tmp_path / "state.json", nodes(2), [service("web", 2)])
    hosts = FakeHosts(NAMES[:2])
    sup = supervisor(store, hosts, misses=misses)
    sup.tick()
    before = {t.id: t.state for t in tasks_of(store)}
    hosts["worker1"].reachable = False
    for _ in range(2 * misses - 1):  # the allowance of a supervisor just started, less one
        sup.tick()
        assert {t.id: t.state for t in tasks_of(store)} == before
    sup.tick()
    assert nodes_of(store)["worker1"].state == NodeState.DOWN


# ----------------------------------------------------------------------- converges


def test_a_network_converges_on_every_node_it_reaches_and_waits_for_the_others(
    tmp_path,
) -> None:
    store = make_store(tmp_path / "state.json", nodes(2), [])
    hosts = FakeHosts(NAMES[:2])
    hosts["worker1"].reachable = False
    _, warnings = networking.create(store, hosts, networking.NetworkOptions("web"))
    assert warnings == [
        "worker1: connection refused: its overlay networks will be set up when it is "
        "reachable again"
    ]
    with store.read() as db:
        repo = Repo(db)
        (recorded,) = repo.networks.all()
        members, cluster_record = repo.nodes.all(), repo.cluster()
    assert recorded.pending == {"node1": "worker1: connection refused"}
    wanted = node_overlays(cluster_record, [recorded], members, members[0])
    assert hosts["manager1"].commands == [render("overlay/converge.sh.j2", o=wanted)]
    hosts["worker1"].reachable = True
    assert networking.converge(store, hosts, members[1:]) == []
    with store.read() as db:
        assert Repo(db).networks.all()[0].pending == {}


def record_update(store: StateStore, **changes) -> None:
    """`service update` of web, as the command records it: the next version, updating."""
    with store.transaction() as db:
        repo = Repo(db)
        web = repo.services.get("web")
        version = web.version + 1
        repo.services.put(
            replace(
                web,
                spec=replace(web.spec, **changes),
                previous_spec=web.spec,
                version=version,
                update_status=UpdateStatus(UpdateState.UPDATING, clock.now(), spec_version=version),
            )
        )


def test_the_supervisor_carries_a_recorded_update_one_slot_per_tick_to_completion(
    tmp_path,
) -> None:
    store = make_store(tmp_path / "state.json", nodes(3), [service("web", 3)])
    hosts = FakeHosts(NAMES[:3])
    sup = supervisor(store, hosts)
    sup.tick()
    record_update(store, image="busybox", update=UpdatePolicy(monitor=0))
    renewed = []
    for _ in range(10):
        sup.tick()
        current = [t for t in tasks_of(store) if t.desired_state == TaskState.RUNNING]
        renewed.append(sum(1 for t in current if t.image == "busybox"))
        assert len(current) == 3
    with store.read() as db:
        status = Repo(db).services.get("web").update_status
    assert status.state == UpdateState.COMPLETED
    assert renewed[:3] == [1, 2, 3]  # parallelism 1: one slot a tick
    assert sum(len(hosts[n].task_ids()) for n in NAMES[:3]) == 3
    assert {t.image for t in tasks_of(store) if t.desired_state == TaskState.RUNNING} == {"busybox"}


def test_the_supervisor_carries_a_drain_one_slot_per_tick_then_writes_nothing(tmp_path) -> None:
    store = make_store(tmp_path / "state.json", nodes(3), [service("web", 6)])
    hosts = FakeHosts(NAMES[:3])
    sup = supervisor(store, hosts)
    sup.tick()
    with store.transaction() as db:
        repo = Repo(db)
        repo.nodes.put(replace(repo.nodes.get("worker1"), availability=Availability.DRAIN))
    left = []
    for _ in range(3):
        sup.tick()
        current = [t for t in tasks_of(store) if t.desired_state == TaskState.RUNNING]
        assert len(current) == 6
        left.append(sum(1 for t in current if t.node_id == "node1"))
    assert left == [1, 0, 0]  # parallelism 1: one slot a tick
    assert hosts["worker1"].task_ids() == []
    assert sum(len(hosts[n].task_ids()) for n in NAMES[:3]) == 6
    forget_commands(hosts)
    before = store.path.read_bytes()
    sup.tick()
    assert [h.commands for h in hosts] == [[], [], []]
    assert store.path.read_bytes() == before


def test_an_update_recorded_while_the_supervisor_ends_the_previous_one_is_not_ended_too(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `service update` takes no lease: it may record a new update while a tick, having
    # found the previous one complete, is still applying its plan.
    store = make_store(tmp_path / "state.json", nodes(3), [service("web", 3)])
    hosts = FakeHosts(NAMES[:3])
    sup = supervisor(store, hosts)
    sup.tick()
    record_update(store, image="busybox", update=UpdatePolicy(parallelism=0, monitor=0))
    sup.tick()  # every slot renewed at once; the next tick finds the update complete
    with store.transaction() as db:
        Repo(db).services.put(service("other", 1))  # something for that tick to apply

    def user_updates_meanwhile(*args, **kwargs):
        record_update(store, image="alpine")
        monkeypatch.setattr(executor, "apply", apply)
        return apply(*args, **kwargs)

    apply = executor.apply
    monkeypatch.setattr(executor, "apply", user_updates_meanwhile)
    sup.tick()
    with store.read() as db:
        status = Repo(db).services.get("web").update_status
    assert (status.state, status.spec_version) == (UpdateState.UPDATING, 3)
    for _ in range(3):
        sup.tick()
    with store.read() as db:
        status = Repo(db).services.get("web").update_status
    assert status.state == UpdateState.COMPLETED
    current = [t for t in tasks_of(store) if t.desired_state == TaskState.RUNNING]
    assert {t.image for t in current if t.service_id == "svc-web"} == {"alpine"}


def test_a_task_a_command_ended_after_the_tick_found_it_never_started_is_not_started(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An interrupted command left slot 2's task assigned with no container. The tick
    # finds it never started; before it takes the lease, a command (rerun) ends it.
    store = make_store(tmp_path / "state.json", nodes(2), [service("web", 2)])
    hosts = FakeHosts(NAMES[:2])
    sup = supervisor(store, hosts)
    sup.tick()
    (left,) = [t for t in tasks_of(store) if t.slot == 2]
    for host in hosts:
        host.docker = {c: v for c, v in host.docker.items() if v[1].task_id != left.id}
    long_ago = "2026-12-04T12:00:00.000+00:00"
    executor.save(
        store,
        [
            replace(
                left,
                state=TaskState.ASSIGNED,
                container_id="",
                created_at=long_ago,
                timestamps={"assigned": long_ago},
            )
        ],
    )
    hosts_of_slot_1 = sorted(h.name for h in hosts if h.task_ids())

    def command_scales_down_meanwhile(*args, **kwargs):
        scale(store, "svc-web", 1)
        (stuck,) = [t for t in tasks_of(store) if t.id == left.id]
        executor.save(store, [replace(stuck, desired_state=TaskState.SHUTDOWN)])
        monkeypatch.setattr(sightings, "remove_strays", remove_strays)
        return remove_strays(*args, **kwargs)

    remove_strays = sightings.remove_strays
    monkeypatch.setattr(sightings, "remove_strays", command_scales_down_meanwhile)
    sup.tick()
    assert [t.desired_state for t in tasks_of(store) if t.id == left.id] in (
        [],  # forgotten
        [TaskState.SHUTDOWN],
    )
    assert sorted(h.name for h in hosts if h.task_ids()) == hosts_of_slot_1
    assert sum(len(h.task_ids()) for h in hosts) == 1


# ------------------------------------------------------ leases, while a host hangs


def pinned(name: str, replicas: int, constraint: str) -> Service:
    spec = ServiceSpec(name, "nginx", replicas=replicas, constraints=(constraint,))
    return Service(f"svc-{name}", spec, "", "")


def test_a_command_on_another_service_completes_while_a_tick_hangs_on_a_host(
    tmp_path,
) -> None:
    store = make_store(
        tmp_path / "state.json",
        nodes(3),
        [
            pinned("web", 1, "node.hostname==worker2"),
            pinned("api", 1, "node.hostname!=worker2"),
        ],
    )
    hosts = FakeHosts(NAMES[:3])
    sup = supervisor(store, hosts)
    sup.tick()
    (web,) = [t for t in tasks_of(store) if t.service_id == "svc-web"]
    # web's replica dies; the tick's start of its replacement on worker2 never answers.
    hosts["worker2"].stop(web.id)
    hosts["worker2"].hang_on = "docker inspect --format"
    tick = threading.Thread(target=sup.tick)
    tick.start()
    try:
        assert hosts["worker2"].hanging.wait(10)
        with store.read() as db:  # held, it would be free only once its holder's expired
            assert leases.get(db, leases.service_lease("svc-api")) is None
        scale(store, "svc-api", 2)
        assert convergence.converge(store, hosts, {"svc-api"}) == []
        assert tick.is_alive()  # the command did not wait for the tick
    finally:
        hosts["worker2"].released.set()
        tick.join()
    api = [t for t in tasks_of(store) if t.service_id == "svc-api"]
    assert [t.state for t in api] == [TaskState.RUNNING] * 2
    assert len(hosts["manager1"].task_ids() + hosts["worker1"].task_ids()) == 2


def test_a_finished_drain_leaves_its_service_unleased_while_a_tick_hangs_elsewhere(
    tmp_path,
) -> None:
    store = make_store(
        tmp_path / "state.json",
        nodes(3),
        [
            pinned("web", 1, "node.hostname==worker2"),
            pinned("api", 2, "node.hostname!=worker2"),
        ],
    )
    hosts = FakeHosts(NAMES[:3])
    sup = supervisor(store, hosts)
    sup.tick()
    with store.transaction() as db:
        repo = Repo(db)
        repo.nodes.put(replace(repo.nodes.get("worker1"), availability=Availability.DRAIN))
        api = repo.services.get("api")  # no monitoring period: the drain ends with its move
        repo.services.put(replace(api, spec=replace(api.spec, update=UpdatePolicy(monitor=0))))
    for _ in range(3):  # api's task leaves worker1; its old record stays there, shut down
        sup.tick()
    assert hosts["worker1"].task_ids() == []
    with store.read() as db:
        repo = Repo(db)
        step = rolling.decide_drain(
            repo.services.get("api"), repo.tasks.all(), repo.nodes.all(), clock.parse(clock.now())
        )
    assert step is not None and step.outcome is not None  # what made it look busy
    (web,) = [t for t in tasks_of(store) if t.service_id == "svc-web"]
    hosts["worker2"].stop(web.id)
    hosts["worker2"].hang_on = "docker inspect --format"
    tick = threading.Thread(target=sup.tick)
    tick.start()
    try:
        assert hosts["worker2"].hanging.wait(10)
        with store.read() as db:
            assert leases.get(db, leases.service_lease("svc-api")) is None
    finally:
        hosts["worker2"].released.set()
        tick.join()


def test_a_tick_waiting_on_a_host_keeps_its_own_lease_and_lets_the_services_go(
    tmp_path,
) -> None:
    store = make_store(
        tmp_path / "state.json", nodes(3), [pinned("web", 1, "node.hostname==worker2")]
    )
    hosts = FakeHosts(NAMES[:3])
    sup = supervisor(store, hosts)
    sup.tick()
    (web,) = tasks_of(store)
    hosts["worker2"].stop(web.id)
    hosts["worker2"].hang_on = "docker inspect --format"
    tick = threading.Thread(target=sup.tick)
    tick.start()

    def lease(name: str) -> leases.Lease | None:
        with store.read() as db:
            return leases.get(db, name)

    try:
        assert hosts["worker2"].hanging.wait(10)
        first = lease(leases.SUPERVISOR)
        assert first is not None and first.holder == sup.holder
        for _ in range(200):  # renewed a third of the way into its TTL
            if (now := lease(leases.SUPERVISOR)) and now.expires_at > first.expires_at:
                break
            time.sleep(0.1)
        assert now is not None and now.expires_at > first.expires_at
        # The start has not answered for longer than a connect may take: a command on web
        # gets its lease, without waiting for the host to answer.
        with convergence.leased(store, {"svc-web"}, wait=10):
            assert lease(leases.service_lease("svc-web")).holder != sup.holder
    finally:
        hosts["worker2"].released.set()
        tick.join()
    assert lease(leases.service_lease("svc-web")) is None


def two_on_workers_whose_replacements_hang_on_worker1(
    store: StateStore, hosts: FakeHosts, sup: Supervisor
) -> threading.Thread:
    """web's two replicas (one on each worker) die; the tick replacing them hangs at
    worker1's start, before it reaches worker2 (FakeHosts.each goes in order)."""
    sup.tick()
    for task in tasks_of(store):
        hosts[NAMES[int(task.node_id[-1])]].stop(task.id)
    forget_commands(hosts)
    hosts["worker1"].hang_on = "docker inspect --format"
    tick = threading.Thread(target=sup.tick)
    tick.start()
    assert hosts["worker1"].hanging.wait(10)
    return tick


def started_on_worker2(hosts: FakeHosts) -> list[str]:
    return [c for c in hosts["worker2"].commands if "docker inspect --format" in c]


def test_a_step_leaves_a_service_whose_lease_another_holder_took_to_it(tmp_path) -> None:
    store = make_store(
        tmp_path / "state.json", nodes(3), [pinned("web", 2, "node.hostname!=manager1")]
    )
    hosts = FakeHosts(NAMES[:3])
    said: list[str] = []
    sup = Supervisor(store, None, Settings(), say=said.append, hosts=hosts)  # type: ignore[arg-type]
    tick = two_on_workers_whose_replacements_hang_on_worker1(store, hosts, sup)
    try:
        # Its lease lapsed (a state file too busy to renew it, say) and a command took it.
        with store.transaction() as db:
            db.table("leases").upsert(
                {"name": "service:svc-web", "holder": "elsewhere:1:abcdef",
                 "expires_at": "2999-01-01T00:00:00.000+00:00", "note": ""},
                Query().name == "service:svc-web",
            )  # fmt: skip
        for _ in range(100):
            if any("taken by elsewhere:1:abcdef" in line for line in said):
                break
            time.sleep(0.1)
    finally:
        hosts["worker1"].released.set()
        tick.join()
    assert any(
        "service:svc-web was taken by elsewhere:1:abcdef: this step leaves service svc-web to it"
        in line
        for line in said
    )
    # worker2's replacement is left as recorded, for the command to start.
    assert started_on_worker2(hosts) == []
    with store.read() as db:
        assert leases.get(db, "service:svc-web").holder == "elsewhere:1:abcdef"


def test_a_renewal_that_fails_with_any_error_is_said_and_the_step_stops_once_unvouched(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_store(
        tmp_path / "state.json", nodes(3), [pinned("web", 2, "node.hostname!=manager1")]
    )
    hosts = FakeHosts(NAMES[:3])
    said: list[str] = []
    sup = Supervisor(store, None, Settings(), say=said.append, hosts=hosts)  # type: ignore[arg-type]
    take = leases.take

    def busy_for_the_renewer(*args, **kwargs):
        if threading.current_thread().name == "swarmctl-lease":
            raise RuntimeError("state busy")
        return take(*args, **kwargs)

    monkeypatch.setattr(leases, "take", busy_for_the_renewer)
    tick = two_on_workers_whose_replacements_hang_on_worker1(store, hosts, sup)
    try:
        failed = "renewing the supervisor's leases failed: RuntimeError('state busy')"
        for _ in range(100):  # said each time, so the thread lives on
            if sum(failed in line for line in said) >= 2:
                break
            time.sleep(0.1)
        time.sleep(Settings().lease_ttl / 2)  # the leases may have lapsed by now
    finally:
        hosts["worker1"].released.set()
        tick.join()
    assert sum(failed in line for line in said) >= 2
    assert started_on_worker2(hosts) == []


def test_work_that_would_reach_a_node_that_did_not_answer_waits_unleased(tmp_path) -> None:
    store = make_store(
        tmp_path / "state.json",
        nodes(3),
        [service("web", 0), pinned("api", 1, "node.hostname==worker2")],
    )
    with store.transaction() as db:  # web's one replica on worker2 as well
        Repo(db).services.put(pinned("web", 1, "node.hostname==worker2"))
    hosts = FakeHosts(NAMES[:3])
    sup = supervisor(store, hosts)
    sup.tick()
    hosts["worker2"].reachable = False
    record_update(store, image="busybox", update=UpdatePolicy(monitor=0))
    scale(store, "svc-api", 0)
    forget_commands(hosts)
    sup.tick()
    # Neither the update's stop nor the scale-down's was tried on worker2: it is unknown,
    # not found down by a command that could not reach it, and nothing is leased.
    assert nodes_of(store)["worker2"].state == NodeState.UNKNOWN
    current = [t for t in tasks_of(store) if t.desired_state == TaskState.RUNNING]
    assert sorted((t.service_id, t.image) for t in current) == [
        ("svc-api", "nginx"),
        ("svc-web", "nginx"),
    ]
    with store.read() as db:
        assert [lease["name"] for lease in db.table("leases").all()] == ["supervisor"]
    hosts["worker2"].reachable = True
    for _ in range(3):
        sup.tick()
    current = [t for t in tasks_of(store) if t.desired_state == TaskState.RUNNING]
    assert [(t.service_id, t.image) for t in current] == [("svc-web", "busybox")]
    assert hosts["worker2"].task_ids() == [current[0].id]


def test_a_tick_stopping_a_removed_services_tasks_leaves_no_lease_behind(tmp_path) -> None:
    store = make_store(tmp_path / "state.json", nodes(2), [service("web", 2)])
    hosts = FakeHosts(NAMES[:2])
    sup = supervisor(store, hosts)
    sup.tick()
    with store.transaction() as db:  # `service rm`, its command cut short before its stops
        services.record_remove(Repo(db), ["web"])
    sup.tick()
    assert hosts["manager1"].task_ids() == hosts["worker1"].task_ids() == []
    with store.read() as db:
        assert [lease["name"] for lease in db.table("leases").all()] == ["supervisor"]


def test_a_node_lost_mid_update_is_no_failure_of_it_the_update_completes_on_the_others(
    tmp_path,
) -> None:
    store = make_store(tmp_path / "state.json", nodes(3), [service("web", 3)])
    hosts = FakeHosts(NAMES[:3])
    executor.apply(store, hosts, plan_now(store))
    record_update(store, image="busybox", update=UpdatePolicy(monitor=0))
    hosts["worker2"].reachable = False
    status, _ = rolling.roll(store, hosts, "svc-web")
    assert status.state == UpdateState.COMPLETED, status.message
    current = [t for t in tasks_of(store) if t.desired_state == TaskState.RUNNING]
    assert sorted(t.slot for t in current) == [1, 2, 3]
    assert {(t.image, t.state) for t in current} == {("busybox", TaskState.RUNNING)}
    assert all(t.node_id != "node2" for t in current)


def partitioned(store: StateStore, hosts: FakeHosts, name: str) -> None:
    """The node stops answering, and the supervisor saw it miss a heartbeat: unknown."""
    hosts[name].reachable = False
    with store.transaction() as db:
        repo = Repo(db)
        repo.nodes.put(replace(repo.nodes.get(name), state=NodeState.UNKNOWN))
    hosts[name].tries = 0


def test_a_command_tries_a_node_the_state_marks_unknown_once_and_the_supervisor_repairs_it(
    tmp_path,
) -> None:
    store = make_store(tmp_path / "state.json", nodes(3), [service("web", 3)])
    hosts = FakeHosts(NAMES[:3])
    sup = supervisor(store, hosts)
    sup.tick()
    (on_worker2,) = [t for t in tasks_of(store) if t.node_id == "node2"]
    record_update(store, image="busybox", update=UpdatePolicy(monitor=0))
    partitioned(store, hosts, "worker2")
    status, _ = rolling.roll(store, hosts, "svc-web")
    services.scale(store, {"web": 2})
    convergence.converge(store, hosts, {"svc-web"})
    assert status.state == UpdateState.COMPLETED
    # Only its task's stop is tried (a live node would keep a duplicate): once, since
    # the failed try marks it down and no later round pays a connect timeout there.
    assert hosts["worker2"].tries == 1
    current = [t for t in tasks_of(store) if t.desired_state == TaskState.RUNNING]
    assert len(current) == 2 and all(t.node_id != "node2" for t in current)
    assert hosts["worker2"].task_ids() == [on_worker2.id]  # left there for now
    hosts["worker2"].reachable = True
    sup.tick()
    assert hosts["worker2"].task_ids() == []  # removed once the node answers
    assert sum(len(hosts[n].task_ids()) for n in NAMES[:3]) == 2


def test_a_start_that_times_out_fails_its_task_and_leaves_its_node_ready(tmp_path) -> None:
    store = make_store(tmp_path / "state.json", nodes(1), [service("web", 1)])
    hosts = FakeHosts(NAMES[:1])
    hosts["manager1"].timeout_on = "docker run"
    executor.apply(store, hosts, plan_now(store))
    (task,) = tasks_of(store)
    assert task.state == TaskState.REJECTED and "did not finish" in task.error
    assert not task.lost_with_node  # its restart policy and back-off apply
    assert nodes_of(store)["manager1"].state == NodeState.READY


def test_host_steps_stop_at_the_first_unchecked_step_that_fails(tmp_path) -> None:
    hosts = FakeHosts(NAMES[:1])
    hosts["manager1"].failures.append(Failure("first", 3, "no", None))
    steps = [
        HostStep("manager1", Kind.MESH, "first", None, check=False),
        HostStep("manager1", Kind.MESH, "second", None, check=False),
    ]
    (result,) = executor.run_steps(hosts, steps).values()
    assert (result.exit_code, result.stderr) == (3, "no")
    assert hosts["manager1"].commands == ["first"]


def test_a_roll_tells_its_progress_it_still_waits_on_a_new_task_on_a_node_not_seen_ready(
    tmp_path,
) -> None:
    store = make_store(tmp_path / "state.json", nodes(3), [service("web", 3)])
    hosts = FakeHosts(NAMES[:3])
    executor.apply(store, hosts, plan_now(store))
    record_update(store, image="busybox", update=UpdatePolicy(parallelism=0, monitor=0))
    waited: list[set] = []
    rolling.advance(store, hosts, "svc-web", waiting=lambda slots: waited.append(set(slots)))
    new = [t for t in tasks_of(store) if t.image == "busybox"]
    assert {t.state for t in new} == {TaskState.RUNNING}
    (on_worker2,) = [t for t in new if t.node_id == "node2"]
    partitioned(store, hosts, "worker2")
    rolling.advance(store, hosts, "svc-web", waiting=lambda slots: waited.append(set(slots)))
    assert waited[-1] == {on_worker2.slot}
