"""In-memory hosts for tests: transport/host.Hosts with no SSH and no Docker.

Each FakeHost holds its containers and records every command it is given, as text. It
acts on the commands the control loop sends about containers: a task's start script
(commands/docker.run_task) makes a running container and prints its id, `docker inspect`
prints its full record as docker does (`--format '{{json .}}'`), remove_tasks and
remove_cluster_containers remove them. Any other command (overlay and mesh scripts,
image loads) succeeds and changes nothing. A host can be made unreachable (every call
fails as SSH would), its engine's API silent (engine_down), commands can be made to fail
(fail_on) or to hang until the test lets them go (hang_on, released).
"""

import json
import re
import shlex
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import count
from typing import TypeVar

from swarmctl import clock
from swarmctl.errors import SwarmctlError
from swarmctl.naming import LABEL_CLUSTER, LABEL_SERVICE_ID, LABEL_TASK_ID
from swarmctl.runtime.containers import Container
from swarmctl.runtime.engine import EngineError
from swarmctl.transport.ssh import CommandFailed, CommandTimeout, HostUnreachable, Result

T = TypeVar("T")

_LABEL = r"(?:--label |label=){}=([A-Za-z0-9_.-]+)"
_TASK = re.compile(_LABEL.format(re.escape(LABEL_TASK_ID)))
_CLUSTER = re.compile(_LABEL.format(re.escape(LABEL_CLUSTER)))
_SERVICE = re.compile(_LABEL.format(re.escape(LABEL_SERVICE_ID)))
_ids = count(1)


@dataclass
class Failure:
    text: str  # a command containing this fails …
    exit_code: int
    stderr: str
    times: int | None  # … this many times (None: always)


@dataclass
class FakeHost:
    name: str
    reachable: bool = True
    engine_sessions: int = 1
    engine_down: bool = False  # its engine's API does not answer; commands still run
    commands: list[str] = field(default_factory=list)
    tries: int = 0  # calls made on the host, answered or not (an SSH connect each, at worst)
    failures: list[Failure] = field(default_factory=list)
    # container id -> (cluster id, container)
    docker: dict[str, tuple[str, Container]] = field(default_factory=dict)
    # A link lost under a command, or a connect nobody answers: a command containing
    # `hang_on` waits until `released` is set, then fails as an SSH timeout does.
    hang_on: str | None = None
    # A command containing this does not finish within its timeout: the host answers.
    timeout_on: str | None = None
    hanging: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def fail_on(
        self, text: str, exit_code: int = 1, stderr: str = "", times: int | None = None
    ) -> None:
        self.failures.append(Failure(text, exit_code, stderr or f"{text}: failed", times))

    def add(self, cluster_id: str, task_id: str, status: str = "running", **fields) -> Container:
        """A container of the task, as if it had been started (or had ended) there."""
        container = Container(
            id=f"c{next(_ids):063d}",
            task_id=task_id,
            status=status,
            exit_code=fields.pop("exit_code", 0),
            oom=fields.pop("oom", False),
            error=fields.pop("error", ""),
            health=fields.pop("health", ""),
            **fields,
        )
        self.docker[container.id] = (cluster_id, container)
        return container

    def stop(self, task_id: str, exit_code: int = 137) -> None:
        """The task's container exits (killed, crashed)."""
        for cid, (cluster, container) in list(self.docker.items()):
            if container.task_id == task_id:
                ended = replace(container, status="exited", exit_code=exit_code)
                self.docker[cid] = (cluster, ended)

    def task_ids(self) -> list[str]:
        return sorted(c.task_id for _, c in self.docker.values())

    # ------------------------------------------------------------------ Host

    def containers(self, cluster_id: str) -> list[Container]:
        self._reach()
        return [c for cluster, c in self.docker.values() if cluster == cluster_id]

    def container(self, container_id: str) -> Container:
        self._reach()
        if self.engine_down:
            raise EngineError(f"{self.name}: the Docker engine did not answer (test)")
        return self.docker[container_id][1]

    def run(
        self,
        command: str | Sequence[str],
        *,
        timeout: float | None = None,
        stdin: bytes | None = None,
        check: bool = True,
    ) -> Result:
        line = command if isinstance(command, str) else shlex.join(command)
        self._reach()
        if self.hang_on is not None and self.hang_on in line:
            self.hanging.set()
            self.released.wait()
            raise HostUnreachable(f"{self.name}: connection timed out")
        self.commands.append(line)
        if self.timeout_on is not None and self.timeout_on in line:
            raise CommandTimeout(f"{self.name}: `{line[:40]}` did not finish within {timeout} s")
        failure = next((f for f in self.failures if f.text in line and f.times != 0), None)
        if failure:
            failure.times = None if failure.times is None else failure.times - 1
            code, out, err = failure.exit_code, "", failure.stderr
        else:
            code, out, err = 0, self._act(line), ""
        result = Result(self.name, line, code, out, err, 0.0)
        if check and code:
            raise CommandFailed(f"{self.name}: command failed: {err}", result)
        return result

    def output(self, command: str | Sequence[str], *, timeout: float | None = None) -> bytes:
        return self.run(command, timeout=timeout).stdout.encode()

    def _reach(self) -> None:
        self.tries += 1
        if not self.reachable:
            raise HostUnreachable(f"{self.name}: connection refused")

    def _act(self, line: str) -> str:
        if "docker rm -f" in line:
            tasks = set(_TASK.findall(line))
            clusters = set(_CLUSTER.findall(line)) if not tasks else set()
            for cid, (cluster, container) in list(self.docker.items()):
                if container.task_id in tasks or cluster in clusters:
                    del self.docker[cid]
            return ""
        if line.startswith("docker inspect --format"):
            return json.dumps(_record(self.docker[shlex.split(line)[-1]][1])) + "\n"
        if (task := _TASK.search(line)) and ("docker run -d" in line or "docker create" in line):
            (cluster,) = set(_CLUSTER.findall(line))
            now = clock.now()
            service = _SERVICE.search(line)
            container = self.add(
                cluster,
                task.group(1),
                created=now,
                started=now,
                service_id=service.group(1) if service else "",
            )
            return container.id + "\n"
        return ""


def _record(container: Container) -> dict:
    """The container's full record, as the Engine API and `docker inspect` give it."""
    labels = {LABEL_TASK_ID: container.task_id, LABEL_SERVICE_ID: container.service_id}
    state = {
        "Status": container.status,
        "ExitCode": container.exit_code,
        "OOMKilled": container.oom,
        "Error": container.error,
        "StartedAt": container.started,
        "FinishedAt": container.finished,
        **({"Health": {"Status": container.health}} if container.health else {}),
    }
    return {
        "Id": container.id,
        "Created": container.created,
        "Config": {"Labels": labels},
        "State": state,
        "NetworkSettings": {"Networks": {}},
    }


class FakeHosts:
    """The hosts of a fake cluster; `each` runs on them one after another, in order."""

    def __init__(self, names: Sequence[str]) -> None:
        self.hosts = {name: FakeHost(name) for name in names}

    def each(
        self, action: Callable[[FakeHost], T], names: Sequence[str] | None = None
    ) -> dict[str, T | SwarmctlError]:
        results: dict[str, T | SwarmctlError] = {}
        for name in self.hosts if names is None else names:
            if name not in self.hosts:
                results[name] = SwarmctlError(f"{name}: not in the inventory")
                continue
            try:
                results[name] = action(self.hosts[name])
            except SwarmctlError as error:
                results[name] = error
        return results

    def __getitem__(self, name: str) -> FakeHost:
        return self.hosts[name]

    def __contains__(self, name: object) -> bool:
        return name in self.hosts

    def __iter__(self) -> Iterator[FakeHost]:
        return iter(self.hosts.values())

    def __enter__(self) -> "FakeHosts":
        return self

    def __exit__(self, *exc: object) -> None:
        pass
