"""The reconciler without hosts: services, tasks and nodes as data, a fixed `now` and
task IDs from a counter, so every plan is exact. A small `apply` plays the executor's
part on the task list, to check that reconciling a converged cluster plans nothing.
"""

import itertools
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmctl.models import (
    NODE_UNREACHABLE,
    Availability,
    Mode,
    MountSpec,
    Node,
    NodeFacts,
    NodeState,
    RestartCondition,
    RestartPolicy,
    Role,
    Service,
    ServiceSpec,
    Task,
    TaskState,
)
from swarmctl.reconciler import Plan, reconcile
from swarmctl.scheduler import CONSTRAINTS_NOT_SATISFIED

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
RUNNING, SHUTDOWN = TaskState.RUNNING, TaskState.SHUTDOWN


def at(seconds_ago: float = 0.0, now: datetime = NOW) -> str:
    return (now - timedelta(seconds=seconds_ago)).isoformat(timespec="milliseconds")


def node(name: str, **fields: object) -> Node:
    defaults: dict[str, object] = {
        "id": name,
        "hostname": name,
        "role": Role.WORKER,
        "address": "192.168.56.10",
        "created_at": at(3600),
        "updated_at": at(3600),
        "facts": NodeFacts(cpus=2, memory_bytes=2**31),
    }
    return Node(**{**defaults, **fields})  # type: ignore[arg-type]


A, B, C = node("a"), node("b"), node("c")


def service(replicas: int = 3, id: str = "svc", name: str = "web", **spec: object) -> Service:
    return Service(
        id,
        ServiceSpec(name, "nginx", replicas=replicas, **spec),  # type: ignore[arg-type]
        at(3600),
        at(3600),
    )


def task(
    id: str,
    slot: int,
    node_id: str = "a",
    state: TaskState = RUNNING,
    desired: TaskState = RUNNING,
    ago: float = 600.0,
    service_id: str = "svc",
    **fields: object,
) -> Task:
    """A task created `ago` seconds before NOW that entered `state` 1 s later."""
    fields.setdefault("container_id", f"container-{id}" if node_id else "")
    return Task(
        id=id,
        service_id=service_id,
        slot=slot,
        created_at=at(ago),
        node_id=node_id,
        desired_state=desired,
        state=state,
        timestamps={state.value: at(ago - 1)},
        **fields,  # type: ignore[arg-type]
    )


def failed(id: str, slot: int, ended_ago: float, node_id: str = "a", **fields: object) -> Task:
    """A task of `slot` that failed `ended_ago` seconds before NOW, already shut down."""
    fields.setdefault("exit_code", 1)
    return task(id, slot, node_id, TaskState.FAILED, SHUTDOWN, ended_ago + 1, **fields)


def counter(prefix: str = "new") -> Callable[[], str]:
    numbers = itertools.count(1)
    return lambda: f"{prefix}{next(numbers):03d}"


def plan_for(
    services: Sequence[Service],
    tasks: Sequence[Task],
    nodes: Sequence[Node] = (A, B, C),
    now: datetime = NOW,
    only: set[str] | None = None,
) -> Plan:
    return reconcile(services, tasks, nodes, now, counter(), only=only)


def apply(tasks: Sequence[Task], plan: Plan) -> list[Task]:
    """The plan's effect on the task records, as executor.write_plan stores it."""
    by_id = {t.id: t for t in tasks}
    for changed in [*plan.update, *plan.shutdown]:
        by_id[changed.id] = changed
    for created in plan.create:
        by_id[created.id] = created
    for id in plan.forget:
        by_id.pop(id)
    return list(by_id.values())


def started(tasks: Sequence[Task]) -> list[Task]:
    """What the executor makes of the plan: assigned tasks run, shut-down ones stop."""
    done = []
    for t in tasks:
        if t.desired_state == RUNNING and t.state == TaskState.ASSIGNED:
            t = replace(t, state=RUNNING, container_id=f"container-{t.id}")
        elif t.desired_state == SHUTDOWN and not t.state.terminal:
            t = replace(t, state=SHUTDOWN)
        done.append(t)
    return done


def slots(tasks: Sequence[Task]) -> list[int]:
    return sorted(t.slot for t in tasks)


def desired_running(tasks: Sequence[Task]) -> list[Task]:
    return [t for t in tasks if t.desired_state == RUNNING]


# ------------------------------------------------------------------- new services, scale


def test_a_new_service_gets_one_assigned_task_per_slot_spread_one_per_node() -> None:
    plan = plan_for([service(3)], [])
    assert slots(plan.create) == [1, 2, 3]
    assert {t.state for t in plan.create} == {TaskState.ASSIGNED}
    assert sorted(t.node_id for t in plan.create) == ["a", "b", "c"]
    assert (plan.shutdown, plan.update, plan.forget) == ((), (), ())


def test_new_tasks_take_ids_from_new_id_and_the_time_from_now() -> None:
    plan = plan_for([service(2)], [])
    assert [t.id for t in plan.create] == ["new001", "new002"]
    assert {t.created_at for t in plan.create} == {at(0)}
    assert {t.timestamps["assigned"] for t in plan.create} == {at(0)}
    assert {t.desired_state for t in plan.create} == {RUNNING}


def test_reconciling_the_result_of_a_plan_plans_nothing() -> None:
    tasks = apply([], plan_for([service(3)], []))
    assert plan_for([service(3)], tasks).empty


def test_reconciling_after_the_tasks_run_plans_nothing_either() -> None:
    tasks = started(apply([], plan_for([service(3)], [])))
    again = plan_for([service(3)], tasks)
    assert again.empty and again.wake_at is None


def test_scaling_down_shuts_down_the_highest_slots_and_keeps_the_lowest() -> None:
    tasks = [task(f"t{i}", i, "abcab"[i - 1]) for i in range(1, 6)]
    plan = plan_for([service(2)], tasks)
    assert slots(plan.shutdown) == [3, 4, 5]
    assert {t.desired_state for t in plan.shutdown} == {SHUTDOWN}
    assert {t.message for t in plan.shutdown} == {"scaled down"}
    assert (plan.create, plan.update) == ((), ())


def test_scaling_up_creates_only_the_missing_slots() -> None:
    tasks = [task("t1", 1, "a"), task("t2", 2, "b")]
    plan = plan_for([service(4)], tasks)
    assert slots(plan.create) == [3, 4]
    assert plan.shutdown == ()


def test_scaling_up_places_the_new_tasks_on_the_least_loaded_nodes() -> None:
    tasks = [task("t1", 1, "a"), task("t2", 2, "b")]
    plan = plan_for([service(4)], tasks)
    assert [(t.slot, t.node_id) for t in plan.create] == [(3, "c"), (4, "a")]


def test_scaling_to_zero_shuts_down_every_task() -> None:
    tasks = [task("t1", 1, "a"), task("t2", 2, "b")]
    plan = plan_for([service(0)], tasks)
    assert slots(plan.shutdown) == [1, 2]
    assert plan.create == ()


def test_slots_above_nine_are_created_and_kept_like_the_others() -> None:
    tasks = apply([], plan_for([service(12)], []))
    assert slots(tasks) == list(range(1, 13))
    assert plan_for([service(12)], started(tasks)).empty


def test_the_finished_tasks_of_a_slot_scaled_away_are_forgotten() -> None:
    tasks = [task("t1", 1), task("t2", 2, state=SHUTDOWN, desired=SHUTDOWN)]
    assert plan_for([service(1)], tasks).forget == ("t2",)


# ------------------------------------------------------------------ restart and back-off


def test_a_failed_task_is_shut_down_and_a_new_task_takes_its_slot_at_once() -> None:
    current = task("t1", 1, "a", TaskState.FAILED, ago=30, error="task: non-zero exit (1)")
    plan = plan_for([service(1)], [current])
    (shut,) = plan.shutdown
    assert (shut.id, shut.desired_state, shut.state) == ("t1", SHUTDOWN, TaskState.FAILED)
    (new,) = plan.create
    assert (new.slot, new.state) == (1, TaskState.ASSIGNED)
    assert plan.wake_at is None


def test_a_second_failure_within_five_minutes_waits_half_a_second() -> None:
    first = failed("t1", 1, ended_ago=60)
    second = task("t2", 1, state=TaskState.FAILED, ago=1)  # failed at NOW
    plan = plan_for([service(1)], [first, second])
    assert [t.id for t in plan.shutdown] == ["t2"]
    assert plan.create == ()
    assert plan.wake_at == NOW + timedelta(seconds=0.5)


def test_the_slot_is_refilled_once_the_back_off_has_passed() -> None:
    first = failed("t1", 1, ended_ago=60)
    second = task("t2", 1, state=TaskState.FAILED, ago=1)
    tasks = apply([first, second], plan_for([service(1)], [first, second]))
    later = plan_for([service(1)], tasks, now=NOW + timedelta(seconds=0.5))
    assert slots(later.create) == [1]


def test_a_failure_more_than_five_minutes_old_does_not_lengthen_the_back_off() -> None:
    old = failed("t1", 1, ended_ago=301)
    current = task("t2", 1, state=TaskState.FAILED, ago=1)
    plan = plan_for([service(1)], [old, current])
    assert slots(plan.create) == [1]
    assert plan.wake_at is None


@pytest.mark.parametrize(
    ("failures", "wait"), [(2, 0.5), (3, 1.0), (4, 2.0), (5, 4.0), (7, 16.0), (8, 30.0), (9, 30.0)]
)
def test_each_further_failure_doubles_the_back_off_up_to_30_seconds(
    failures: int, wait: float
) -> None:
    history = [failed(f"t{i}", 1, ended_ago=100 - i) for i in range(1, failures)]
    current = task("now", 1, state=TaskState.FAILED, ago=1)
    plan = plan_for([service(1)], [*history, current])
    assert plan.create == ()
    assert plan.wake_at == NOW + timedelta(seconds=wait)


def test_an_explicit_restart_delay_is_a_fixed_wait_even_after_the_first_failure() -> None:
    fixed = service(1, restart=RestartPolicy(delay=5))
    current = task("t1", 1, state=TaskState.FAILED, ago=1)
    plan = plan_for([fixed], [current])
    assert plan.create == ()
    assert plan.wake_at == NOW + timedelta(seconds=5)


def test_an_explicit_restart_delay_does_not_grow_with_repeated_failures() -> None:
    fixed = service(1, restart=RestartPolicy(delay=5))
    history = [failed(f"t{i}", 1, ended_ago=60 - i) for i in range(1, 5)]
    current = task("now", 1, state=TaskState.FAILED, ago=1)
    assert plan_for([fixed], [*history, current]).wake_at == NOW + timedelta(seconds=5)


def test_the_earliest_back_off_of_all_slots_is_the_plans_wake_time() -> None:
    fixed = service(2, restart=RestartPolicy(delay=5))
    one = task("t1", 1, state=TaskState.FAILED, ago=1)
    two = task("t2", 2, "b", state=TaskState.FAILED, ago=4)  # failed 3 s ago: 2 s left
    assert plan_for([fixed], [one, two]).wake_at == NOW + timedelta(seconds=2)


def test_a_slot_crash_looping_for_minutes_reaches_the_30_second_back_off() -> None:
    """Each new task fails at once; the waits between failures should grow 0.5, 1, 2, 4,
    8, 16, then stay at 30 s."""
    now, tasks, waits, ids = NOW, [], [], counter("loop")
    for _ in range(20):
        plan = reconcile([service(1)], tasks, [A, B, C], now, ids)
        tasks = apply(tasks, plan)
        if plan.create:
            (new,) = plan.create
            assert new.state == TaskState.ASSIGNED
            stamp = now.isoformat(timespec="milliseconds")
            tasks = [
                replace(t, state=TaskState.FAILED, timestamps={**t.timestamps, "failed": stamp})
                if t.id == new.id
                else t
                for t in tasks
            ]
        else:
            assert plan.wake_at is not None
            waits.append((plan.wake_at - now).total_seconds())
            now = plan.wake_at
    assert waits[:7] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0]


# ---------------------------------------------------------------- restart conditions


def test_with_restart_condition_none_a_failed_task_is_not_replaced() -> None:
    never = service(1, restart=RestartPolicy(RestartCondition.NONE))
    plan = plan_for([never], [task("t1", 1, state=TaskState.FAILED)])
    assert [t.id for t in plan.shutdown] == ["t1"]
    assert (plan.create, plan.wake_at) == ((), None)


def test_with_restart_condition_none_a_completed_task_is_not_replaced() -> None:
    never = service(1, restart=RestartPolicy(RestartCondition.NONE))
    assert plan_for([never], [task("t1", 1, state=TaskState.COMPLETE)]).create == ()


def test_a_slot_left_empty_by_restart_condition_none_stays_empty() -> None:
    never = service(1, restart=RestartPolicy(RestartCondition.NONE))
    tasks = apply([], plan_for([never], [task("t1", 1, state=TaskState.FAILED)]))
    tasks = apply(tasks, plan_for([never], [task("t1", 1, state=TaskState.FAILED)]))
    assert plan_for([never], tasks).empty


def test_with_restart_condition_on_failure_a_completed_task_is_not_replaced() -> None:
    on_failure = service(1, restart=RestartPolicy(RestartCondition.ON_FAILURE))
    plan = plan_for([on_failure], [task("t1", 1, state=TaskState.COMPLETE, exit_code=0)])
    assert [t.id for t in plan.shutdown] == ["t1"]
    assert plan.create == ()


def test_with_restart_condition_on_failure_a_failed_task_is_replaced() -> None:
    on_failure = service(1, restart=RestartPolicy(RestartCondition.ON_FAILURE))
    plan = plan_for([on_failure], [task("t1", 1, state=TaskState.FAILED)])
    assert slots(plan.create) == [1]


def test_with_restart_condition_any_a_completed_task_is_replaced() -> None:
    plan = plan_for([service(1)], [task("t1", 1, state=TaskState.COMPLETE, exit_code=0)])
    assert slots(plan.create) == [1]


def test_a_rejected_task_is_replaced_like_a_failed_one() -> None:
    plan = plan_for([service(1)], [task("t1", 1, state=TaskState.REJECTED)])
    assert slots(plan.create) == [1]


def test_max_attempts_stops_replacing_a_slot_once_reached() -> None:
    limited = service(1, restart=RestartPolicy(max_attempts=2, delay=0))
    history = [failed("t1", 1, ended_ago=60), failed("t2", 1, ended_ago=30)]
    current = task("t3", 1, state=TaskState.FAILED, ago=10)
    plan = plan_for([limited], [*history, current])
    assert [t.id for t in plan.shutdown] == ["t3"]
    assert (plan.create, plan.wake_at) == ((), None)


def test_failures_before_the_window_do_not_count_towards_max_attempts() -> None:
    limited = service(1, restart=RestartPolicy(max_attempts=2, window=120, delay=0))
    history = [failed("t1", 1, ended_ago=600), failed("t2", 1, ended_ago=500)]
    current = task("t3", 1, state=TaskState.FAILED, ago=10)
    assert slots(plan_for([limited], [*history, current]).create) == [1]


def test_failures_inside_the_window_count_towards_max_attempts() -> None:
    limited = service(1, restart=RestartPolicy(max_attempts=2, window=120, delay=0))
    history = [failed("t1", 1, ended_ago=600), failed("t2", 1, ended_ago=60)]
    current = task("t3", 1, state=TaskState.FAILED, ago=10)
    assert plan_for([limited], [*history, current]).create == ()


def test_max_attempts_one_allows_one_restart() -> None:
    once = service(1, restart=RestartPolicy(max_attempts=1, delay=0))
    plan = plan_for([once], [task("t1", 1, state=TaskState.FAILED, ago=10)])
    assert slots(plan.create) == [1]


def test_max_attempts_above_the_history_size_still_stops_the_restarts() -> None:
    """Every task fails at once; 100 s apart, so neither back-off nor node avoidance
    comes into play."""
    limited = service(1, restart=RestartPolicy(max_attempts=8))
    now, tasks, ids, runs = NOW, [], counter("run"), 0
    for _ in range(30):
        plan = reconcile([limited], tasks, [A], now, ids)
        tasks = apply(tasks, plan)
        runs += len(plan.create)
        stamp = now.isoformat(timespec="milliseconds")
        tasks = [
            replace(t, state=TaskState.FAILED, timestamps={**t.timestamps, "failed": stamp})
            if t.state == TaskState.ASSIGNED
            else t
            for t in tasks
        ]
        now += timedelta(seconds=100)
    assert runs <= 9  # the first run and 8 restarts


def lost(id: str, slot: int, ended_ago: float, node_id: str = "a", **fields: object) -> Task:
    """A task of `slot` rejected `ended_ago` seconds before NOW because its node could not
    be reached to start it (as the executor records it), already shut down."""
    fields.setdefault("error", f"{NODE_UNREACHABLE}: connect timed out")
    return task(id, slot, node_id, TaskState.REJECTED, SHUTDOWN, ended_ago + 1, **fields)


def test_the_replacement_of_a_task_lost_with_its_node_keeps_the_slots_restart_count() -> None:
    failure = failed("t1", 1, ended_ago=60)
    restart = task(
        "t2",
        1,
        state=TaskState.REJECTED,
        ago=1,
        restarts=1,
        error=f"{NODE_UNREACHABLE}: connect timed out",
    )
    plan = plan_for([service(1)], [failure, restart], [A, B])
    (new,) = plan.create
    assert (new.state, new.restarts, plan.wake_at) == (TaskState.ASSIGNED, 1, None)


def test_a_task_lost_with_its_node_does_not_lengthen_the_next_back_off() -> None:
    """Two failures of its own within five minutes: half a second, as without the loss."""
    history = [failed("t1", 1, ended_ago=60), lost("t2", 1, ended_ago=30, restarts=1)]
    current = task("t3", 1, "b", TaskState.FAILED, ago=1, restarts=1)
    plan = plan_for([service(1)], [*history, current])
    assert plan.create == ()
    assert plan.wake_at == NOW + timedelta(seconds=0.5)


def test_a_replacement_after_an_orphaned_task_is_no_restart_attempt() -> None:
    once = service(1, restart=RestartPolicy(max_attempts=1, delay=0))
    orphan = task("t1", 1, "a", TaskState.ORPHANED, SHUTDOWN, ago=60)
    current = task("t2", 1, "b", TaskState.FAILED, ago=10)
    assert slots(plan_for([once], [orphan, current]).create) == [1]


@pytest.mark.parametrize("window", [0, 3600])
def test_tasks_lost_with_their_node_use_up_no_restart_attempts(window: float) -> None:
    """Each new task is rejected three times as its node cannot be reached, then fails
    on its own: max attempts 1 still allows its one restart, which starts at once."""
    once = service(1, restart=RestartPolicy(max_attempts=1, window=window or None))
    now, tasks, ids, outcomes = NOW, [], counter("try"), list("lllflllf")
    for _ in range(12):
        plan = reconcile([once], tasks, [A, B], now, ids)
        tasks = apply(tasks, plan)
        for new in plan.create:
            assert new.state == TaskState.ASSIGNED
            assert plan.wake_at is None
            outcome = outcomes.pop(0) if outcomes else "f"
            state = TaskState.REJECTED if outcome == "l" else TaskState.FAILED
            error = f"{NODE_UNREACHABLE}: no route to host" if outcome == "l" else "exit 1"
            stamp = now.isoformat(timespec="milliseconds")
            tasks = [
                replace(
                    t, state=state, error=error, timestamps={**t.timestamps, state.value: stamp}
                )
                if t.id == new.id
                else t
                for t in tasks
            ]
        now += timedelta(seconds=1)
    assert outcomes == []  # all 8 tasks started: the first failure's one restart included
    assert not desired_running(tasks)  # and no more after the second failure


# -------------------------------------------------------------- node down, left, drained


def test_a_task_on_a_down_node_is_orphaned_and_replaced_on_a_ready_node() -> None:
    down = replace(A, state=NodeState.DOWN)
    plan = plan_for([service(1)], [task("t1", 1, "a")], [down, B])
    (orphan,) = plan.shutdown
    assert (orphan.id, orphan.state, orphan.desired_state) == (
        "t1",
        TaskState.ORPHANED,
        SHUTDOWN,
    )
    assert orphan.message == "node is down"
    assert orphan.timestamps["orphaned"] == at(0)
    (new,) = plan.create
    assert (new.slot, new.node_id, new.state) == (1, "b", TaskState.ASSIGNED)


def test_a_task_on_a_node_that_left_is_orphaned_and_replaced() -> None:
    plan = plan_for([service(1)], [task("t1", 1, "gone")], [A])
    (orphan,) = plan.shutdown
    assert (orphan.state, orphan.message) == (TaskState.ORPHANED, "node left the cluster")
    assert [(t.slot, t.node_id) for t in plan.create] == [(1, "a")]


def test_an_orphaned_task_is_not_replaced_twice() -> None:
    down = replace(A, state=NodeState.DOWN)
    orphan = task("t1", 1, "a", TaskState.ORPHANED, desired=SHUTDOWN)
    assert plan_for([service(1)], [orphan, task("t2", 1, "b", ago=10)], [down, B]).empty


def test_a_task_on_a_node_of_unknown_status_is_left_alone() -> None:
    unknown = replace(A, state=NodeState.UNKNOWN)
    assert plan_for([service(1)], [task("t1", 1, "a")], [unknown, B]).empty


def test_a_task_on_a_drained_node_waits_until_the_drain_names_its_slot() -> None:
    drained = replace(A, availability=Availability.DRAIN)
    assert plan_for([service(1)], [task("t1", 1, "a")], [drained, B]).empty


def test_a_task_on_a_drained_node_named_by_the_drain_is_shut_down_and_replaced() -> None:
    drained = replace(A, availability=Availability.DRAIN)
    plan = reconcile(
        [service(1)], [task("t1", 1, "a")], [drained, B], NOW, counter(), renew={"svc": (1,)}
    )
    (shut,) = plan.shutdown
    assert (shut.id, shut.state, shut.desired_state, shut.message) == (
        "t1",
        RUNNING,
        SHUTDOWN,
        "drained",
    )
    assert [(t.slot, t.node_id) for t in plan.create] == [(1, "b")]


def test_a_paused_node_keeps_its_tasks() -> None:
    paused = replace(A, availability=Availability.PAUSE)
    assert plan_for([service(1)], [task("t1", 1, "a")], [paused, B]).empty


def test_a_paused_node_gets_no_new_tasks() -> None:
    paused = replace(A, availability=Availability.PAUSE)
    plan = plan_for([service(4)], [], [paused, B, C])
    assert {t.node_id for t in plan.create} == {"b", "c"}


# ---------------------------------------------------------------------- volume affinity

DB = service(1, id="dbsvc", name="db", mounts=(MountSpec("volume", "db_data", "/data"),))


def test_a_failed_task_with_a_local_volume_is_replaced_on_its_node() -> None:
    web = service(1, id="websvc", name="web")
    gone = failed("t1", 1, ended_ago=10, service_id="dbsvc")
    gone = replace(gone, timestamps={"running": at(30), **gone.timestamps})
    plan = plan_for([DB, web], [gone, task("w1", 1, "a", service_id="websvc")], [A, B, C])
    assert [(t.slot, t.node_id) for t in plan.create if t.service_id == "dbsvc"] == [(1, "a")]
    # Had it never run, no data would hold it there: the emptiest node takes it.
    never_ran = failed("t1", 1, ended_ago=10, service_id="dbsvc")
    plan = plan_for([DB, web], [never_ran, task("w1", 1, "a", service_id="websvc")], [A, B, C])
    assert [(t.slot, t.node_id) for t in plan.create if t.service_id == "dbsvc"] == [(1, "b")]


def test_a_task_with_a_local_volume_waits_for_its_node_and_returns_there() -> None:
    down = replace(A, state=NodeState.DOWN)
    tasks = [task("t1", 1, "a", service_id="dbsvc")]
    plan = plan_for([DB], tasks, [down, B, C])
    (orphan,) = plan.shutdown
    (new,) = plan.create
    assert (orphan.state, new.state, new.node_id) == (TaskState.ORPHANED, TaskState.PENDING, "")
    assert new.error == "pinned to a by volume db_data"
    tasks = apply(tasks, plan)
    assert plan_for([DB], tasks, [down, B, C]).empty  # it waits, never elsewhere
    (placed,) = plan_for([DB], tasks, [A, B, C]).update
    assert (placed.id, placed.node_id, placed.state) == (new.id, "a", TaskState.ASSIGNED)


# ---------------------------------------------------------------------- pending tasks


def test_a_task_no_node_can_take_is_pending_with_the_schedulers_reason() -> None:
    constrained = service(1, constraints=("node.labels.zone==x",))
    (new,) = plan_for([constrained], []).create
    assert (new.state, new.node_id, new.desired_state) == (TaskState.PENDING, "", RUNNING)
    expected = f"no suitable node ({CONSTRAINTS_NOT_SATISFIED} on 3 nodes)"
    assert (new.message, new.error) == (expected, expected)


def test_a_task_with_no_node_at_all_says_there_are_no_nodes() -> None:
    (new,) = plan_for([service(1)], [], nodes=[]).create
    assert new.error == "no suitable node (no nodes in the cluster)"


def test_a_pending_task_whose_reason_holds_is_left_as_it_is() -> None:
    constrained = service(1, constraints=("node.labels.zone==x",))
    tasks = apply([], plan_for([constrained], []))
    assert plan_for([constrained], tasks).empty


def test_a_pending_task_is_assigned_when_a_node_becomes_suitable() -> None:
    constrained = service(1, constraints=("node.labels.zone==x",))
    (pending,) = apply([], plan_for([constrained], []))
    zoned = replace(B, labels={"zone": "x"})
    plan = plan_for([constrained], [pending], [A, zoned])
    assert plan.create == ()
    (placed,) = plan.update
    assert (placed.id, placed.node_id, placed.state) == (pending.id, "b", TaskState.ASSIGNED)
    assert placed.error == ""
    assert placed.timestamps["pending"] == pending.timestamps["pending"]


def test_a_pending_task_on_a_node_that_comes_back_is_assigned() -> None:
    down = [replace(n, state=NodeState.DOWN) for n in (A, B)]
    (pending,) = apply([], plan_for([service(1)], [], down))
    assert pending.state == TaskState.PENDING
    (placed,) = plan_for([service(1)], [pending], [A, down[1]]).update
    assert (placed.id, placed.node_id) == (pending.id, "a")


def test_a_service_failing_five_times_on_a_node_is_placed_on_another() -> None:
    history = [failed(f"t{i}", 1, ended_ago=100 - 10 * i, node_id="a") for i in range(1, 5)]
    current = task("t5", 1, "a", TaskState.FAILED, ago=60)
    plan = plan_for([service(1)], [*history, current], [A, B])
    assert [(t.slot, t.node_id) for t in plan.create] == [(1, "b")]


def test_four_failures_on_a_node_do_not_move_the_service() -> None:
    history = [failed(f"t{i}", 1, ended_ago=100 - 10 * i, node_id="a") for i in range(1, 4)]
    current = task("t4", 1, "a", TaskState.FAILED, ago=60)
    plan = plan_for([service(1)], [*history, current], [A, B])
    assert [(t.slot, t.node_id) for t in plan.create] == [(1, "a")]


def test_failures_older_than_five_minutes_do_not_keep_a_service_off_a_node() -> None:
    history = [failed(f"t{i}", 1, ended_ago=400 + i, node_id="a") for i in range(1, 5)]
    current = task("t5", 1, "a", TaskState.FAILED, ago=60)
    plan = plan_for([service(1)], [*history, current], [A, B])
    assert [(t.slot, t.node_id) for t in plan.create] == [(1, "a")]


def test_a_service_failing_on_the_only_node_does_not_claim_the_cluster_is_empty() -> None:
    history = [failed(f"t{i}", 1, ended_ago=100 - 10 * i, node_id="a") for i in range(1, 5)]
    current = task("t5", 1, "a", TaskState.FAILED, ago=60)
    (new,) = plan_for([service(1)], [*history, current], [A]).create
    assert new.state == TaskState.PENDING
    assert "no nodes in the cluster" not in new.error


# ------------------------------------------------------------------------------ history


def test_a_slot_keeps_at_most_five_tasks_forgetting_the_oldest_finished() -> None:
    history = [failed(f"t{i}", 1, ended_ago=1000 - i) for i in range(1, 8)]
    current = task("now", 1, ago=10)
    plan = plan_for([service(1)], [*history, current])
    assert plan.forget == ("t1", "t2", "t3")
    assert len(apply([*history, current], plan)) == 5


def test_a_slot_with_five_tasks_forgets_nothing() -> None:
    history = [failed(f"t{i}", 1, ended_ago=1000 - i) for i in range(1, 5)]
    assert plan_for([service(1)], [*history, task("now", 1, ago=10)]).empty


def test_tasks_whose_container_may_still_exist_are_never_forgotten() -> None:
    stuck = [
        task(f"s{i}", 1, state=RUNNING, desired=SHUTDOWN, ago=2000 - i, container_id=f"c{i}")
        for i in range(1, 8)
    ]
    plan = plan_for([service(1)], [*stuck, task("now", 1, ago=10)])
    assert plan.forget == ()


def test_stuck_tasks_do_not_protect_older_finished_ones_beyond_the_history() -> None:
    stuck = [task(f"s{i}", 1, desired=SHUTDOWN, ago=500 - i) for i in range(1, 4)]
    finished = [failed(f"f{i}", 1, ended_ago=1000 - i) for i in range(1, 7)]
    plan = plan_for([service(1)], [*finished, *stuck, task("now", 1, ago=10)])
    assert not set(plan.forget) & {t.id for t in stuck}
    assert set(plan.forget) == {"f1", "f2"}


def test_a_shut_down_task_that_never_got_a_container_may_be_forgotten() -> None:
    never_started = task("p1", 1, "", TaskState.PENDING, desired=SHUTDOWN, ago=1000)
    finished = [failed(f"f{i}", 1, ended_ago=900 - i) for i in range(1, 5)]
    plan = plan_for([service(1)], [never_started, *finished, task("now", 1, ago=10)])
    assert plan.forget == ("p1",)


# ---------------------------------------------------------------------- removed services


def test_the_running_tasks_of_a_removed_service_are_shut_down() -> None:
    tasks = [task("t1", 1, "a"), task("t2", 2, "b")]
    plan = plan_for([], tasks)
    assert sorted(t.id for t in plan.shutdown) == ["t1", "t2"]
    assert {t.message for t in plan.shutdown} == {"service removed"}
    assert plan.create == ()


def test_the_finished_tasks_of_a_removed_service_are_forgotten() -> None:
    tasks = [failed("t1", 1, ended_ago=30), task("t2", 2, state=SHUTDOWN, desired=SHUTDOWN)]
    plan = plan_for([], tasks)
    assert sorted(plan.forget) == ["t1", "t2"]
    assert plan.shutdown == ()


def test_a_removed_services_task_still_stopping_is_kept() -> None:
    assert plan_for([], [task("t1", 1, desired=SHUTDOWN)]).empty


def test_removing_a_service_ends_with_no_records_left() -> None:
    tasks = started(apply([], plan_for([service(2)], [])))
    tasks = started(apply(tasks, plan_for([], tasks)))
    assert apply(tasks, plan_for([], tasks)) == []


def test_only_limits_the_plan_to_the_services_named() -> None:
    web, api = service(1, "web-id", "web"), service(1, "api-id", "api")
    plan = plan_for([web, api], [], only={"api-id"})
    assert {t.service_id for t in plan.create} == {"api-id"}


def test_only_leaves_the_tasks_of_other_removed_services_alone() -> None:
    tasks = [task("t1", 1, service_id="gone1"), task("t2", 1, service_id="gone2")]
    plan = plan_for([], tasks, only={"gone2"})
    assert [t.id for t in plan.shutdown] == ["t2"]


def test_only_still_places_around_the_tasks_of_other_services() -> None:
    web, api = service(2, "web-id", "web"), service(1, "api-id", "api")
    others = [task("w1", 1, "a", service_id="web-id"), task("w2", 2, "b", service_id="web-id")]
    (new,) = plan_for([web, api], others, only={"api-id"}).create
    assert new.node_id == "c"


# -------------------------------------------------------------------------- global mode


def global_service(**spec: object) -> Service:
    return service(1, "glob", "agent", mode=Mode.GLOBAL, **spec)


def test_a_global_service_gets_one_task_per_ready_active_node() -> None:
    nodes = [A, B, replace(C, state=NodeState.DOWN), node("d", availability=Availability.DRAIN)]
    plan = plan_for([global_service()], [], nodes)
    assert sorted(t.node_id for t in plan.create) == ["a", "b"]
    assert {(t.slot, t.state) for t in plan.create} == {(0, TaskState.ASSIGNED)}


def test_a_global_service_runs_only_on_nodes_matching_its_constraints() -> None:
    zoned = global_service(constraints=("node.labels.zone==x",))
    nodes = [replace(A, labels={"zone": "x"}), B, replace(C, labels={"zone": "x"})]
    assert sorted(t.node_id for t in plan_for([zoned], [], nodes).create) == ["a", "c"]


def test_a_converged_global_service_plans_nothing() -> None:
    tasks = started(apply([], plan_for([global_service()], [])))
    assert plan_for([global_service()], tasks).empty


def test_a_node_joining_gets_one_task_of_a_global_service() -> None:
    tasks = started(apply([], plan_for([global_service()], [], [A, B])))
    plan = plan_for([global_service()], tasks, [A, B, C])
    assert [(t.node_id, t.slot) for t in plan.create] == [("c", 0)]
    assert plan.shutdown == ()


def test_the_global_task_of_a_drained_node_is_shut_down() -> None:
    tasks = started(apply([], plan_for([global_service()], [])))
    drained = replace(B, availability=Availability.DRAIN)
    plan = plan_for([global_service()], tasks, [A, drained, C])
    assert [t.node_id for t in plan.shutdown] == ["b"]
    assert plan.create == ()


def test_a_failed_global_task_is_replaced_on_the_same_node() -> None:
    current = task("g1", 0, "b", TaskState.FAILED, service_id="glob")
    others = [task("g0", 0, "a", service_id="glob"), task("g2", 0, "c", service_id="glob")]
    plan = plan_for([global_service()], [current, *others])
    assert [t.id for t in plan.shutdown] == ["g1"]
    assert [(t.node_id, t.slot) for t in plan.create] == [("b", 0)]


def test_a_paused_node_keeps_its_global_task() -> None:
    tasks = started(apply([], plan_for([global_service()], [])))
    paused = replace(B, availability=Availability.PAUSE)
    assert plan_for([global_service()], tasks, [A, paused, C]).shutdown == ()


# ------------------------------------------------------------------------ property test

NODE_SHAPES = st.tuples(
    st.sampled_from([NodeState.READY, NodeState.READY, NodeState.DOWN, NodeState.UNKNOWN]),
    st.sampled_from([Availability.ACTIVE, Availability.ACTIVE, Availability.PAUSE]),
)


def converge(spec: Service, tasks: list[Task], nodes: list[Node], ids: Callable[[], str]):
    for _ in range(5):
        plan = reconcile([spec], tasks, nodes, NOW, ids)
        tasks = started(apply(tasks, plan))
        assert_one_task_per_slot(tasks)
        if plan.empty:
            break
    return tasks


def assert_one_task_per_slot(tasks: list[Task]) -> None:
    per_slot = Counter(t.slot for t in desired_running(tasks))
    assert all(count == 1 for count in per_slot.values()), per_slot


@settings(max_examples=150, deadline=None)
@given(
    before=st.integers(0, 8),
    after=st.integers(0, 8),
    shapes=st.lists(NODE_SHAPES, min_size=0, max_size=5),
)
def test_any_cluster_converges_to_one_desired_task_per_slot(
    before: int, after: int, shapes: list[tuple[NodeState, Availability]]
) -> None:
    """Scale `before` -> `after` while nodes go down, pause, or leave (those past `shapes`)."""
    ids = counter()
    first = [node(f"n{i}") for i in range(5)]
    tasks = converge(service(before), [], first, ids)
    nodes = [
        replace(n, state=state, availability=availability)
        for n, (state, availability) in zip(first, shapes, strict=False)
    ]
    tasks = converge(service(after), tasks, nodes, ids)
    assert reconcile([service(after)], tasks, nodes, NOW, ids).empty
    assert slots(desired_running(tasks)) == list(range(1, after + 1))
