"""How a service is reached (pure): the published port of each of its ports, checked
against the cluster's, and a virtual IP on each of its networks."""

from collections.abc import Sequence
from dataclasses import replace

from swarmctl.errors import SwarmctlError
from swarmctl.models import (
    PublishMode,
    Service,
    ServiceSpec,
)
from swarmctl.network import ipam

DYNAMIC_PORTS = range(30000, 32768)  # swarm's range for ingress ports left unnamed


def publish(spec: ServiceSpec, services: Sequence[Service], ssh_ports: set[int]) -> dict:
    """Published port of each of the spec's ports, checked against the cluster's.

    An ingress port is taken on every node, so it conflicts with any other use of the
    port; two host-mode ports only meet on a node, which the scheduler keeps apart."""
    ingress: dict[tuple[int, str], str] = {}
    host: dict[tuple[int, str], str] = {}
    for other in services:
        for port in other.spec.ports:
            number = other.published.get(f"{port.target}/{port.protocol}", port.published)
            if number:
                taken = ingress if port.mode == PublishMode.INGRESS else host
                taken[(int(number), port.protocol)] = other.spec.name
    published = {}
    for port in spec.ports:
        number = port.published
        if number is None and port.mode == PublishMode.INGRESS:
            number = next(
                (
                    p
                    for p in DYNAMIC_PORTS
                    if (p, port.protocol) not in ingress
                    and (p, port.protocol) not in host
                    and p not in ssh_ports
                ),
                None,
            )
            if number is None:
                raise SwarmctlError("no free port left in 30000-32767 to publish on")
        if number is None:
            continue
        key = (number, port.protocol)
        other = ingress.get(key) or (host.get(key) if port.mode == PublishMode.INGRESS else None)
        if other:
            raise SwarmctlError(
                f"port {number}/{port.protocol} is already published by service {other}"
            )
        if port.mode == PublishMode.INGRESS and port.protocol == "tcp" and number in ssh_ports:
            raise SwarmctlError(
                f"port {number}/tcp is the SSH port swarmctl reaches nodes on: "
                "the routing mesh would take it over on every node"
            )
        (ingress if port.mode == PublishMode.INGRESS else host)[key] = spec.name
        published[f"{port.target}/{port.protocol}"] = number
    return published


def vips(
    spec: ServiceSpec, networks: dict, services: Sequence[Service], kept: dict | None = None
) -> dict[str, str]:
    """A virtual IP on each of the spec's networks: those in `kept` (an updated service's
    own) stay, the others are allocated."""
    vips = {}
    for name in spec.networks:
        network = networks[name]
        if kept and network.id in kept:
            vips[network.id] = kept[network.id]
            continue
        taken = [s.vips[network.id] for s in services if network.id in s.vips]
        vips[network.id] = ipam.allocate_vip(network.subnet, network.gateway, taken)
    return vips


def known_ports(spec: ServiceSpec, service: Service) -> ServiceSpec:
    """The spec with the ports the service already published under their numbers, so
    that an update keeps a port the cluster picked for it."""
    ports = tuple(
        replace(p, published=service.published.get(f"{p.target}/{p.protocol}"))
        if p.published is None
        else p
        for p in spec.ports
    )
    return replace(spec, ports=ports)
