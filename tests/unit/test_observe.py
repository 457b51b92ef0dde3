"""observe.py without hosts: `docker inspect` lines as text, tasks and containers as data,
a fixed `now` and a frozen clock, so every observed state and timestamp is exact.
"""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from swarmctl import clock
from swarmctl.models import Task, TaskState
from swarmctl.observe import START_GRACE, merge, observed, running_endpoints, unsettled
from swarmctl.runtime.containers import Container, from_api, from_inspect

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
STAMP = "2024-05-01T12:00:00.000+00:00"  # what the frozen clock says
RUNNING, SHUTDOWN, FAILED = TaskState.RUNNING, TaskState.SHUTDOWN, TaskState.FAILED


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock, "now", lambda: STAMP)


def at(seconds_ago: float) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).isoformat(timespec="milliseconds")


def task(
    id: str = "t1",
    state: TaskState = RUNNING,
    desired: TaskState = RUNNING,
    node_id: str = "a",
    ago: float = 600.0,
    **fields: object,
) -> Task:
    """A task created `ago` seconds before NOW that entered `state` 1 s later."""
    fields.setdefault("container_id", f"c-{id}" if state == RUNNING else "")
    return Task(
        id=id,
        service_id="svc",
        slot=1,
        created_at=at(ago),
        node_id=node_id,
        desired_state=desired,
        state=state,
        timestamps={state.value: at(ago - 1)},
        **fields,  # type: ignore[arg-type]
    )


def container(
    task_id: str = "t1",
    status: str = "running",
    exit_code: int = 0,
    oom: bool = False,
    health: str = "",
    id: str | None = None,
    addresses: dict[str, str] | None = None,
) -> Container:
    return Container(
        id=id or f"c-{task_id}",
        task_id=task_id,
        status=status,
        exit_code=exit_code,
        oom=oom,
        error="",
        health=health,
        addresses=addresses or {},
    )


def record(
    *,
    id: str = "abc123",
    labels: dict | None = None,
    state: dict | None = None,
    networks: dict | None = None,
    created: str = "",
) -> dict:
    """A container's full record, as the Engine API and `docker inspect` give it."""
    return {
        "Id": id,
        "Created": created,
        "Config": {"Labels": {"swarmctl.task.id": "t1"} if labels is None else labels},
        "State": {
            "Status": "running",
            "ExitCode": 0,
            "OOMKilled": False,
            "Error": "",
            **(state or {}),
        },
        "NetworkSettings": {"Networks": networks},
    }


# ------------------------------------------------------------------- from_inspect


def test_a_full_record_becomes_a_container() -> None:
    found = record(
        state={"Health": {"Status": "healthy"}},
        networks={
            "web-net": {"IPAddress": "10.0.1.5", "Gateway": "10.0.1.1"},
            "bridge": {"IPAddress": "172.17.0.2"},
        },
    )

    assert from_inspect(found) == Container(
        id="abc123",
        task_id="t1",
        status="running",
        exit_code=0,
        oom=False,
        error="",
        health="healthy",
        addresses={"web-net": "10.0.1.5", "bridge": "172.17.0.2"},
    )


def test_a_full_record_reads_as_the_same_containers_list_entry_with_it() -> None:
    networks = {"web-net": {"IPAddress": "10.0.1.5", "MacAddress": "02:42:0a:00:01:05"}}
    labels = {"swarmctl.task.id": "t1", "swarmctl.service.id": "s1"}
    created, started = "2026-12-05T00:10:00.123456789Z", "2026-12-05T00:10:00.5Z"
    detail = record(
        labels=labels,
        created=created,
        state={"StartedAt": started, "FinishedAt": "0001-01-01T00:00:00Z"},
        networks=networks,
    )
    summary = {
        "Id": "abc123",
        "Labels": labels,
        "State": "running",
        "Status": "Up 1 second",
        "Created": created,
        "NetworkSettings": {"Networks": networks},
    }

    assert from_inspect(detail) == from_api(summary, detail)


def test_an_exited_record_keeps_exit_code_oom_and_error() -> None:
    found = record(
        state={"Status": "exited", "ExitCode": 137, "OOMKilled": True, "Error": "killed"}
    )

    parsed = from_inspect(found)

    assert (parsed.status, parsed.exit_code, parsed.oom, parsed.error) == (
        "exited",
        137,
        True,
        "killed",
    )


@pytest.mark.parametrize("labels", [{}, {"swarmctl.task.id": ""}], ids=["missing", "empty"])
def test_a_container_without_a_task_label_has_an_empty_task_id(labels: dict) -> None:
    assert from_inspect(record(labels=labels)).task_id == ""


def test_a_container_without_labels_at_all_has_an_empty_task_id() -> None:
    found = record()
    found["Config"]["Labels"] = None

    assert from_inspect(found).task_id == ""


def test_networks_without_an_ip_address_are_dropped() -> None:
    found = record(
        networks={
            "web-net": {"IPAddress": "10.0.1.5"},
            "none": {"IPAddress": ""},
            "detached": {},
        }
    )

    assert from_inspect(found).addresses == {"web-net": "10.0.1.5"}


def test_null_networks_give_no_addresses() -> None:
    assert from_inspect(record(networks=None)).addresses == {}


# ------------------------------------------------------------------------ observed


def test_a_running_container_makes_an_assigned_task_running() -> None:
    assigned = task(state=TaskState.ASSIGNED, error="old error", message="scheduled")

    updated = observed(assigned, container(addresses={"web-net": "10.0.1.5"}))

    assert updated.state == RUNNING
    assert updated.timestamps == {"assigned": at(599), "starting": STAMP, "running": STAMP}
    assert updated.container_id == "c-t1"
    assert updated.addresses == {"web-net": "10.0.1.5"}
    assert (updated.message, updated.error, updated.exit_code) == ("started", "", None)


def test_a_running_task_whose_container_still_runs_is_left_exactly_as_it_was() -> None:
    running = task(addresses={"web-net": "10.0.1.5"})

    updated = observed(running, container(addresses={"web-net": "10.0.1.5"}))

    assert updated == running
    assert "starting" not in updated.timestamps


def test_a_running_task_takes_its_containers_new_addresses_without_new_timestamps() -> None:
    running = task(addresses={"web-net": "10.0.1.5"})

    updated = observed(running, container(addresses={"web-net": "10.0.1.9"}))

    assert updated.addresses == {"web-net": "10.0.1.9"}
    assert updated.timestamps == running.timestamps


def test_a_container_that_exited_zero_makes_the_task_complete() -> None:
    updated = observed(task(), container(status="exited", exit_code=0))

    assert updated.state == TaskState.COMPLETE
    assert updated.timestamps["complete"] == STAMP
    assert (updated.message, updated.error, updated.exit_code) == ("finished", "", 0)


def test_a_container_that_exited_non_zero_makes_the_task_failed_with_its_exit_code() -> None:
    updated = observed(task(), container(status="exited", exit_code=137))

    assert updated.state == FAILED
    assert updated.timestamps["failed"] == STAMP
    assert (updated.message, updated.error, updated.exit_code) == (
        "failed",
        "task: non-zero exit (137)",
        137,
    )


def test_an_oom_killed_container_makes_the_task_failed_out_of_memory() -> None:
    updated = observed(task(), container(status="exited", exit_code=137, oom=True))

    assert updated.state == FAILED
    assert updated.error == "task: container was killed: out of memory"


def test_a_running_but_unhealthy_container_makes_the_task_failed() -> None:
    updated = observed(task(), container(status="running", health="unhealthy"))

    assert updated.state == FAILED
    assert updated.error == "task: dockerexec: unhealthy container"
    ended = observed(task(), container(status="exited", exit_code=137, health="unhealthy"))
    assert ended.error == "task: non-zero exit (137): dockerexec: unhealthy container"


def test_a_task_whose_health_check_has_not_passed_yet_is_starting_not_running() -> None:
    """Not counted running, not in the mesh or a VIP, until its check first passes."""
    updated = observed(task(state=TaskState.PREPARING), container(health="starting"))
    assert updated.state == TaskState.STARTING
    assert observed(updated, container(health="starting")) == updated
    assert observed(updated, container(health="healthy")).state == RUNNING


@pytest.mark.parametrize("status", ["created", "restarting", "paused"])
def test_a_created_restarting_or_paused_container_leaves_the_task_state_alone(
    status: str,
) -> None:
    starting = task(state=TaskState.STARTING, container_id="c-t1")

    assert observed(starting, container(status=status)) == starting


def test_a_failed_task_whose_container_runs_healthy_again_stays_failed() -> None:
    failed = task(state=FAILED, container_id="c-t1", error="task: container is unhealthy")

    assert observed(failed, container(health="healthy")).state == FAILED


# --------------------------------------------------------------------------- merge


def test_the_tasks_of_a_node_that_was_not_seen_are_left_alone() -> None:
    on_b = task("t1", node_id="b")

    result = merge([on_b], {"a": []}, NOW)

    assert (result.changed, result.remove, result.start) == ([], {}, [])


def test_a_running_task_on_a_converged_node_changes_nothing() -> None:
    result = merge([task("t1")], {"a": [container("t1")]}, NOW)

    assert (result.changed, result.remove, result.start) == ([], {}, [])


def test_a_running_task_whose_container_is_gone_fails() -> None:
    result = merge([task("t1")], {"a": []}, NOW)

    [failed] = result.changed
    assert failed.state == FAILED
    assert failed.error == "task: container is gone (removed or lost)"
    assert failed.timestamps["failed"] == STAMP


def test_a_task_recorded_running_after_the_look_is_not_failed_for_missing_from_it() -> None:
    # The supervisor listed the node's containers from NOW on; meanwhile a command
    # started the task and recorded it running: the listing came too early to show it.
    started = (NOW + timedelta(seconds=0.3)).isoformat(timespec="milliseconds")
    late = replace(task("t1"), timestamps={"running": started})

    result = merge([late], {"a": []}, NOW)

    assert (result.changed, result.remove, result.start) == ([], {}, [])


def test_a_container_of_an_unknown_task_is_removed_from_its_node() -> None:
    stray = container("ghost", id="c-ghost")

    result = merge([task("t1")], {"a": [container("t1")], "b": [stray]}, NOW)

    assert result.remove == {"b": ["c-ghost"]}


def test_a_container_with_no_task_label_is_removed() -> None:
    result = merge([], {"a": [container("", id="c-unlabelled")]}, NOW)

    assert result.remove == {"a": ["c-unlabelled"]}


def test_the_container_of_a_task_meant_to_shut_down_is_removed_and_the_task_unchanged() -> None:
    stopping = task("t1", desired=SHUTDOWN)

    result = merge([stopping], {"a": [container("t1")]}, NOW)

    assert result.remove == {"a": ["c-t1"]}
    assert result.changed == []


def test_a_task_meant_to_shut_down_without_a_container_is_shut_down() -> None:
    stopping = task("t1", desired=SHUTDOWN)

    [shut] = merge([stopping], {"a": []}, NOW).changed

    assert shut.state == SHUTDOWN
    assert shut.message == "shut down"
    assert shut.timestamps["shutdown"] == STAMP


@pytest.mark.parametrize("state", [FAILED, TaskState.ORPHANED, TaskState.COMPLETE])
def test_a_terminal_task_meant_to_shut_down_without_a_container_keeps_its_state(
    state: TaskState,
) -> None:
    ended = task("t1", state=state, desired=SHUTDOWN)

    changed = {t.id: t for t in merge([ended], {"a": []}, NOW).changed}

    after = changed.get("t1", ended)
    assert after.state.rank >= ended.state.rank
    assert after == ended


def assigned(seconds_ago: float) -> Task:
    """A task of an hour ago, assigned `seconds_ago` seconds before NOW."""
    return replace(
        task("t1", state=TaskState.ASSIGNED, ago=3600), timestamps={"assigned": at(seconds_ago)}
    )


def test_an_assigned_task_without_a_container_within_the_grace_is_left_alone() -> None:
    young = assigned(seconds_ago=START_GRACE - 1)

    result = merge([young], {"a": []}, NOW)

    assert (result.changed, result.start) == ([], [])


def test_an_assigned_task_without_a_container_after_the_grace_is_started() -> None:
    old = assigned(seconds_ago=START_GRACE + 1)

    result = merge([old], {"a": []}, NOW)

    assert result.start == [old]
    assert result.changed == []


def test_the_start_grace_counts_from_the_current_state_not_from_creation() -> None:
    created_long_ago = replace(
        task("t1", state=TaskState.STARTING, ago=3600), timestamps={"starting": at(2)}
    )

    assert merge([created_long_ago], {"a": []}, NOW).start == []


def test_running_endpoints_count_only_running_tasks_meant_to_run() -> None:
    tasks = [
        task("up", addresses={"web-net": "10.0.1.2"}),
        task("leaving", desired=SHUTDOWN, addresses={"web-net": "10.0.1.3"}),
        task("failed", state=FAILED, addresses={"web-net": "10.0.1.4"}),
        task("booting", state=TaskState.STARTING, addresses={"web-net": "10.0.1.5"}),
    ]

    assert running_endpoints(tasks) == {("svc", "web-net", "10.0.1.2", "")}


def test_running_endpoints_hold_every_network_of_a_task() -> None:
    tasks = [task("up", addresses={"web-net": "10.0.1.2", "db-net": "10.0.2.2"})]

    assert running_endpoints(tasks) == {
        ("svc", "web-net", "10.0.1.2", ""),
        ("svc", "db-net", "10.0.2.2", ""),
    }


def test_running_endpoints_change_when_an_address_comes_back_with_another_mac() -> None:
    before = task("old", addresses={"web-net": "10.0.1.2"}, macs={"web-net": "02:42:0a:00:01:02"})
    after = replace(before, id="new", macs={"web-net": "8a:11:22:33:44:55"})

    assert running_endpoints([before]) != running_endpoints([after])


# ------------------------------------------------------------------- properties

NODES = ["a", "b", "c"]
TASK_IDS = [f"t{i}" for i in range(6)]

TASKS = st.lists(
    st.builds(
        lambda id, state, desired, node_id, ago: task(id, state, desired, node_id, ago),
        id=st.sampled_from(TASK_IDS),
        state=st.sampled_from(list(TaskState)),
        desired=st.sampled_from([RUNNING, RUNNING, SHUTDOWN]),
        node_id=st.sampled_from(NODES),
        ago=st.sampled_from([2.0, 600.0]),
    ),
    max_size=6,
    unique_by=lambda t: t.id,
)

CONTAINERS = st.builds(
    lambda task_id, status, exit_code, oom, health, n: container(
        task_id, status, exit_code, oom, health, id=f"c-{task_id}-{n}"
    ),
    task_id=st.sampled_from([*TASK_IDS, "ghost", ""]),
    status=st.sampled_from(["running", "exited", "created", "restarting", "paused", "dead"]),
    exit_code=st.sampled_from([0, 1, 137]),
    oom=st.booleans(),
    health=st.sampled_from(["", "starting", "healthy", "unhealthy"]),
    n=st.integers(0, 3),
)

SEEN = st.dictionaries(st.sampled_from(NODES), st.lists(CONTAINERS, max_size=4), max_size=3)


@settings(max_examples=300, deadline=None)
@given(tasks=TASKS, seen=SEEN)
@example(
    tasks=[task("t0", state=FAILED, container_id="c-t0")],
    seen={"a": [container("t0", status="running")]},
)
def test_merge_never_moves_a_task_state_backwards(
    tasks: list[Task], seen: dict[str, list[Container]]
) -> None:
    before = {t.id: t for t in tasks}

    for changed in merge(tasks, seen, NOW).changed:
        assert changed.state.rank >= before[changed.id].state.rank, (
            f"{changed.id}: {before[changed.id].state} -> {changed.state}"
        )


@settings(max_examples=300, deadline=None)
@given(tasks=TASKS, seen=SEEN)
def test_merge_never_removes_the_container_of_a_task_meant_to_run(
    tasks: list[Task], seen: dict[str, list[Container]]
) -> None:
    meant_to_run = {t.id for t in tasks if t.desired_state == RUNNING}
    containers = {c.id: c for found in seen.values() for c in found}

    removed = merge(tasks, seen, NOW).remove

    for ids in removed.values():
        for container_id in ids:
            assert containers[container_id].task_id not in meant_to_run


# ------------------------------------------------------------------ docker's own times


def test_a_record_carries_dockers_times_in_the_state_files_format() -> None:
    found = record(
        created="2024-05-01T11:59:58.123456789Z",
        state={"StartedAt": "2024-05-01T11:59:59.5Z", "FinishedAt": "0001-01-01T00:00:00Z"},
    )
    parsed = from_inspect(found)
    assert (parsed.created, parsed.started, parsed.finished) == (
        "2024-05-01T11:59:58.123+00:00",
        "2024-05-01T11:59:59.500+00:00",
        "",
    )


def test_the_api_list_gives_the_created_time_and_the_record_the_end() -> None:
    summary = {"Id": "abc", "Created": 1714564798, "State": "exited", "Labels": {}}
    detail = {"State": {"Status": "exited", "ExitCode": 137, "FinishedAt": "2024-05-01T12:00:00Z"}}
    found = from_api(summary, detail)
    assert (found.created, found.finished) == (
        "2024-05-01T11:59:58.000+00:00",
        "2024-05-01T12:00:00.000+00:00",
    )


def test_a_task_seen_running_is_stamped_with_dockers_created_and_started_times() -> None:
    seen = replace(container(), created=at(3), started=at(2))

    updated = observed(task(state=TaskState.ASSIGNED), seen)

    assert (updated.timestamps["starting"], updated.timestamps["running"]) == (at(3), at(2))


def test_a_killed_task_is_failed_at_dockers_finish_time() -> None:
    seen = replace(container(status="exited", exit_code=137), finished=at(1))

    updated = observed(task(state=RUNNING), seen)

    assert (updated.state, updated.timestamps["failed"]) == (FAILED, at(1))


# ------------------------------------------------------- catching up after an interrupt


def test_with_no_grace_an_assigned_task_without_a_container_is_started_at_once() -> None:
    just_now = assigned(seconds_ago=0)

    assert merge([just_now], {"a": []}, NOW, grace=0).start == [just_now]


def test_the_api_list_tells_which_service_a_container_is_of() -> None:
    labels = {"swarmctl.task.id": "t1", "swarmctl.service.id": "svc"}
    summary = {"Id": "abc", "State": "running", "Labels": labels}

    assert (from_api(summary).task_id, from_api(summary).service_id) == ("t1", "svc")


@pytest.mark.parametrize(
    ("state", "desired"),
    [
        (TaskState.ASSIGNED, RUNNING),  # planned, its start never recorded
        (TaskState.PREPARING, RUNNING),
        (TaskState.STARTING, RUNNING),
        (RUNNING, SHUTDOWN),  # its stop never recorded
        (TaskState.ASSIGNED, SHUTDOWN),
    ],
)
def test_a_start_or_stop_never_recorded_is_unsettled(state: TaskState, desired: TaskState) -> None:
    assert unsettled([task(state=RUNNING), task("t2", state=state, desired=desired)])


@pytest.mark.parametrize(
    ("state", "desired"),
    [
        (RUNNING, RUNNING),
        (TaskState.PENDING, RUNNING),  # no node for it: nothing was started
        (FAILED, RUNNING),
        (SHUTDOWN, SHUTDOWN),
        (TaskState.ORPHANED, SHUTDOWN),
        (TaskState.REJECTED, SHUTDOWN),
    ],
)
def test_recorded_outcomes_are_settled(state: TaskState, desired: TaskState) -> None:
    assert not unsettled([task(state=state, desired=desired)])


def test_no_tasks_are_settled() -> None:
    assert not unsettled([])
