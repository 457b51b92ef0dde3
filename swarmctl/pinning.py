"""Pin a service's image to one digest, as swarm's `--resolve-image` does.

A tag is resolved once, at create, through a node's Engine API (`GET
/distribution/{name}/json`): the node asks its registry, so the control node needs no
registry access. The spec then names `name:tag@sha256:…` and every task runs that digest,
whatever an older pull left under the tag on its node. A registry that cannot be reached
costs one warning and at most one bounded wait; the service then runs the tag, as before.
"""

import queue
import threading
import time
from collections.abc import Callable, Sequence
from enum import StrEnum

from swarmctl.errors import SwarmctlError
from swarmctl.models import Node, Role
from swarmctl.spec import SHA256_RE, ImageRef

# A node's engine answers from its registry in about a second when it can reach it (a
# public registry's token round trip included), and at once when it cannot (refused
# connection, failed DNS lookup). Only a registry that stays silent costs this wait, once
# for the whole resolve, not once per node; 2 s failed resolves on a busy 2-core machine.
DEADLINE_SECONDS = 5.0
# An engine silent this long is often stuck on its own node (a DNS query that got no
# answer costs docker 5 s, then 5 more): the next node is asked as well, and the first
# answer stands. A registry that answers in time is asked once.
HEDGE_SECONDS = 1.5


class UnknownImage(SwarmctlError):
    """The registry answered that it has no such image: asking more nodes costs requests."""


class RegistryUnreachable(SwarmctlError):
    """The node's engine answered that it could not get to the registry. The nodes of a
    cluster share their way to it, so asking the others would only repeat the answer."""


class ResolveImage(StrEnum):
    ALWAYS = "always"
    CHANGED = "changed"
    NEVER = "never"


def resolve_mode(value: str, no_resolve: bool) -> ResolveImage:
    if no_resolve:
        return ResolveImage.NEVER
    try:
        return ResolveImage(value)
    except ValueError:
        raise SwarmctlError(f"--resolve-image '{value}': use always, changed or never") from None


def wants_digest(image: str, mode: ResolveImage, previous: str | None = None) -> bool:
    """Whether to ask a registry: not with `never`, not for a reference that already names
    a digest, and with `changed` only when the image differs from the spec's before."""
    if mode == ResolveImage.NEVER or ImageRef.parse(image).digest:
        return False
    return mode == ResolveImage.ALWAYS or previous is None or image != previous


def ask_order(nodes: Sequence[Node]) -> list[Node]:
    """The leader first, then the other managers, then workers. The next node is asked
    only when the ones asked could not be, or stayed silent for HEDGE_SECONDS, so a
    resolve costs the registry one manifest request unless a node is stuck."""
    return sorted(nodes, key=lambda n: (not n.leader, n.role != Role.MANAGER, n.hostname))


def pin(
    image: str,
    nodes: Sequence[Node],
    inspect: Callable[[str, str, float], dict],
    clock: Callable[[], float] = time.monotonic,
    hedge: float = HEDGE_SECONDS,
) -> tuple[str, str | None]:
    """The image pinned to its digest, or as given with a one-line warning.

    inspect(hostname, reference, timeout) returns the engine's distribution document or
    raises SwarmctlError: UnknownImage or RegistryUnreachable when the engine answered
    for its registry (the answer stands), any other when the node could not be asked
    (the next node is, in the time left). Nodes are asked from threads of their own, so a
    silent one is left behind (its own timeout ends it) rather than waited for."""
    ref = ImageRef.parse(image)
    deadline = clock() + DEADLINE_SECONDS
    waiting = ask_order(nodes)
    answers: queue.Queue[tuple[Node, dict | None, SwarmctlError | None]] = queue.Queue()
    asking: set[str] = set()
    failures: list[str] = []

    def ask_next() -> None:
        node, left = waiting.pop(0), deadline - clock()
        if left <= 0:
            waiting.clear()
            failures.append("no answer in time")
            return

        def ask() -> None:
            try:
                answers.put((node, inspect(node.hostname, ref.brief(), left), None))
            except SwarmctlError as error:
                answers.put((node, None, error))

        asking.add(node.hostname)
        threading.Thread(target=ask, name=f"resolve-{node.hostname}", daemon=True).start()

    if waiting:
        ask_next()
    while asking:
        left = max(0.0, deadline - clock())
        try:
            node, document, error = answers.get(timeout=min(left, hedge) if waiting else left)
        except queue.Empty:
            if not left:
                failures.append("no answer in time")
                break
            if waiting:
                ask_next()
            continue
        asking.discard(node.hostname)
        if error is not None:
            failures.append(str(error).splitlines()[0] if str(error) else node.hostname)
            if isinstance(error, UnknownImage | RegistryUnreachable):
                break
            if waiting:
                ask_next()
            continue
        digest = (document or {}).get("Descriptor", {}).get("digest", "")
        if SHA256_RE.fullmatch(digest):
            return ref.pinned(digest).shown(), None
        failures.append(f"{node.hostname}: no sha256 digest in the registry's answer")
        break
    why = "; ".join(failures) or "no node to ask"
    return image, (
        f"image {image} could not be resolved to a digest ({why}): "
        "its tasks run the tag, which may differ between nodes"
    )
