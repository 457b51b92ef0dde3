"""A node's status from its heartbeats and the time (pure): ready, unknown or down.

A node that answered is ready. One that did not is unknown at once: nothing is concluded
about its tasks, only no new task goes there. After `allowed` misses in a row it is
down, and the reconciler replaces its tasks elsewhere. Right after the supervisor
starts, a node is allowed twice as many misses: swarm too gives nodes time to reconnect
after a manager starts, and a supervisor started during a short outage should not move
every task at once. A command that cannot reach the node at all (the executor's) is
a verdict at once: `unreachable`. The caller keeps the count of misses; `executor.save`
writes what `assess` decides.
"""

from dataclasses import dataclass, replace
from datetime import datetime

from swarmctl import clock
from swarmctl.models import Node, NodeState

# last_seen is kept to this many seconds only, so that ticks with no news write nothing.
LAST_SEEN_STEP = 10.0


@dataclass(frozen=True)
class Heartbeat:
    """What one look at a node found."""

    error: str = ""  # why it did not answer; "" when it did
    missed: int = 0  # looks in a row it did not answer, this one included
    allowed: int = 1  # misses in a row before it is down


def unreachable(error: str) -> Heartbeat:
    return Heartbeat(error, 1, 1)


def allowed_misses(misses: int, ticks: int) -> int:
    """Misses in a row that make a node down, at the supervisor's `ticks`-th tick."""
    return misses * (2 if ticks <= misses * 2 else 1)


def assess(node: Node, beat: Heartbeat, now: datetime) -> Node:
    """The node's record after `beat`: the same record when there is nothing worth
    writing, else its new status (a change of status bumps its version)."""
    stamp = now.isoformat(timespec="milliseconds")
    if not beat.error:
        stale = not node.last_seen or clock.seconds_since(node.last_seen, now) >= LAST_SEEN_STEP
        if node.state == NodeState.READY and not stale:
            return node
        updated = replace(node, state=NodeState.READY, message="", last_seen=stamp)
    elif beat.missed >= beat.allowed:
        if node.state == NodeState.DOWN:
            return node
        updated = replace(node, state=NodeState.DOWN, message=beat.error)
    elif node.state == NodeState.READY:
        updated = replace(node, state=NodeState.UNKNOWN, message=beat.error)
    else:
        return node  # unknown stays unknown, down stays down, until it answers
    if updated.state != node.state:
        updated = replace(updated, updated_at=stamp, version=node.version + 1)
    return updated
