"""What `service ls` and a command's convergence report count as running (pure)."""

from swarmctl.convergence import problems, unreachable_warning
from swarmctl.models import (
    Node,
    NodeState,
    Role,
    Service,
    ServiceSpec,
    Task,
    TaskState,
    ready_node_ids,
    replicas,
)
from swarmctl.reconciler import Plan

WEB = Service("svc", ServiceSpec("web", "nginx", replicas=3), "", "")


def node(id: str, state: NodeState) -> Node:
    return Node(id, id, Role.WORKER, "192.0.2.1", "", "", state=state)


def running_on(slot: int, node_id: str) -> Task:
    return Task(f"t{slot}", "svc", slot, "", node_id=node_id, state=TaskState.RUNNING)


TASKS = [running_on(1, "a"), running_on(2, "b"), running_on(3, "c")]


def test_every_task_counts_when_every_node_is_ready() -> None:
    nodes = [node(n, NodeState.READY) for n in "abc"]
    assert replicas(WEB, TASKS, ready_node_ids(nodes)) == (3, 3)


def test_a_task_on_a_node_down_or_unknown_is_not_counted_as_running() -> None:
    nodes = [node("a", NodeState.READY), node("b", NodeState.DOWN), node("c", NodeState.UNKNOWN)]
    assert replicas(WEB, TASKS, ready_node_ids(nodes)) == (1, 3)


def test_an_unreachable_node_is_told_apart_by_what_the_plan_had_for_it() -> None:
    start = running_on(1, "a")
    stop = running_on(2, "b")
    plan = Plan(create=(start,), shutdown=(stop,))
    assert unreachable_warning(plan, "a", "a: down") == "a: down: its new tasks go elsewhere"
    assert unreachable_warning(plan, "b", "b: down") == (
        "b: down: its containers to stop are removed when it is back"
    )


def test_a_current_task_that_ended_is_named_with_its_state() -> None:
    # An image whose command exits 0 leaves a task complete: the report names that state
    # instead of a bare "tasks are not running".
    nodes = [node(n, NodeState.READY) for n in "abc"]
    done = Task("t3", "svc", 3, "", node_id="c", state=TaskState.COMPLETE)
    assert problems(WEB, [*TASKS[:2], done], nodes, short=True) == ["web.3 on c: complete"]


def test_a_task_on_a_node_down_is_reported_and_a_healthy_service_has_no_problem() -> None:
    nodes = [node("a", NodeState.READY), node("b", NodeState.READY), node("c", NodeState.DOWN)]
    assert problems(WEB, TASKS, nodes, short=True) == [
        "web.3 on c: running when last seen, node down"
    ]
    assert problems(WEB, TASKS, [node(n, NodeState.READY) for n in "abc"], short=False) == []


def test_a_slot_is_reported_once_by_its_latest_task() -> None:
    # Three rejected starts of one slot (restarts) make one line, the latest; a slot whose
    # newest task runs reports nothing of the ones before it.
    nodes = [node(n, NodeState.READY) for n in "abc"]

    def rejected(id: str, slot: int, at: str, why: str) -> Task:
        return Task(id, "svc", slot, at, node_id="a", state=TaskState.REJECTED, error=why)

    tasks = [
        rejected("r1", 1, "2026-12-04T12:00:01", "no such image (1)"),
        rejected("r2", 1, "2026-12-04T12:00:02", "no such image (2)"),
        rejected("r3", 2, "2026-12-04T12:00:01", "node unreachable"),
        Task("t2", "svc", 2, "2026-12-04T12:00:02", node_id="b", state=TaskState.RUNNING),
    ]
    assert problems(WEB, tasks, nodes, short=True) == ["web.1 on a: rejected: no such image (2)"]
