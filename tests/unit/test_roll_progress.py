"""`service update`/`rollback` progress: swarm's bars on a terminal, a line per slot that
runs or fails elsewhere (not one per transition)."""

import io
import subprocess
import sys
from dataclasses import replace

import pytest
from rich.console import Console

from swarmctl.cli.progress import RollProgress
from swarmctl.models import Service, ServiceSpec, Task, TaskState, UpdateState, UpdateStatus

WEB = Service(
    "svc",
    ServiceSpec("web", "nginx", replicas=3),
    "",
    "",
    version=2,
    update_status=UpdateStatus(UpdateState.UPDATING, "", spec_version=2),
)
OLD = [Task(f"old{s}", "svc", s, f"2026-12-05T00:00:0{s}", spec_version=1) for s in (1, 2, 3)]


def roll(progress: RollProgress) -> None:
    """Each slot's old task stops and its new task goes through every state; slot 2's
    first new task is rejected and a second one takes its place."""
    for slot in (1, 2, 3):
        progress(replace(OLD[slot - 1], state=TaskState.SHUTDOWN))
        new = Task(f"new{slot}", "svc", slot, f"2026-12-05T01:00:0{slot}", spec_version=2)
        if slot == 2:
            progress(replace(new, state=TaskState.REJECTED, error="No such image: nope"))
            new = replace(new, id="new2b", created_at="2026-12-05T01:00:05")
        for state in (TaskState.ASSIGNED, TaskState.PREPARING, TaskState.STARTING):
            progress(replace(new, state=state))
        progress(replace(new, state=TaskState.RUNNING))
        progress(replace(new, state=TaskState.RUNNING))  # seen again: nothing new


def test_off_a_terminal_one_line_per_slot_that_runs_or_fails(
    capsys: pytest.CaptureFixture,
) -> None:
    progress = RollProgress(WEB, OLD, None)
    roll(progress)
    progress.close()
    assert capsys.readouterr().out.splitlines() == [
        "1: running",
        "2: rejected: No such image: nope",
        "2: running",
        "3: running",
    ]


def test_on_a_terminal_overall_progress_and_a_bar_per_slot_redrawn_in_place() -> None:
    out = io.StringIO()
    progress = RollProgress(WEB, OLD, Console(file=out, force_terminal=True, width=120))
    assert progress.done == 0
    roll(progress)
    progress.close()
    assert progress.done == 3
    text = out.getvalue()
    last = text[text.rindex("overall progress") :]
    lines = [line.rstrip() for line in last.splitlines()]
    assert lines[0] == "overall progress: 3 out of 3 tasks"
    assert [line.split("[")[0].rstrip() for line in lines[1:4]] == [
        "1/3: running",
        "2/3: running",
        "3/3: running",
    ]
    assert lines[1].endswith("[" + "=" * 50 + ">]")
    assert "1: running" not in text  # no line per transition


def test_a_running_task_the_roll_still_waits_on_is_not_done() -> None:
    # Slot 2's new task runs on a node not seen ready since: the roll waits on it.
    out = io.StringIO()
    progress = RollProgress(WEB, OLD, Console(file=out, force_terminal=True, width=120))
    roll(progress)
    progress.waited_on({2})
    assert progress.done == 2
    text = out.getvalue()
    lines = [line.rstrip() for line in text[text.rindex("overall progress") :].splitlines()]
    assert lines[0] == "overall progress: 2 out of 3 tasks"
    assert lines[2].split("[")[0].rstrip() == "2/3: starting"
    assert not lines[2].endswith("=>]")
    progress.waited_on(())  # its node answers again
    assert progress.done == 3
    # A task that starts running in the round after the roll named its slot is done.
    later = Task("new3c", "svc", 3, "2026-12-05T01:00:09", spec_version=2)
    progress(replace(later, state=TaskState.STARTING))
    progress.waited_on({3})
    progress(replace(later, state=TaskState.RUNNING))
    progress.close()
    assert progress.done == 3


def test_plain_lines_load_no_rich() -> None:
    """`service create` prints them from the threads about to start tasks: rich's import
    (~16 ms) would come before every first docker call."""
    script = (
        "import sys\n"
        "from swarmctl.cli.progress import plain_line\n"
        "from swarmctl.models import Task, TaskState\n"
        "print(plain_line(Task('t', 's', 1, '', 'n', state=TaskState.RUNNING)))\n"
        "print('rich' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)

    assert done.stdout.split() == ["1:", "running", "False"], done.stderr
