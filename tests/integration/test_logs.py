"""`service logs` on real hosts: every task's lines, prefixed as docker prefixes them, and
`-f` following tasks that start later and nodes that go away."""

import json
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from tests.integration.conftest import Cluster, interruptible
from tests.integration.test_supervisor import Supervisor, running, wait_for

pytestmark = pytest.mark.lab

# Each task says who it is on stdout and stderr, then once a second on stdout.
TALKER = (
    'echo "hello from $(hostname)"; echo "oops from $(hostname)" >&2; '
    'i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 1; done'
)
PREFIX = re.compile(r"^talk\.(\d)\.([a-z0-9]{12})@(manager1|worker1|worker2) *    \| (.*)$")


@pytest.fixture
def talk(cluster: Cluster) -> Iterator[Cluster]:
    cluster("init", "manager1")
    cluster("join", "--all")
    cluster(
        "service", "create", "--name", "talk", "--replicas", "3", "swarmctl/tools",
        "sh", "-c", TALKER,
    )  # fmt: skip
    yield cluster


def nodes_of(cluster: Cluster) -> dict[str, str]:
    """node ID -> hostname."""
    rows = cluster("node", "ls", "--format", "json").stdout.splitlines()
    return {r["ID"]: r["Hostname"] for r in map(json.loads, rows)}


@pytest.mark.modes("online", "offline")
def test_logs_show_every_task_prefixed_as_docker_does(talk: Cluster) -> None:
    result = talk("service", "logs", "talk")
    hosts = nodes_of(talk)
    lines = result.stdout.splitlines()
    greetings = [PREFIX.match(line) for line in lines if "hello from" in line]
    assert len(greetings) == 3, result.stdout
    tasks = {t["id"][:12]: t for t in running(talk, "talk")}
    for match in greetings:
        slot, task_id, host, _ = match.groups()
        assert tasks[task_id]["slot"] == int(slot)
        assert hosts[tasks[task_id]["node_id"]] == host
    # A container's stderr stays on stderr, prefixed the same way.
    assert sum("oops from" in line for line in result.stderr.splitlines()) == 3
    assert all(PREFIX.match(line) for line in lines)
    # Every "|" in one column, whatever the node names' lengths.
    assert len({line.index("|") for line in lines}) == 1

    time.sleep(2)
    tail = talk("service", "logs", "--tail", "1", "--no-task-ids", "-t", "talk").stdout
    tail_lines = tail.splitlines()
    assert len(tail_lines) == 3
    for line in tail_lines:
        when, context, _ = line.split(" ", 2)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", when)
        assert re.fullmatch(r"talk\.\d@(manager1|worker1|worker2)", context)
    # Lines of all nodes merged in time order.
    times = [line.split()[0] for line in tail_lines]
    assert times == sorted(times)

    raw = talk("service", "logs", "--raw", "talk").stdout.splitlines()
    assert sum(line.startswith("hello from ") for line in raw) == 3

    (one,) = [t for t in running(talk, "talk") if t["slot"] == 2]
    only = talk("service", "logs", one["id"]).stdout.splitlines()
    assert only and all(f".2.{one['id'][:12]}@" in line for line in only)


def test_logs_refuse_bad_input_in_one_line(talk: Cluster) -> None:
    for args, cause in (
        (["nope"], "no such service or task: 'nope'"),
        (["--tail", "-3", "talk"], "--tail '-3': expected a number of lines or 'all'"),
        (["--since", "yesterday", "talk"], "--since 'yesterday': expected a date"),
    ):
        result = talk("service", "logs", *args, check=False)
        assert result.returncode == 1, args
        assert result.stderr.startswith(f"Error: {cause}"), result.stderr
        assert len(result.stderr.splitlines()) == 1


class Follow:
    """`service logs -f` in the background, its lines collected as they come."""

    def __init__(self, cluster: Cluster, *args: str) -> None:
        self.proc = cluster.popen(
            "service",
            "logs",
            "-f",
            *args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=interruptible,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        for stream, into in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._collect, args=(stream, into), daemon=True).start()

    @staticmethod
    def _collect(stream, into: list[str]) -> None:
        for line in stream:
            into.append(line.rstrip("\n"))

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # not left following after the test
            raise


@pytest.mark.modes("online", "offline")
def test_follow_picks_up_a_replacement_and_notes_a_lost_node(talk: Cluster) -> None:
    follow = Follow(talk, "talk")
    try:
        wait_for("3 greetings", lambda: sum("hello from" in x for x in follow.out) == 3)
        wait_for("ticks", lambda: sum("tick 2" in x for x in follow.out) == 3)

        # A killed replica's replacement, started by the supervisor, is followed too.
        (victim,) = [t for t in running(talk, "talk") if t["slot"] == 1]
        host = nodes_of(talk)[victim["node_id"]]
        supervisor = Supervisor(talk)
        try:
            talk.lab.ssh(host, f"docker rm -f {victim['container_id']}")
            wait_for(
                "the replacement's greeting",
                lambda: any(
                    "hello from" in x and x.startswith("talk.1.") and victim["id"][:12] not in x
                    for x in follow.out
                ),
            )
        finally:
            supervisor.stop()

        # A node that goes away ends its stream with a note; the others go on.
        talk.lab.lab.unplug("worker2")
        try:
            wait_for(
                "a note that worker2's stream ended",
                lambda: any("@worker2: log stream ended" in x for x in follow.err),
            )
            seen = len(follow.out)
            wait_for("other nodes' ticks", lambda: len(follow.out) > seen + 2)
            assert follow.proc.poll() is None
        finally:
            talk.lab.lab.plug("worker2")
    finally:
        assert follow.stop() == 130
    assert not [x for x in follow.err if "Traceback" in x]
