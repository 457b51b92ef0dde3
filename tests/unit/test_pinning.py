"""Image references as docker reads them, and pinning a tag to one digest."""

import threading

import pytest

from swarmctl.errors import SwarmctlError
from swarmctl.models import Node, NodeState, Role
from swarmctl.pinning import (
    DEADLINE_SECONDS,
    RegistryUnreachable,
    ResolveImage,
    UnknownImage,
    pin,
    resolve_mode,
    wants_digest,
)
from swarmctl.spec import ImageRef

DIGEST = "sha256:" + "0123456789abcdef" * 4


# Examples from distribution/reference's normalize tests (ParseNormalizedNamed).
@pytest.mark.parametrize(
    ("text", "domain", "path", "tag", "digest"),
    [
        ("nginx", "docker.io", "library/nginx", None, None),
        ("nginx:1.25", "docker.io", "library/nginx", "1.25", None),
        ("docker.io/nginx", "docker.io", "library/nginx", None, None),
        ("index.docker.io/library/nginx", "docker.io", "library/nginx", None, None),
        ("user/app:v1", "docker.io", "user/app", "v1", None),
        ("localhost/app", "localhost", "app", None, None),
        ("localhost:5000/a/b:t", "localhost:5000", "a/b", "t", None),
        ("reg.example.com/app", "reg.example.com", "app", None, None),
        ("10.0.0.1:5000/app:latest", "10.0.0.1:5000", "app", "latest", None),
        ("[fe80::1]:5000/app", "[fe80::1]:5000", "app", None, None),
        (f"nginx@{DIGEST}", "docker.io", "library/nginx", None, DIGEST),
        (f"nginx:latest@{DIGEST}", "docker.io", "library/nginx", "latest", DIGEST),
        ("a__b/c-d.e:f_G.1", "docker.io", "a__b/c-d.e", "f_G.1", None),
    ],
)
def test_references_read_as_docker_reads_them(text, domain, path, tag, digest) -> None:
    assert ImageRef.parse(text) == ImageRef(domain, path, tag, digest)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty"),
        ("Nginx", "repository name must be lowercase"),
        ("nginx:", "expected [REGISTRY[:PORT]/]NAME[:TAG][@DIGEST]"),
        ("nginx@sha256:abc", "expected [REGISTRY[:PORT]/]NAME[:TAG][@DIGEST]"),
        (f"nginx@sha256:{'ab' * 16}", "a sha256 digest is 64 lowercase hex digits"),
        ("a/-b", "expected [REGISTRY[:PORT]/]NAME[:TAG][@DIGEST]"),
    ],
)
def test_a_bad_reference_is_one_line_naming_it(text: str, why: str) -> None:
    with pytest.raises(SwarmctlError) as caught:
        ImageRef.parse(text)

    assert str(caught.value) == f"image '{text}': invalid reference format ({why})"


@pytest.mark.parametrize(
    ("text", "shown", "brief"),
    [
        ("nginx", "nginx", "nginx"),
        ("nginx:latest", "nginx:latest", "nginx:latest"),
        ("docker.io/library/nginx:1.25", "nginx:1.25", "nginx:1.25"),
        (f"nginx:latest@{DIGEST}", f"nginx:latest@{DIGEST}", "nginx:latest"),
        (f"reg:5000/app@{DIGEST}", f"reg:5000/app@{DIGEST}", f"reg:5000/app@{DIGEST}"),
    ],
)
def test_inspect_shows_the_digest_and_ls_the_tag(text: str, shown: str, brief: str) -> None:
    ref = ImageRef.parse(text)

    assert (ref.shown(), ref.brief()) == (shown, brief)


def test_a_pinned_reference_runs_by_digest_and_is_copied_under_a_tag() -> None:
    ref = ImageRef.parse("reg:5000/app").pinned(DIGEST)

    assert ref.shown() == f"reg:5000/app:latest@{DIGEST}"
    assert ref.by_digest() == f"reg:5000/app@{DIGEST}"
    assert ref.local_tag() == f"reg:5000/app:{DIGEST.replace(':', '-')}"
    assert ImageRef.parse(ref.local_tag()).tag == DIGEST.replace(":", "-")


def test_resolve_modes_as_docker_names_them() -> None:
    assert resolve_mode("always", False) == ResolveImage.ALWAYS
    assert resolve_mode("always", True) == ResolveImage.NEVER
    with pytest.raises(SwarmctlError, match=r"^--resolve-image 'sometimes': use always"):
        resolve_mode("sometimes", False)


@pytest.mark.parametrize(
    ("image", "mode", "previous", "wanted"),
    [
        ("nginx", ResolveImage.ALWAYS, None, True),
        ("nginx", ResolveImage.NEVER, None, False),
        (f"nginx@{DIGEST}", ResolveImage.ALWAYS, None, False),  # already pinned by the user
        ("nginx", ResolveImage.CHANGED, None, True),  # create
        ("nginx", ResolveImage.CHANGED, "nginx", False),  # update that keeps the image
        ("nginx:2", ResolveImage.CHANGED, "nginx", True),
    ],
)
def test_when_a_registry_is_asked(image, mode, previous, wanted) -> None:
    assert wants_digest(image, mode, previous) is wanted


def node(hostname: str, role: Role = Role.WORKER, leader: bool = False) -> Node:
    t = "2026-12-04T12:00:00.000+00:00"
    return Node(hostname, hostname, role, "10.0.0.1", t, t, leader=leader, state=NodeState.READY)


NODES = [node("w1"), node("m2", Role.MANAGER), node("m1", Role.MANAGER, leader=True)]


def test_the_leader_is_asked_first_and_one_answer_is_enough() -> None:
    asked = []

    def inspect(hostname: str, reference: str, timeout: float) -> dict:
        asked.append((hostname, reference))
        return {"Descriptor": {"digest": DIGEST}}

    assert pin("nginx", NODES, inspect) == (f"nginx:latest@{DIGEST}", None)
    assert asked == [("m1", "nginx")]


def test_a_node_that_cannot_be_asked_hands_over_to_the_next() -> None:
    asked = []

    def inspect(hostname: str, reference: str, timeout: float) -> dict:
        asked.append(hostname)
        if hostname != "w1":
            raise SwarmctlError(f"{hostname}: the Docker engine did not answer (refused)")
        return {"Descriptor": {"digest": DIGEST}}

    assert pin("nginx:1.25", NODES, inspect) == (f"nginx:1.25@{DIGEST}", None)
    assert asked == ["m1", "m2", "w1"]


def test_a_registry_out_of_reach_is_not_asked_of_the_other_nodes() -> None:
    asked = []

    def inspect(hostname: str, reference: str, timeout: float) -> dict:
        asked.append(hostname)
        raise RegistryUnreachable(f"{hostname}: GET /distribution: 500 lookup: connection refused")

    image, warning = pin("nginx", NODES, inspect, clock=lambda: 0.0)

    assert (image, asked) == ("nginx", ["m1"])
    assert warning == (
        "image nginx could not be resolved to a digest (m1: GET /distribution: 500 lookup: "
        "connection refused): its tasks run the tag, which may differ between nodes"
    )


def test_a_silent_registry_costs_one_deadline_not_one_per_node() -> None:
    now = [0.0]
    asked = []

    def inspect(hostname: str, reference: str, timeout: float) -> dict:
        asked.append((hostname, timeout))
        now[0] += timeout  # the engine waits for the registry as long as it is let
        raise SwarmctlError(f"{hostname}: the Docker engine did not answer (timed out)")

    image, warning = pin("nginx", NODES, inspect, clock=lambda: now[0])

    assert image == "nginx"
    assert asked == [("m1", DEADLINE_SECONDS)] and now[0] == DEADLINE_SECONDS
    assert warning is not None and "\n" not in warning
    assert warning.startswith("image nginx could not be resolved to a digest (m1: the Docker")
    assert "no answer in time" in warning


def test_the_next_node_has_what_is_left_of_the_one_deadline() -> None:
    now = [0.0]
    asked = []

    def inspect(hostname: str, reference: str, timeout: float) -> dict:
        asked.append((hostname, timeout))
        if hostname == "m1":
            now[0] += 0.5  # an SSH connection that failed after a while
            raise SwarmctlError("m1: cannot connect (no route to host)")
        return {"Descriptor": {"digest": DIGEST}}

    assert pin("nginx", NODES, inspect, clock=lambda: now[0])[0] == f"nginx:latest@{DIGEST}"
    assert asked == [("m1", DEADLINE_SECONDS), ("m2", DEADLINE_SECONDS - 0.5)]


def test_an_answer_without_a_digest_is_not_asked_again() -> None:
    asked = []

    def inspect(hostname: str, reference: str, timeout: float) -> dict:
        asked.append(hostname)
        return {"Descriptor": {}}

    image, warning = pin("nginx", NODES, inspect)

    assert (image, asked) == ("nginx", ["m1"])
    assert warning is not None and "m1: no sha256 digest in the registry's answer" in warning


def test_an_image_the_registry_does_not_have_is_asked_for_once() -> None:
    asked = []

    def inspect(hostname: str, reference: str, timeout: float) -> dict:
        asked.append(hostname)
        raise UnknownImage(f"{hostname}: GET /distribution: 404 manifest unknown")

    image, warning = pin("nosuch/image:1", NODES, inspect)

    assert (image, asked) == ("nosuch/image:1", ["m1"])
    assert warning is not None and "404 manifest unknown" in warning


def test_a_silent_leader_is_left_behind_and_the_next_node_answers() -> None:
    # The leader's engine is stuck (a DNS query of its own that got no answer): after the
    # hedge the next node is asked as well, and its answer stands.
    asked = []
    stuck = threading.Event()

    def inspect(hostname: str, reference: str, timeout: float) -> dict:
        asked.append(hostname)
        if hostname == "m1":
            stuck.wait(timeout)
            raise SwarmctlError("m1: the Docker engine did not answer (TimeoutError)")
        return {"Descriptor": {"digest": DIGEST}}

    try:
        assert pin("nginx", NODES, inspect, hedge=0.01) == (f"nginx:latest@{DIGEST}", None)
    finally:
        stuck.set()
    assert asked == ["m1", "m2"]
