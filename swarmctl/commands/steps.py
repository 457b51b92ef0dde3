"""The steps that change a host apart from task starts and stops: strays removed, its
overlays converged, its clean-up on leave, Docker installed and started (built here,
run by executor.run_steps)."""

from collections.abc import Collection, Sequence

from swarmctl.commands import docker
from swarmctl.commands.render import render
from swarmctl.hoststep import HostStep, Kind
from swarmctl.network.overlay import NodeOverlays

CONVERGE_TIMEOUT = 120.0
STRAYS_TIMEOUT = 30.0
INSTALL_TIMEOUT = 900.0
START_TIMEOUT = 60.0

# Root, or a user with passwordless sudo (read-only: provision.check_login reads it).
CHECK_LOGIN = "id -u; sudo -n true 2>/dev/null && echo sudo"


def remove_strays(host: str, task_ids: Sequence[str]) -> HostStep:
    return HostStep(host, Kind.REMOVE_CONTAINERS, docker.remove_tasks(task_ids), STRAYS_TIMEOUT)


def overlay(overlays: NodeOverlays) -> HostStep:
    script = render("overlay/converge.sh.j2", o=overlays)
    return HostStep(overlays.node, Kind.OVERLAY, script, CONVERGE_TIMEOUT)


def mesh(host: str, script: str) -> HostStep:
    """A failed part of the mesh script is a line on its stderr, the other parts done."""
    return HostStep(host, Kind.MESH, script, CONVERGE_TIMEOUT, check=False)


def clean(cluster_id: str, host: str) -> list[HostStep]:
    """Remove what this cluster put on a host: its containers, then its overlays."""
    nothing = NodeOverlays(cluster_id, host, (), (), ())
    return [
        HostStep(
            host,
            Kind.REMOVE_CONTAINERS,  # one the supervisor is removing too is as good as gone
            docker.remove_cluster_containers(cluster_id),
            CONVERGE_TIMEOUT,
        ),
        HostStep(host, Kind.CLEAN, overlay(nothing).command, CONVERGE_TIMEOUT),
    ]


def install_docker(tools: Collection[str], family: Collection[str]) -> list[str] | None:
    """The distribution's Docker packages, for an OS of this family with these tools."""
    if "apt-get" in tools and set(family) & {"debian", "ubuntu"}:
        return [
            "sh",
            "-c",
            "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io",
        ]
    if "dnf" in tools:
        return ["dnf", "install", "-y", "moby-engine"]
    if "apk" in tools:
        return ["apk", "add", "docker"]
    return None


def start_docker(tools: Collection[str]) -> list[str] | None:
    if "systemctl" in tools:
        return ["systemctl", "enable", "--now", "docker"]
    if "service" in tools:
        return ["service", "docker", "start"]
    return None


def provision(host: str, install: list[str] | None, start: list[str] | None) -> list[HostStep]:
    """Docker installed when absent, then the daemon started when it does not answer."""
    steps = []
    if install:
        steps.append(HostStep(host, Kind.INSTALL_DOCKER, tuple(install), INSTALL_TIMEOUT))
    if start:
        steps.append(HostStep(host, Kind.START_DOCKER, tuple(start), START_TIMEOUT))
    return steps
