"""What a stack deploy would change: the pure half of `stack deploy` (plan, then apply).

Compares a Stack read from Compose files with the cluster's records: services to
create, to update (with a field-by-field diff), to leave alone, and (with prune) to
remove; networks to create. The same plan drives `--dry-run` and the real deploy
(deploy.py applies it). No I/O.
"""

import dataclasses
import enum
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from swarmctl.errors import SwarmctlError
from swarmctl.models import Network, Service, ServiceSpec
from swarmctl.spec import ImageRef
from swarmctl.stack.model import NAMESPACE_LABEL, Stack, StackNetwork

DRIVERS = ("overlay", "")  # swarmctl's networks are VXLAN overlays


@dataclass(frozen=True)
class ServiceUpdate:
    service: Service
    spec: ServiceSpec  # the file's, keeping the image's pin when the file names its tag
    changes: tuple[str, ...]  # "replicas: 2 -> 3"


@dataclass(frozen=True)
class StackPlan:
    stack: str
    networks: tuple[StackNetwork, ...] = ()  # to create
    create: tuple[ServiceSpec, ...] = ()
    update: tuple[ServiceUpdate, ...] = ()
    unchanged: tuple[Service, ...] = ()
    remove: tuple[Service, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.networks or self.create or self.update or self.remove)


def stack_services(services: Sequence[Service], stack: str) -> list[Service]:
    return [s for s in services if s.spec.labels.get(NAMESPACE_LABEL) == stack]


def stack_networks(networks: Sequence[Network], stack: str) -> list[Network]:
    return [n for n in networks if n.labels.get(NAMESPACE_LABEL) == stack]


def plan(
    services: Sequence[Service], networks: Sequence[Network], stack: Stack, prune: bool
) -> StackPlan:
    """The plan that brings the cluster's records to the stack; a file that cannot be
    deployed as a whole (a name taken by another stack or a plain service, a missing
    external network) is refused in one line, so nothing of it is deployed."""

    def refuse(why: str) -> SwarmctlError:
        return SwarmctlError(f"stack {stack.name}: {why}")

    existing = {n.name: n for n in networks}
    new_networks = []
    for network in stack.networks:
        found = existing.get(network.name)
        if network.external:
            if found is None:
                raise refuse(
                    f"network {network.name} is external but does not exist: "
                    f"create it with `swarmctl network create {network.name}`"
                )
        elif network.driver not in DRIVERS:
            raise refuse(f"network {network.name}: driver {network.driver} is not supported")
        elif found is None:
            new_networks.append(network)
        elif found.labels.get(NAMESPACE_LABEL) != stack.name:
            raise refuse(f"network {network.name} already exists{ownership(found.labels)}")
    known = {n.name for n in stack.networks} | set(existing)
    by_name = {s.spec.name: s for s in services}
    create, update, unchanged, seen = [], [], [], set()
    for spec in stack.services:
        if spec.name in seen:
            raise refuse(f"service {spec.name} is defined twice")
        seen.add(spec.name)
        spec = replace(spec, labels={**spec.labels, NAMESPACE_LABEL: stack.name})
        for name in spec.networks:
            if name not in known:
                raise refuse(f"service {spec.name}: network {name} not found")
        current = by_name.get(spec.name)
        if current is None:
            create.append(spec)
            continue
        if current.spec.labels.get(NAMESPACE_LABEL) != stack.name:
            raise refuse(f"service {spec.name} already exists{ownership(current.spec.labels)}")
        if same_image(current.spec.image, spec.image):
            spec = replace(spec, image=current.spec.image)
        changes = diff(current.spec, spec)
        if changes:
            update.append(ServiceUpdate(current, spec, tuple(changes)))
        else:
            unchanged.append(current)
    remove = [s for s in stack_services(services, stack.name) if s.spec.name not in seen]
    return StackPlan(
        stack.name,
        tuple(new_networks),
        tuple(create),
        tuple(update),
        tuple(unchanged),
        tuple(remove) if prune else (),
    )


def ownership(labels: dict[str, str]) -> str:
    """Whose a resource that already exists is, as an error says it."""
    owner = labels.get(NAMESPACE_LABEL)
    return f" in stack {owner}" if owner else " outside any stack"


def same_image(current: str, wanted: str) -> bool:
    """Whether the file's image is the one the service runs: the same reference, or the
    same tag that a deploy pinned to its digest (`nginx` and `nginx:latest@sha256:…`)."""
    if current == wanted:
        return True
    try:
        have, want = ImageRef.parse(current), ImageRef.parse(wanted)
    except SwarmctlError:
        return False
    return (
        want.digest is None
        and have.tag is not None
        and (have.domain, have.path, have.tag) == (want.domain, want.path, want.tag or "latest")
    )


_ABSENT = object()


def diff(before: Any, after: Any, path: str = "") -> list[str]:
    """Field by field, nested fields dotted: `replicas: 2 -> 3`, `update.order: …`,
    `labels.tier: (none) -> web`, `ports[0].published: 80 -> 8080`."""
    if before == after:
        return []
    if dataclasses.is_dataclass(before) and type(before) is type(after):
        found = []
        for f in dataclasses.fields(before):
            field_path = f"{path}.{f.name}" if path else f.name
            found += diff(getattr(before, f.name), getattr(after, f.name), field_path)
        return found
    if isinstance(before, dict) and isinstance(after, dict):
        found = []
        for key in sorted(before.keys() | after.keys()):
            old, new = before.get(key, _ABSENT), after.get(key, _ABSENT)
            found += diff(old, new, f"{path}.{key}")
        return found
    if (
        isinstance(before, tuple)
        and isinstance(after, tuple)
        and len(before) == len(after)
        and all(dataclasses.is_dataclass(v) for v in (*before, *after))
    ):
        found = []
        for index, (old, new) in enumerate(zip(before, after, strict=True)):
            found += diff(old, new, f"{path}[{index}]")
        return found
    return [f"{path}: {shown(before)} -> {shown(after)}"]


def shown(value: Any) -> str:
    if value is _ABSENT:
        return "(none)"
    if value is None:
        return "none"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return value or '""'
    if isinstance(value, tuple):
        return "[" + ", ".join(shown(v) for v in value) + "]"
    if dataclasses.is_dataclass(value):
        parts = [
            f"{f.name}={shown(getattr(value, f.name))}"
            for f in dataclasses.fields(value)
            if not _is_default(f, getattr(value, f.name))
        ]
        return "{" + ", ".join(parts) + "}"
    return str(value)


def _is_default(f: dataclasses.Field, value: Any) -> bool:
    if f.default is not dataclasses.MISSING:
        return value == f.default
    if f.default_factory is not dataclasses.MISSING:
        return value == f.default_factory()
    return False
