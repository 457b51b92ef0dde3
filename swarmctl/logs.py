"""`service logs`: the logs of a service's tasks, read from each node's dockerd over SSH and
shown as docker shows them (`web.3.abc123def456@worker1    | line`).

Owns which containers to read, the line prefixes, merging and following; the docker command
comes from commands/docker.py and the connections from the caller's pool.
"""

import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, TextIO

from swarmctl.commands import docker
from swarmctl.errors import SwarmctlError, cut
from swarmctl.models import Node, Service, Task

if TYPE_CHECKING:
    from swarmctl.transport.group import Pool

# Go durations, as `docker logs --since 42m` takes them.
DURATION_RE = re.compile(r"(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+")
UNIX_TIME_RE = re.compile(r"\d+(\.\d+)?")
TIMESTAMP_RE = re.compile(r"\d{4}-\d\d-\d\dT[0-9:.]+(Z|[+-]\d\d:\d\d)")
PROBE_EVERY = 5.0  # seconds between checks that a followed node still answers
PROBE_TIMEOUT = 3.0
POLL = 1.0  # seconds between reads of the state for tasks started since


def check_tail(value: str) -> str:
    """`all` or a count of lines (docker quietly takes anything else as all: not here)."""
    if value == "all" or value.isdigit():
        return value
    raise SwarmctlError(f"--tail {cut(value)!r}: expected a number of lines or 'all'")


def check_since(value: str) -> str:
    """A time `docker logs --since` takes: RFC 3339 date, UNIX time, or a Go duration."""
    if DURATION_RE.fullmatch(value) or UNIX_TIME_RE.fullmatch(value):
        return value
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SwarmctlError(
            f"--since {cut(value)!r}: expected a date (2026-01-02T13:23:37Z), "
            "a UNIX time or a duration (42m, 1h30m)"
        ) from None
    return value


@dataclass(frozen=True)
class Source:
    """One task's container and the prefix its lines get."""

    task_id: str
    host: str
    container: str
    prefix: str


@dataclass(frozen=True)
class Options:
    follow: bool = False
    tail: str = "all"
    since: str | None = None
    timestamps: bool = False
    raw: bool = False  # lines as the container wrote them, no prefix
    task_ids: bool = True
    no_trunc: bool = False


def prefix(service: Service, task: Task, node: Node | None, options: Options) -> str:
    """docker's context of a line: `<service>.<slot>[.<task id>]@<node>`."""
    name = f"{service.spec.name}.{task.slot_key}"
    if options.task_ids:
        name += "." + (task.id if options.no_trunc else task.id[:12])
    return f"{name}@{node.hostname if node else task.node_id}"


def sources(
    service: Service, tasks: Iterable[Task], nodes: dict[str, Node], options: Options
) -> list[Source]:
    """The tasks whose container may still be on its node, oldest slot first."""
    found = []
    for task in sorted(tasks, key=lambda t: (t.slot, t.node_id, t.created_at)):
        node = nodes.get(task.node_id)
        if task.service_id != service.id or node is None or not task.container_id:
            continue
        found.append(
            Source(
                task.id,
                node.hostname,
                docker.task_container(service, task),
                prefix(service, task, node, options),
            )
        )
    return found


@dataclass(order=True)
class Line:
    when: str  # docker's RFC 3339 timestamp, fixed width: orders as text
    source: int
    text: str = field(compare=False)
    stderr: bool = field(default=False, compare=False)


def split_timestamp(line: str) -> tuple[str, str] | None:
    """(timestamp, text) of a line `docker logs --timestamps` printed; None for a line of
    docker's own (an error)."""
    when, _, text = line.partition(" ")
    return (when, text) if TIMESTAMP_RE.fullmatch(when) else None


class Printer:
    """Writes lines from many threads whole, each with its source's prefix, aligned."""

    def __init__(self, options: Options, out: TextIO = sys.stdout, err: TextIO = sys.stderr):
        self.options = options
        self.out, self.err = out, err
        self.width = 0
        self.lock = threading.Lock()

    def widen(self, sources_: Iterable[Source]) -> None:
        self.width = max([self.width, *(len(s.prefix) for s in sources_)])

    def line(self, source: Source, when: str, text: str, stderr: bool = False) -> None:
        parts = [when] if self.options.timestamps else []
        if not self.options.raw:
            parts.append(source.prefix.ljust(self.width) + "    |")
        parts.append(text)
        stream = self.err if stderr else self.out
        with self.lock:
            stream.write(" ".join(parts) + "\n")
            stream.flush()

    def note(self, message: str) -> None:
        with self.lock:
            self.out.flush()
            self.err.write(f"Warning: {message}\n")
            self.err.flush()


def read(pool: "Pool", sources_: Sequence[Source], options: Options, printer: Printer) -> int:
    """Print what every source logged so far, merged in time order; how many sources could
    not be read (their node unreachable, say), each named on stderr."""
    argv = {s: docker.logs(s.container, tail=options.tail, since=options.since) for s in sources_}
    by_host: dict[str, list[Source]] = {}
    for source in sources_:
        by_host.setdefault(source.host, []).append(source)

    def fetch(conn) -> list[tuple[Source, str, str] | SwarmctlError]:
        found: list[tuple[Source, str, str] | SwarmctlError] = []
        for source in by_host[conn.name]:
            result = conn.run(argv[source], timeout=300, check=False)
            if result.exit_code == 0:
                found.append((source, result.stdout, result.stderr))
            elif "No such container" not in result.stderr:  # removed since: nothing to show
                detail = docker.error_line(result.stderr) or f"exit {result.exit_code}"
                found.append(SwarmctlError(f"{source.prefix}: cannot read its logs: {detail}"))
        return found

    results = pool.each(fetch, list(by_host))
    lines: list[Line] = []
    failed = 0
    index = {s: i for i, s in enumerate(sources_)}
    for host, result in results.items():
        if isinstance(result, SwarmctlError):
            failed += len(by_host[host])
            printer.note(f"logs of {len(by_host[host])} task(s) on {host} not read: {result}")
            continue
        for item in result:
            if isinstance(item, SwarmctlError):
                failed += 1
                printer.note(str(item))
                continue
            source, stdout, stderr = item
            for text, is_err in ((stdout, False), (stderr, True)):
                for raw in text.splitlines():
                    when, rest = split_timestamp(raw) or ("", raw)
                    lines.append(Line(when, index[source], rest, is_err))
    printer.widen(sources_)
    for line in sorted(lines):
        printer.line(sources_[line.source], line.when, line.text, line.stderr)
    return failed


class Follower:
    """`logs -f`: one stream per task container, more as tasks start, until interrupted or
    the service is gone. A node that stops answering ends its streams with a note."""

    def __init__(
        self,
        pool: "Pool",
        options: Options,
        printer: Printer,
        current: Callable[[], list[Source] | None],
    ) -> None:
        self.pool = pool
        self.options = options
        self.printer = printer
        self.current = current  # the service's sources now; None once it is removed
        self.streams: dict[str, tuple[Source, object]] = {}  # task id -> (source, channel)
        self.done: set[str] = set()  # tasks whose stream ended: not reopened

    def run(self) -> None:
        first = True
        last_probe = time.monotonic()
        while True:
            found = self.current()
            if found is None:
                return
            self.printer.widen(found)
            for source in found:
                if source.task_id not in self.streams and source.task_id not in self.done:
                    self._open(source, since_start=not first)
            first = False
            if time.monotonic() - last_probe >= PROBE_EVERY:
                self._probe()
                last_probe = time.monotonic()
            time.sleep(POLL)

    def _open(self, source: Source, since_start: bool) -> None:
        # A task found after the command began is shown from its first line.
        tail = "all" if since_start else self.options.tail
        since = None if since_start else self.options.since
        argv = docker.logs(source.container, tail=tail, since=since, follow=True)
        try:
            channel = self.pool[source.host].open_stream(argv)
        except SwarmctlError as exc:
            self.done.add(source.task_id)
            self.printer.note(f"{source.prefix}: cannot follow its logs: {exc}")
            return
        self.streams[source.task_id] = (source, channel)
        threading.Thread(target=self._pump, args=(source, channel), daemon=True).start()

    def _pump(self, source: Source, channel) -> None:
        pending = {False: b"", True: b""}
        while True:
            got = False
            for is_err, ready, recv in (
                (False, channel.recv_ready, channel.recv),
                (True, channel.recv_stderr_ready, channel.recv_stderr),
            ):
                if ready():
                    got = True
                    pending[is_err] += recv(65536)
                    *whole, pending[is_err] = pending[is_err].split(b"\n")
                    for raw in whole:
                        self._emit(source, raw, is_err)
            if got:
                continue
            if channel.exit_status_ready() or channel.closed:
                break
            time.sleep(0.05)
        for is_err, rest in pending.items():
            if rest:
                self._emit(source, rest, is_err)
        self.done.add(source.task_id)
        self.streams.pop(source.task_id, None)

    def _emit(self, source: Source, raw: bytes, is_err: bool) -> None:
        line = raw.decode(errors="replace")
        parsed = split_timestamp(line)
        if parsed:
            self.printer.line(source, *parsed, stderr=is_err)
        elif "No such container" not in line:  # gone before we looked: nothing to follow
            self.printer.note(f"{source.prefix}: {line}")

    def _probe(self) -> None:
        """Ask every node we follow to answer; one that does not ends its streams."""
        hosts = {source.host for source, _ in list(self.streams.values())}
        if not hosts:
            return
        results = self.pool.each(
            lambda conn: conn.run(["true"], timeout=PROBE_TIMEOUT), sorted(hosts)
        )
        for host, result in results.items():
            if not isinstance(result, SwarmctlError):
                continue
            for task_id, (source, channel) in list(self.streams.items()):
                if source.host == host:
                    self.done.add(task_id)
                    self.streams.pop(task_id, None)
                    channel.close()
                    self.printer.note(f"{source.prefix}: log stream ended: {result}")
