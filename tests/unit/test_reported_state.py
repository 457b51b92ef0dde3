"""What `service ls` and a command's convergence report count as running (pure)."""

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
from swarmctl.services import unreachable_warning

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
