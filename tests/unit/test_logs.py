"""`service logs` without hosts: what is read where, prefixes, merging, bad values."""

import io

import pytest

from swarmctl import logs
from swarmctl.commands import docker
from swarmctl.errors import SwarmctlError
from swarmctl.models import Node, Role, Service, ServiceSpec, Task, TaskState
from swarmctl.transport.ssh import Result

T0 = "2026-12-04T15:00:00Z"
WEB = Service("svc1", ServiceSpec(name="web", image="nginx"), T0, T0)
NODES = {
    "n1": Node("n1", "manager1", Role.MANAGER, "10.0.0.1", T0, T0),
    "n2": Node("n2", "w2", Role.WORKER, "10.0.0.2", T0, T0),
}


def task(task_id: str, slot: int, node: str, container: str = "c") -> Task:
    return Task(
        task_id, "svc1", slot, T0, node_id=node, state=TaskState.RUNNING, container_id=container
    )


TASKS = [
    task("bbbbbbbbbbbbbbbbbbbbbbbb2", 2, "n2"),
    task("aaaaaaaaaaaaaaaaaaaaaaaa1", 1, "n1"),
    task("cccccccccccccccccccccccc3", 3, ""),  # not placed: nothing to read
    task("dddddddddddddddddddddddd4", 4, "n1", container=""),  # never started
]


def test_the_docker_command_asks_for_timestamps_to_merge_nodes_by() -> None:
    assert docker.logs("web.1.x", tail="5", since="10m", follow=True) == [
        "docker", "logs", "--timestamps", "--tail", "5", "--since", "10m", "--follow", "web.1.x",
    ]  # fmt: skip
    assert docker.logs("web.1.x") == ["docker", "logs", "--timestamps", "--tail", "all", "web.1.x"]


def test_sources_are_the_placed_started_tasks_prefixed_as_docker() -> None:
    found = logs.sources(WEB, TASKS, NODES, logs.Options())
    assert [(s.host, s.container, s.prefix) for s in found] == [
        ("manager1", "web.1.aaaaaaaaaaaaaaaaaaaaaaaa1", "web.1.aaaaaaaaaaaa@manager1"),
        ("w2", "web.2.bbbbbbbbbbbbbbbbbbbbbbbb2", "web.2.bbbbbbbbbbbb@w2"),
    ]
    assert [s.prefix for s in logs.sources(WEB, TASKS, NODES, logs.Options(task_ids=False))] == [
        "web.1@manager1",
        "web.2@w2",
    ]
    full = logs.sources(WEB, TASKS, NODES, logs.Options(no_trunc=True))
    assert full[0].prefix == "web.1.aaaaaaaaaaaaaaaaaaaaaaaa1@manager1"


def test_a_global_task_is_named_by_its_node() -> None:
    (source,) = logs.sources(WEB, [task("e" * 25, 0, "n2")], NODES, logs.Options())
    assert source.prefix == "web.n2." + "e" * 12 + "@w2"


class FakeConnection:
    def __init__(self, name: str, answers: dict[str, Result]) -> None:
        self.name = name
        self.answers = answers

    def run(self, argv, **_) -> Result:
        return self.answers[argv[-1]]


class FakePool:
    """A pool whose hosts answer from plain data; a host missing from it is unreachable."""

    def __init__(self, answers: dict[str, dict[str, Result]]) -> None:
        self.answers = answers

    def each(self, action, names):
        return {
            name: action(FakeConnection(name, self.answers[name]))
            if name in self.answers
            else SwarmctlError(f"{name}: no route to host")
            for name in names
        }


def ok(host: str, out: str, err: str = "") -> Result:
    return Result(host, "docker logs", 0, out, err, 0.1)


def printed(options: logs.Options, answers) -> tuple[str, str, int]:
    out, err = io.StringIO(), io.StringIO()
    found = logs.sources(WEB, TASKS, NODES, options)
    failed = logs.read(FakePool(answers), found, options, logs.Printer(options, out, err))
    return out.getvalue(), err.getvalue(), failed


ANSWERS = {
    "manager1": {
        "web.1.aaaaaaaaaaaaaaaaaaaaaaaa1": ok(
            "manager1",
            "2026-12-04T15:00:01.000000000Z one\n2026-12-04T15:00:03.000000000Z three\n",
            "2026-12-04T15:00:04.000000000Z oops\n",
        )
    },
    "w2": {"web.2.bbbbbbbbbbbbbbbbbbbbbbbb2": ok("w2", "2026-12-04T15:00:02.000000000Z two\n")},
}


def test_lines_of_every_node_are_merged_in_time_order_and_aligned() -> None:
    out, err, failed = printed(logs.Options(), ANSWERS)
    assert out.splitlines() == [
        "web.1.aaaaaaaaaaaa@manager1    | one",
        "web.2.bbbbbbbbbbbb@w2          | two",
        "web.1.aaaaaaaaaaaa@manager1    | three",
    ]
    assert err == "web.1.aaaaaaaaaaaa@manager1    | oops\n"  # the container's stderr, on stderr
    assert failed == 0


def test_timestamps_lead_and_raw_drops_the_prefix() -> None:
    out, _, _ = printed(logs.Options(timestamps=True, raw=True), ANSWERS)
    assert out.splitlines()[0] == "2026-12-04T15:00:01.000000000Z one"
    out, _, _ = printed(logs.Options(timestamps=True, task_ids=False), ANSWERS)
    assert out.splitlines()[1] == "2026-12-04T15:00:02.000000000Z web.2@w2          | two"


def test_an_unreachable_node_is_named_and_counted_the_others_shown() -> None:
    out, err, failed = printed(logs.Options(), {"manager1": ANSWERS["manager1"]})
    assert "two" not in out and "one" in out
    assert failed == 1
    assert "Warning: logs of 1 task(s) on w2 not read: w2: no route to host" in err


def test_a_container_removed_since_is_skipped_a_docker_error_named() -> None:
    gone = Result("w2", "docker logs", 1, "", "Error response from daemon: No such container", 0)
    _, err, failed = printed(logs.Options(), {**ANSWERS, "w2": {"web.2." + "b" * 24 + "2": gone}})
    assert failed == 0 and not err.replace("web.1.aaaaaaaaaaaa@manager1    | oops\n", "")
    broken = Result("w2", "docker logs", 1, "", "Error response from daemon: disk on fire\n", 0)
    _, err, failed = printed(logs.Options(), {**ANSWERS, "w2": {"web.2." + "b" * 24 + "2": broken}})
    assert failed == 1
    assert "web.2.bbbbbbbbbbbb@w2: cannot read its logs: Error response from daemon: disk" in err


@pytest.mark.parametrize("value", ["all", "0", "25"])
def test_tail_takes_a_count_or_all(value: str) -> None:
    assert logs.check_tail(value) == value


@pytest.mark.parametrize("value", ["-1", "ten", "", "1.5"])
def test_tail_refuses_what_docker_would_quietly_take_as_all(value: str) -> None:
    with pytest.raises(SwarmctlError, match="expected a number of lines or 'all'"):
        logs.check_tail(value)


@pytest.mark.parametrize(
    "value", ["42m", "1h30m", "1.5h", "1733324400", "2026-01-02T13:23:37Z", "2026-01-02"]
)
def test_since_takes_what_docker_logs_takes(value: str) -> None:
    assert logs.check_since(value) == value


@pytest.mark.parametrize("value", ["yesterday", "-5m", "m", "2026-13-45", "5 m"])
def test_since_refuses_the_rest(value: str) -> None:
    with pytest.raises(SwarmctlError, match="--since"):
        logs.check_since(value)


def test_a_line_of_docker_own_is_told_from_a_logged_line() -> None:
    assert logs.split_timestamp("2026-12-04T15:00:01.5Z a b") == ("2026-12-04T15:00:01.5Z", "a b")
    assert logs.split_timestamp("Error response from daemon: No such container") is None
