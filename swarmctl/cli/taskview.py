"""How tasks are listed by `service ps` and `node ps`: swarm's columns and wording."""

from collections import defaultdict
from collections.abc import Sequence

from swarmctl import clock
from swarmctl.cli.goformat import render_rows
from swarmctl.cli.output import table
from swarmctl.models import Node, PublishMode, Service, Task, TaskState
from swarmctl.spec import ImageRef

COLUMNS = ("ID", "Name", "Image", "Node", "DesiredState", "CurrentState", "Error")


def task_name(task: Task, service: Service | None, node_id_for_global: bool = True) -> str:
    name = service.spec.name if service else task.service_id[:12]
    slot = task.node_id if task.slot == 0 and node_id_for_global else task.slot
    return f"{name}.{slot}"


def ordered(tasks: Sequence[Task]) -> list[tuple[Task, bool]]:
    """Tasks grouped by slot, newest first; (task, is_history) as swarm marks history rows."""
    by_slot: dict[tuple[str, int, str], list[Task]] = defaultdict(list)
    for task in tasks:
        key = (task.service_id, task.slot, task.node_id if task.slot == 0 else "")
        by_slot[key].append(task)
    rows = []
    for key in sorted(by_slot):
        history = sorted(by_slot[key], key=lambda t: t.created_at, reverse=True)
        rows += [(task, index > 0) for index, task in enumerate(history)]
    return rows


def print_tasks(
    tasks: Sequence[Task],
    services: dict[str, Service],
    nodes: dict[str, Node],
    *,
    no_trunc: bool = False,
    quiet: bool = False,
    fmt: str = "table",
) -> None:
    rows = ordered(tasks)
    if quiet:
        for task, _ in rows:
            print(task.id)
        return
    found = [task_row(task, history, services, nodes, no_trunc) for task, history in rows]
    render_rows(
        fmt,
        found,
        lambda: table(
            ("ID", "NAME", "IMAGE", "NODE", "DESIRED STATE", "CURRENT STATE", "ERROR"),
            [[row[key] for key in COLUMNS] for row in found],
        ),
    )


def task_row(
    task: Task,
    history: bool,
    services: dict[str, Service],
    nodes: dict[str, Node],
    no_trunc: bool = False,
) -> dict[str, str]:
    """A `service ps` row keyed as docker's (`--format json`, `{{.CurrentState}}`)."""
    service = services.get(task.service_id)
    node = nodes.get(task.node_id)
    name = task_name(task, service)
    error = task.error if no_trunc or len(task.error) <= 40 else task.error[:39] + "…"
    return {
        "ID": task.id if no_trunc else task.id[:12],
        "Name": (" \\_ " + name) if history else name,
        "Image": ImageRef.parse(task.image or service.spec.image).brief() if service else "",
        "Node": node.hostname if node else "",
        "DesiredState": task.desired_state.value.capitalize(),
        "CurrentState": current_state(task),
        "Error": f'"{error}"' if error else "",
        "Ports": host_ports(service) if service and node else "",
    }


def host_ports(service: Service) -> str:
    """The ports a task publishes on its own node (host mode), as docker lists them."""
    return ", ".join(
        f"*:{p.published}->{p.target}/{p.protocol}"
        for p in service.spec.ports
        if p.mode == PublishMode.HOST and p.published
    )


def current_state(task: Task) -> str:
    """ "Running 5 minutes ago", as swarm words it."""
    since = task.timestamps.get(task.state.value, task.created_at)
    state = "Pending" if task.state == TaskState.NEW else task.state.value.capitalize()
    return f"{state} {clock.ago(since)}"
