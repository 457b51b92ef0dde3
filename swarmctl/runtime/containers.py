"""What a host's engine says about a container, as one record (pure).

Two shapes of docker's container document reach the control node: the Engine API's
list entry (with, for a container that is not running, its full record), read by the
supervisor (`from_api`), and the full record alone (`from_inspect`), read after a
task's start from the API or, when that cannot be reached, from `docker inspect`, which
prints the same document.
"""

from dataclasses import dataclass, field

from swarmctl import clock
from swarmctl.naming import LABEL_SERVICE_ID, LABEL_TASK_ID


@dataclass(frozen=True)
class Container:
    id: str
    task_id: str
    status: str  # created, running, exited, dead…
    exit_code: int
    oom: bool
    error: str
    health: str  # "", starting, healthy, unhealthy
    addresses: dict[str, str] = field(default_factory=dict)  # network name -> IP
    macs: dict[str, str] = field(default_factory=dict)  # network name -> MAC address
    # docker's own times (state-file format, "" when unknown): when the task entered
    # starting, running and its end, for `service ps` and the event log.
    created: str = ""
    started: str = ""
    finished: str = ""
    service_id: str = ""  # from its label; "" where the source does not tell


def _addresses(networks: dict) -> tuple[dict[str, str], dict[str, str]]:
    """(IPs, MACs) by network name, of the networks where the container has an address."""
    with_ip = {name: net for name, net in networks.items() if net.get("IPAddress")}
    return (
        {name: net["IPAddress"] for name, net in with_ip.items()},
        {name: net["MacAddress"] for name, net in with_ip.items() if net.get("MacAddress")},
    )


def from_inspect(detail: dict) -> Container:
    """A container from its full record (GET /containers/{id}/json, or `docker inspect`)."""
    summary = {
        "Id": detail["Id"],
        "Labels": (detail.get("Config") or {}).get("Labels"),
        "NetworkSettings": detail.get("NetworkSettings"),
        "Created": detail.get("Created"),
    }
    return from_api(summary, detail)


def from_api(summary: dict, detail: dict | None = None) -> Container:
    """A container from the Engine API's list entry (GET /containers/json) and, for one
    that is not running, its full record (GET /containers/{id}/json) for exit code and
    out-of-memory."""
    state = (detail or {}).get("State") or {}
    status = summary.get("Status") or ""
    health = (state.get("Health") or {}).get("Status") or next(
        (
            word
            for word in ("unhealthy", "healthy", "starting")
            if f"({word}" in status or f"health: {word}" in status
        ),
        "",
    )
    addresses, macs = _addresses((summary.get("NetworkSettings") or {}).get("Networks") or {})
    labels = summary.get("Labels") or {}
    return Container(
        id=summary["Id"],
        task_id=labels.get(LABEL_TASK_ID, ""),
        service_id=labels.get(LABEL_SERVICE_ID, ""),
        status=state.get("Status") or summary.get("State", ""),
        exit_code=int(state.get("ExitCode") or 0),
        oom=bool(state.get("OOMKilled")),
        error=state.get("Error") or "",
        health=health,
        addresses=addresses,
        macs=macs,
        created=clock.from_docker(summary.get("Created")),
        started=clock.from_docker(state.get("StartedAt")),
        finished=clock.from_docker(state.get("FinishedAt")),
    )
