"""How `service update` and `rollback` show a roll, as `docker service update` does.

On a terminal: "overall progress: N out of M tasks" and one bar per slot, redrawn in
place (rich Live). Elsewhere (a pipe, a log): one line per slot whose new task starts
running or fails, not one per transition, so a big service's roll stays readable.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

import typer

from swarmctl.models import Mode, Service, Task, TaskState

SHOWN = (TaskState.RUNNING, TaskState.FAILED, TaskState.REJECTED)  # worth a line
BAR = 50

# rich (~16 ms) is imported by the terminal's view alone: `service create` prints its
# plain lines from the threads starting tasks, before their first docker call.
if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text


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
        self.waiting: dict = {}  # slot -> its running task the roll still waits on
        self.lock = threading.Lock()
        self.live = None
        if console:
            from rich.live import Live

            self.live = Live(self._render(), console=console, auto_refresh=False)
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

    def waited_on(self, slots: Collection) -> None:
        """rolling.Waiting: the slots in flight as the roll's round began. Only a task
        running by then is held back: one that starts running in the round is done."""
        with self.lock:
            running = {k: self.latest.get(k) for k in slots}
            self.waiting = {
                k: t.id for k, t in running.items() if t and t.state == TaskState.RUNNING
            }
            if self.live:
                self.live.update(self._render(), refresh=True)

    def close(self) -> None:
        if self.live:
            self.live.stop()

    def _shown(self, key) -> Task | None:
        """The slot's newest task as the roll sees it: one recorded as running that the
        roll still waits on (its node not seen ready) is not done, and shows as starting,
        as swarm shows a task not yet running."""
        task = self.latest.get(key)
        if task is None or task.state != TaskState.RUNNING or self.waiting.get(key) != task.id:
            return task
        return replace(task, state=TaskState.STARTING)

    @property
    def done(self) -> int:
        shown = (self._shown(key) for key in self.latest)
        return sum(1 for t in shown if t is not None and t.state == TaskState.RUNNING)

    def _render(self) -> Text:
        from rich.text import Text

        total = len(self.slots)
        lines = [f"overall progress: {self.done} out of {total} tasks"]
        for i, key in enumerate(self.slots, 1):
            task = self._shown(key)
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
