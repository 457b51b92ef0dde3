"""A node's status from heartbeats and time (health.py, pure)."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from swarmctl.health import LAST_SEEN_STEP, Heartbeat, allowed_misses, assess, unreachable
from swarmctl.models import Node, NodeState, Role

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
STAMP = NOW.isoformat(timespec="milliseconds")


def node(state: NodeState = NodeState.READY, seconds_ago: float = 1.0) -> Node:
    seen = (NOW - timedelta(seconds=seconds_ago)).isoformat(timespec="milliseconds")
    return Node("n1", "worker1", Role.WORKER, "10.0.0.1", "", "", state=state, last_seen=seen)


def test_a_ready_node_that_answers_is_not_rewritten_within_the_last_seen_step() -> None:
    ready = node(seconds_ago=LAST_SEEN_STEP - 1)
    assert assess(ready, Heartbeat(), NOW) is ready


def test_a_ready_node_that_answers_gets_last_seen_after_the_step_and_keeps_its_version() -> None:
    assert assess(node(seconds_ago=LAST_SEEN_STEP), Heartbeat(), NOW) == replace(
        node(), last_seen=STAMP
    )


@pytest.mark.parametrize("state", [NodeState.UNKNOWN, NodeState.DOWN])
def test_a_node_that_answers_again_is_ready_with_no_message(state: NodeState) -> None:
    away = replace(node(state, seconds_ago=60), message="connection refused")
    back = assess(away, Heartbeat(), NOW)
    assert (back.state, back.message, back.last_seen) == (NodeState.READY, "", STAMP)
    assert (back.version, back.updated_at) == (away.version + 1, STAMP)


def test_a_first_miss_makes_a_ready_node_unknown_with_the_reason() -> None:
    unknown = assess(node(), Heartbeat("worker1: connection refused", 1, 3), NOW)
    assert (unknown.state, unknown.message) == (NodeState.UNKNOWN, "worker1: connection refused")
    assert (unknown.version, unknown.updated_at) == (2, STAMP)


def test_misses_below_the_allowed_count_leave_an_unknown_node_as_it_is() -> None:
    unknown = node(NodeState.UNKNOWN)
    assert assess(unknown, Heartbeat("timed out", 2, 3), NOW) is unknown


def test_the_allowed_count_of_misses_makes_a_node_down() -> None:
    down = assess(node(NodeState.UNKNOWN), Heartbeat("timed out", 3, 3), NOW)
    assert (down.state, down.message, down.version) == (NodeState.DOWN, "timed out", 2)


def test_a_down_node_that_misses_again_is_not_rewritten() -> None:
    down = node(NodeState.DOWN)
    assert assess(down, Heartbeat("timed out", 9, 3), NOW) is down
    assert assess(down, Heartbeat("timed out", 1, 6), NOW) is down  # a supervisor restarted


def test_a_node_a_command_cannot_reach_is_down_at_once() -> None:
    assert assess(node(), unreachable("worker1: connection refused"), NOW).state == NodeState.DOWN


def test_a_supervisor_just_started_allows_twice_the_misses() -> None:
    assert [allowed_misses(3, tick) for tick in (1, 6, 7, 100)] == [6, 6, 3, 3]
