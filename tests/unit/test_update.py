"""The update planner without hosts, alone and driving the reconciler: batches, monitor
windows, failure ratio, and the properties a rolling update (and a drain, which moves a
node's tasks with the same planner) must keep whatever happens to its new tasks
(hypothesis plays the nodes)."""

from dataclasses import replace
from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from swarmctl.models import (
    Availability,
    FailureAction,
    Mode,
    MountSpec,
    NodeState,
    RestartCondition,
    RestartPolicy,
    Task,
    TaskState,
    UpdateOrder,
    UpdatePolicy,
)
from swarmctl.reconciler import reconcile
from swarmctl.update import AWAY_GRACE, Outcome, drain_step, step
from tests.unit.test_reconciler import (
    NOW,
    RUNNING,
    SHUTDOWN,
    A,
    B,
    C,
    apply,
    at,
    counter,
    service,
    task,
)

SINCE = NOW - timedelta(seconds=60)
START_TIMEOUT = 30.0
NODES = [A, B, C]


def new(id: str, slot: int, state: TaskState = RUNNING, ago: float = 30.0, **fields) -> Task:
    """A task of this update (version 2), made `ago` seconds before NOW."""
    return task(id, slot, state=state, ago=ago, spec_version=2, **fields)


def old(id: str, slot: int, **fields) -> Task:
    return task(id, slot, ago=3600, **fields)


def slots_of(tasks: list[Task], replicas: int) -> dict[int, list[Task]]:
    return {s: [t for t in tasks if t.slot == s] for s in range(1, replicas + 1)}


def plan_step(tasks: list[Task], policy: UpdatePolicy, replicas: int = 3, now: datetime = NOW):
    return step(slots_of(tasks, replicas), 2, SINCE, policy, now, START_TIMEOUT)


def test_the_first_batch_is_parallelism_slots_in_slot_order() -> None:
    tasks = [old("o1", 1), old("o2", 2), old("o3", 3)]
    assert plan_step(tasks, UpdatePolicy()).renew == (1,)
    assert plan_step(tasks, UpdatePolicy(parallelism=2)).renew == (1, 2)
    assert plan_step(tasks, UpdatePolicy(parallelism=0)).renew == (1, 2, 3)


def test_a_slot_in_flight_holds_its_place_until_its_new_task_runs() -> None:
    renewed = old("o1", 1, desired=SHUTDOWN, state=SHUTDOWN)
    tasks = [renewed, new("n1", 1, TaskState.STARTING), old("o2", 2), old("o3", 3)]
    assert plan_step(tasks, UpdatePolicy()).renew == ()
    tasks[1] = new("n1", 1)
    assert plan_step(tasks, UpdatePolicy()).renew == (2,)


def test_delay_waits_after_the_last_new_task_ran() -> None:
    tasks = [old("o1", 1, desired=SHUTDOWN), new("n1", 1, ago=3), old("o2", 2), old("o3", 3)]
    waiting = plan_step(tasks, UpdatePolicy(delay=10, monitor=0))
    assert waiting.renew == () and waiting.wake_at == NOW + timedelta(seconds=8)
    assert plan_step(tasks, UpdatePolicy(delay=1)).renew == (2,)


def test_a_new_task_that_fails_within_monitor_fires_the_failure_action() -> None:
    broken = new("n1", 1, TaskState.REJECTED, desired=SHUTDOWN, error="No such image: nope")
    tasks = [old("o1", 1, desired=SHUTDOWN), broken, old("o2", 2), old("o3", 3)]
    result = plan_step(tasks, UpdatePolicy())
    assert result.outcome == Outcome.FAILED and result.renew == ()
    assert [(f.task.id, f.reason) for f in result.failures] == [
        ("n1", "rejected: No such image: nope")
    ]


def test_a_task_that_failed_after_its_monitor_window_is_not_the_updates_failure() -> None:
    late = new("n1", 1, TaskState.FAILED, ago=30, desired=SHUTDOWN)
    late = replace(late, timestamps={"running": at(29), "failed": at(10)})
    tasks = [late, new("n1b", 1, ago=9), old("o2", 2), old("o3", 3)]
    assert plan_step(tasks, UpdatePolicy(monitor=5)).outcome is None


def test_a_new_task_lost_with_its_node_is_no_failure_and_its_slot_stays_in_flight() -> None:
    orphaned = new("n1", 1, TaskState.ORPHANED, desired=SHUTDOWN, ago=3, message="node is down")
    unreachable = new(
        "n1", 1, TaskState.REJECTED, error="node unreachable: worker2: connection timed out"
    )
    for lost in (orphaned, unreachable):
        tasks = [old("o1", 1, desired=SHUTDOWN), lost, old("o2", 2), old("o3", 3)]
        result = plan_step(tasks, UpdatePolicy(max_failure_ratio=0))
        assert (result.outcome, result.failures) == (None, ())
        assert result.in_flight == (1,) and result.renew == ()
        ended = replace(lost, desired_state=SHUTDOWN)  # as the reconciler ends it
        again = [*tasks[:1], ended, *tasks[2:], new("n1b", 1, node_id="b", ago=1)]
        assert plan_step(again, UpdatePolicy(monitor=0, parallelism=1)).renew == (2,)


def test_a_new_task_running_on_a_node_not_seen_ready_is_not_done_yet() -> None:
    tasks = [new("n1", 1, node_id="b"), new("n2", 2), new("n3", 3)]
    policy = UpdatePolicy(monitor=0)
    assert plan_step(tasks, policy).outcome == Outcome.COMPLETED
    away = step(slots_of(tasks, 3), 2, SINCE, policy, NOW, START_TIMEOUT, away={"b"})
    assert (away.outcome, away.in_flight, away.failures) == (None, (1,), ())
    assert away.wake_at is not None  # looked at again, not waited on for ever
    later = NOW + timedelta(seconds=START_TIMEOUT + AWAY_GRACE + 60)
    gone = step(slots_of(tasks, 3), 2, SINCE, policy, later, START_TIMEOUT, away={"b"})
    assert gone.outcome == Outcome.COMPLETED  # nobody declared the node lost: it counts


def test_a_task_not_healthy_within_the_start_timeout_is_a_failure() -> None:
    tasks = [new("n1", 1, TaskState.STARTING, ago=31), old("o2", 2), old("o3", 3)]
    (failure,) = plan_step(tasks, UpdatePolicy()).failures
    assert "not running (healthy) within 30s" in failure.reason


def test_failures_up_to_the_ratio_and_with_continue_let_the_update_go_on() -> None:
    broken = new("n1", 1, TaskState.FAILED, desired=SHUTDOWN)
    tasks = [broken, old("o2", 2), old("o3", 3)]
    assert plan_step(tasks, UpdatePolicy(max_failure_ratio=0.34)).renew == (2,)
    assert plan_step(tasks, UpdatePolicy(max_failure_ratio=0.3)).outcome == Outcome.FAILED
    go_on = UpdatePolicy(failure_action=FailureAction.CONTINUE)
    assert plan_step(tasks, go_on).renew == (2,)


def test_the_update_completes_once_every_new_task_ran_for_its_monitor_window() -> None:
    tasks = [new("n1", 1, ago=30), new("n2", 2, ago=20), new("n3", 3, ago=4)]
    waiting = plan_step(tasks, UpdatePolicy(monitor=5))
    assert waiting.outcome is None and waiting.wake_at == NOW + timedelta(seconds=2)
    assert plan_step(tasks, UpdatePolicy(monitor=2)).outcome == Outcome.COMPLETED


def test_tasks_of_an_earlier_update_to_the_same_version_are_outdated_again() -> None:
    """--force: the version is new, and so must be every slot's task."""
    tasks = [new("n1", 1, ago=3600), new("n2", 2, ago=3600), new("n3", 3, ago=3600)]
    result = step(slots_of(tasks, 3), 3, SINCE, UpdatePolicy(), NOW, START_TIMEOUT)
    assert result.renew == (1,) and result.outdated == (2, 3)


# ----------------------------------------------------- the planner driving the reconciler


def test_stop_first_renewal_ends_the_old_task_and_places_a_new_one() -> None:
    svc = replace(service(3), version=2)
    tasks = [old("o1", 1), old("o2", 2), old("o3", 3)]
    plan = reconcile([svc], tasks, NODES, NOW, counter(), renew={"svc": (1,)})
    assert [(t.id, t.desired_state, t.message) for t in plan.shutdown] == [
        ("o1", SHUTDOWN, "updated")
    ]
    ((created),) = plan.create
    assert created.slot == 1 and created.spec_version == 2


def test_start_first_keeps_the_old_task_until_the_new_one_runs_or_fails() -> None:
    svc = replace(service(1, update=UpdatePolicy(order=UpdateOrder.START_FIRST)), version=2)
    plan = reconcile([svc], [old("o1", 1)], NODES, NOW, counter(), renew={"svc": (1,)})
    assert plan.shutdown == () and len(plan.create) == 1
    starting = replace(plan.create[0], state=TaskState.STARTING)
    assert reconcile([svc], [old("o1", 1), starting], NODES, NOW, counter()).empty
    up = replace(starting, state=RUNNING)
    plan = reconcile([svc], [old("o1", 1), up], NODES, NOW, counter())
    assert [t.id for t in plan.shutdown] == ["o1"] and plan.create == ()
    down = replace(starting, state=TaskState.FAILED)
    plan = reconcile([svc], [old("o1", 1), down], NODES, NOW, counter())
    assert [t.id for t in plan.shutdown] == [down.id] and plan.create == ()


def test_a_new_task_its_node_could_not_be_reached_for_is_replaced_at_once_elsewhere() -> None:
    never = RestartPolicy(condition=RestartCondition.NONE)
    svc = replace(service(1, restart=never), version=2)
    lost = new("n1", 1, TaskState.REJECTED, error="node unreachable: a: connection refused")
    down = replace(A, state=NodeState.DOWN)
    plan = reconcile([svc], [old("o1", 1, desired=SHUTDOWN), lost], [down, B], NOW, counter())
    assert [(t.id, t.desired_state) for t in plan.shutdown] == [("n1", SHUTDOWN)]
    ((created),) = plan.create
    assert (created.slot, created.node_id, created.spec_version) == (1, "b", 2)


# ---------------------------------------------------------------------------- properties


def _simulate(replicas, policy, outcomes, fail_allowed):
    """Run an update from version 1 to 2 with the nodes deciding each new task's fate from
    `outcomes`; check the invariants after every plan. Returns the final outcome."""
    svc = replace(service(replicas, update=policy), version=2)
    tasks: list[Task] = [old(f"o{s}", s) for s in range(1, replicas + 1)]
    ids = counter()
    fates = iter(outcomes)
    width = policy.parallelism or replicas
    for second in range(200):
        now = NOW + timedelta(seconds=second)
        slots = {s: [t for t in tasks if t.slot == s] for s in range(1, replicas + 1)}
        decided = step(slots, 2, SINCE, policy, now, START_TIMEOUT)
        if decided.outcome:
            return decided.outcome, tasks
        tasks = apply(tasks, reconcile([svc], tasks, NODES, now, ids, renew={"svc": decided.renew}))
        serving = {t.slot for t in tasks if t.desired_state == RUNNING and t.state == RUNNING}
        in_flight = {
            t.slot
            for t in tasks
            if t.spec_version == 2
            and t.desired_state == RUNNING
            and t.state != RUNNING
            and not t.state.terminal
        }
        assert len(in_flight) <= width
        if policy.order == UpdateOrder.START_FIRST:
            assert len(serving) >= replicas
        else:
            assert len(serving) >= replicas - width
        stamp = now.isoformat(timespec="milliseconds")
        moved = []
        for t in tasks:
            if t.desired_state == SHUTDOWN and not t.state.terminal:
                t = replace(t, state=SHUTDOWN, timestamps={**t.timestamps, "shutdown": stamp})
            elif t.desired_state == RUNNING and t.state == TaskState.ASSIGNED:
                fate = next(fates, "run") if fail_allowed else "run"
                state = TaskState.FAILED if fate == "fail" else RUNNING
                t = replace(t, state=state, timestamps={**t.timestamps, state.value: stamp})
            moved.append(t)
        tasks = moved
    raise AssertionError("the update neither completed nor stopped")


policies = st.builds(
    UpdatePolicy,
    parallelism=st.integers(0, 4),
    delay=st.sampled_from([0.0, 2.0]),
    monitor=st.sampled_from([0.0, 3.0]),
    order=st.sampled_from(list(UpdateOrder)),
    failure_action=st.sampled_from([FailureAction.PAUSE, FailureAction.ROLLBACK]),
)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 6), policies, st.lists(st.sampled_from(["run", "fail"]), max_size=12))
def test_an_update_keeps_within_parallelism_and_keeps_tasks_serving(
    replicas: int, policy: UpdatePolicy, outcomes: list[str]
) -> None:
    outcome, tasks = _simulate(replicas, policy, outcomes, fail_allowed=True)
    if outcome == Outcome.COMPLETED:
        current = [t for t in tasks if t.desired_state == RUNNING]
        assert sorted(t.slot for t in current) == list(range(1, replicas + 1))
        assert all(t.spec_version == 2 and t.state == RUNNING for t in current)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), policies)
def test_an_update_whose_tasks_all_run_completes_on_the_new_spec(
    replicas: int, policy: UpdatePolicy
) -> None:
    outcome, _ = _simulate(replicas, policy, [], fail_allowed=False)
    assert outcome == Outcome.COMPLETED


def test_a_global_services_slot_is_its_node_and_is_renewed_there() -> None:
    svc = replace(service(0, mode=Mode.GLOBAL), version=2)
    tasks = [old("oa", 0, node_id="a"), old("ob", 0, node_id="b"), old("oc", 0, node_id="c")]
    slots = {key: [t for t in tasks if t.node_id == key] for key in ("a", "b", "c")}
    decided = step(slots, 2, SINCE, UpdatePolicy(), NOW, START_TIMEOUT)
    assert decided.renew == ("a",)
    plan = reconcile([svc], tasks, NODES, NOW, counter(), renew={"svc": decided.renew})
    assert [t.id for t in plan.shutdown] == ["oa"]
    assert [(t.node_id, t.spec_version) for t in plan.create] == [("a", 2)]


# ----------------------------------------------------------------------------- drains

DRAINED = replace(A, availability=Availability.DRAIN)
START_FIRST = UpdatePolicy(order=UpdateOrder.START_FIRST)


def drain_of(tasks: list[Task], policy: UpdatePolicy, replicas: int = 3, now: datetime = NOW):
    return drain_step(slots_of(tasks, replicas), {"a"}, policy, now, START_TIMEOUT)


def test_a_drain_moves_parallelism_slots_of_the_drained_node_at_a_time() -> None:
    tasks = [task("t1", 1, "a"), task("t2", 2, "b"), task("t3", 3, "a"), task("t4", 4, "a")]
    assert drain_of(tasks, UpdatePolicy(), 4).renew == (1,)
    assert drain_of(tasks, UpdatePolicy(parallelism=2), 4).renew == (1, 3)
    assert drain_of(tasks, UpdatePolicy(parallelism=0), 4).renew == (1, 3, 4)


def test_a_moved_slot_holds_its_place_until_its_task_runs_elsewhere_then_delay() -> None:
    gone = task("t1", 1, "a", SHUTDOWN, desired=SHUTDOWN, ago=600)
    moving = task("n1", 1, "b", TaskState.STARTING, ago=5)
    tasks = [gone, moving, task("t2", 2, "a"), task("t3", 3, "a")]
    assert drain_of(tasks, UpdatePolicy()).renew == ()
    assert drain_of(tasks, UpdatePolicy()).in_flight == (1,)
    tasks[1] = task("n1", 1, "b", ago=5)  # running since 4 s
    assert drain_of(tasks, UpdatePolicy()).renew == (2,)
    waiting = drain_of(tasks, UpdatePolicy(delay=10, monitor=0))
    assert waiting.renew == () and waiting.wake_at == NOW + timedelta(seconds=6)


def test_a_drain_with_nothing_left_on_the_node_completes() -> None:
    gone = task("t1", 1, "a", SHUTDOWN, desired=SHUTDOWN, ago=600)
    moved = drain_of([gone, task("n1", 1, "b", ago=60)], UpdatePolicy(), replicas=1)
    assert moved.outcome == Outcome.COMPLETED and moved.renew == moved.in_flight == ()


def test_a_failed_move_does_not_pause_the_drain_of_the_other_slots() -> None:
    old1 = task("t1", 1, "a")  # start-first: it stays while its new task failed
    broken = task("n1", 1, "b", TaskState.FAILED, desired=SHUTDOWN, ago=5)
    decided = drain_of([old1, broken, task("t2", 2, "a")], START_FIRST, replicas=2)
    assert decided.outcome is None and decided.renew == (2,)
    assert [f.task.id for f in decided.failures] == ["n1"]


def test_a_task_moved_once_is_moved_again_when_its_new_node_is_drained() -> None:
    gone = task("t1", 1, "b", SHUTDOWN, desired=SHUTDOWN, ago=600)
    moved = task("n1", 1, "a", ago=60)  # a is drained now
    assert drain_of([gone, moved], UpdatePolicy(), replicas=1).renew == (1,)


def test_a_task_on_a_drained_node_is_stopped_first_when_its_slot_is_named() -> None:
    plan = reconcile(
        [service(1)], [task("t1", 1, "a")], [DRAINED, B], NOW, counter(), renew={"svc": (1,)}
    )
    assert [(t.id, t.message) for t in plan.shutdown] == [("t1", "drained")]
    assert [t.node_id for t in plan.create] == ["b"]


def test_start_first_keeps_the_drained_task_until_its_replacement_runs() -> None:
    svc = service(1, update=START_FIRST)
    old1 = task("t1", 1, "a")
    plan = reconcile([svc], [old1], [DRAINED, B], NOW, counter(), renew={"svc": (1,)})
    assert plan.shutdown == ()
    ((new1),) = plan.create
    assert new1.node_id == "b"
    assert reconcile(
        [svc], [old1, replace(new1, state=TaskState.STARTING)], [DRAINED, B], NOW, counter()
    ).empty
    up = reconcile([svc], [old1, replace(new1, state=RUNNING)], [DRAINED, B], NOW, counter())
    assert [(t.id, t.message) for t in up.shutdown] == [("t1", "drained")]


def test_a_task_pinned_by_a_local_volume_is_stopped_first_even_with_start_first() -> None:
    volume = MountSpec("volume", "db_data", "/data")
    svc = service(1, update=START_FIRST, mounts=(volume,))
    plan = reconcile([svc], [task("t1", 1, "a")], [DRAINED, B], NOW, counter(), renew={"svc": (1,)})
    assert [t.id for t in plan.shutdown] == ["t1"]
    assert [(t.state, t.message) for t in plan.create] == [
        (TaskState.PENDING, "pinned to a by volume db_data")
    ]


def _simulate_drain(homes: list[str], policy: UpdatePolicy) -> list[Task]:
    """Drain node a of a service whose slot i runs on homes[i], every new task running a
    second after it is placed; check the invariants after every plan. Returns the tasks."""
    replicas = len(homes)
    svc = service(replicas, update=policy)
    nodes = [DRAINED, B, C]
    tasks: list[Task] = [task(f"t{s}", s, home) for s, home in enumerate(homes, start=1)]
    ids = counter()
    width = policy.parallelism or replicas
    for second in range(200):
        now = NOW + timedelta(seconds=second)
        decided = drain_step(slots_of(tasks, replicas), {"a"}, policy, now, START_TIMEOUT)
        assert decided.outcome != Outcome.FAILED
        if decided.outcome == Outcome.COMPLETED:
            return tasks
        plan = reconcile([svc], tasks, nodes, now, ids, renew={"svc": decided.renew})
        tasks = apply(tasks, plan)
        serving = {t.slot for t in tasks if t.desired_state == RUNNING and t.state == RUNNING}
        moving = {t.slot for t in tasks if t.desired_state == RUNNING and t.state != RUNNING}
        assert len(moving) <= width
        if policy.order == UpdateOrder.START_FIRST:
            assert len(serving) == replicas
        else:
            assert len(serving) >= replicas - width
        stamp = now.isoformat(timespec="milliseconds")
        tasks = [
            replace(t, state=SHUTDOWN, timestamps={**t.timestamps, "shutdown": stamp})
            if t.desired_state == SHUTDOWN and not t.state.terminal
            else replace(t, state=RUNNING, timestamps={**t.timestamps, "running": stamp})
            if t.desired_state == RUNNING and t.state == TaskState.ASSIGNED
            else t
            for t in tasks
        ]
    raise AssertionError("the drain never completed")


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from("abc"), min_size=1, max_size=6), policies)
def test_a_drain_keeps_the_update_policy_and_empties_the_node(
    homes: list[str], policy: UpdatePolicy
) -> None:
    """Start-first never has fewer than `replicas` tasks running, stop-first never fewer
    than replicas - parallelism; at the end every slot runs, none on the drained node."""
    tasks = _simulate_drain(homes, policy)
    current = [t for t in tasks if t.desired_state == RUNNING]
    assert sorted(t.slot for t in current) == list(range(1, len(homes) + 1))
    assert all(t.state == RUNNING and t.node_id != "a" for t in current)
