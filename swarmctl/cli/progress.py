"""How `service update` and `rollback` show a roll, as `docker service update` does.

On a terminal: "overall progress: N out of M tasks" and one bar per slot, redrawn in
place (rich Live). Elsewhere (a pipe, a log): one line per slot whose new task starts
running or fails, not one per transition, so a big service's roll stays readable.
"""

import threading
from collections.abc import Iterable

import typer
from rich.console import Console
from rich.live import Live
from rich.text import Text

from swarmctl.models import Mode, Service, Task, TaskState

SHOWN = (TaskState.RUNNING, TaskState.FAILED, TaskState.REJECTED)  # worth a line
BAR = 50


class RollProgress:
    """A progress callback for rolling.roll: it hears of every task that changes."""

    def __init__(self, service: Service, tasks: Iterable[Task], console: Console | None) -> None:
        status = service.update_status
        self.version = status.spec_version if status else service.version
        current = {t.slot_key for t in tasks if t.desired_state == TaskState.RUNNING}
        replicated = service.spec.mode == Mode.REPLICATED
        self.slots: list = list(range(1, service.spec.replicas + 1)) if replicated else []
        self.slots += sorted(current - set(self.slots), key=str)
        self.latest: dict = {}  # slot -> its newest task of this roll
        self.lock = threading.Lock()
        self.live = Live(self._render(), console=console, auto_refresh=False) if console else None
        if self.live:
            self.live.start()

    def __call__(self, task: Task) -> None:
        if task.spec_version < self.version:
            return  # an old task going away: the slot's line is about its new task
        key = task.slot_key
        with self.lock:
            before = self.latest.get(key)
            if before is not None and before.created_at > task.created_at:
                return  # news of a task the slot has already replaced
            news = before is None or (before.id, before.state) != (task.id, task.state)
            self.latest[key] = task
            if key not in self.slots:
                self.slots.append(key)
            if self.live:
                self.live.update(self._render(), refresh=True)
            elif news and task.state in SHOWN:
                typer.echo(plain_line(task))

    def close(self) -> None:
        if self.live:
            self.live.stop()

    @property
    def done(self) -> int:
        return sum(1 for t in self.latest.values() if t.state == TaskState.RUNNING)

    def _render(self) -> Text:
        total = len(self.slots)
        lines = [f"overall progress: {self.done} out of {total} tasks"]
        for i, key in enumerate(self.slots, 1):
            task = self.latest.get(key)
            label = f"{i}/{total}" if isinstance(key, int) else str(key)[:12]
            lines.append(f"{label}: {_bar(task)}")
        return Text("\n".join(lines))


def _bar(task: Task | None) -> str:
    if task is None:
        return ""
    if task.state.terminal:
        return f"{task.state.value}: {task.error}" if task.error else task.state.value
    filled = BAR * task.state.rank // TaskState.RUNNING.rank
    arrow = "=" * filled + (">" if filled else "")
    return f"{task.state.value:<9} [{arrow:<{BAR + 1}}]"


def plain_line(task: Task) -> str:
    slot = task.slot or task.node_id[:12]
    text = task.state.value
    if task.error:
        text += f": {task.error}"
    return f"{slot}: {text}"
