"""One image version per service on real hosts: create pins the tag to the registry's
digest, every node runs that digest, a replaced task never asks the registry again."""

import json
import re
import time
from collections.abc import Iterator

import pytest

from tests.integration.conftest import Cluster
from tests.integration.test_supervisor import Supervisor, running, wait_for

pytestmark = pytest.mark.lab


def manifest_requests(cluster: Cluster) -> int:
    """Requests for manifests the lab registry has logged (Docker Hub counts these)."""
    log = cluster.lab.layout.dir / "registry" / "registry.log"
    return len(re.findall(r'"(?:GET|HEAD) /v2/[^ ]*/manifests/', log.read_text(errors="replace")))


def image_of(cluster: Cluster, host: str, ref: str) -> str:
    inspect = f"docker image inspect --format '{{{{.Id}}}}' {ref}"
    return cluster.lab.ssh(host, inspect).stdout.strip()


@pytest.fixture
def pinned(cluster: Cluster) -> Iterator[Cluster]:
    cluster("init", "manager1")
    cluster("join", "--all")
    # worker1 holds a stale nginx:latest: another image under the same tag
    stale = "docker pull -q busybox >/dev/null && docker tag busybox nginx:latest"
    cluster.lab.ssh("worker1", stale)
    yield cluster


def test_create_pins_the_tag_and_every_node_runs_that_digest(pinned: Cluster) -> None:
    cluster = pinned
    before = manifest_requests(cluster)
    cluster("service", "create", "--name", "web", "--mode", "global", "nginx")

    (spec,) = json.loads(cluster("service", "inspect", "web").stdout)
    image = spec["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
    assert re.fullmatch(r"nginx:latest@sha256:[0-9a-f]{64}", image), image
    digest = image.split("@")[1]
    ls = cluster("service", "ls").stdout
    assert "nginx:latest" in ls and "sha256" not in ls
    assert "sha256" not in cluster("service", "ps", "web").stdout
    for host in cluster.lab.hosts:  # worker1 too, whose nginx:latest is busybox
        (container,) = cluster.lab.ssh(
            host.name, "docker ps -q --filter label=swarmctl.service.name=web"
        ).stdout.split()
        runs = cluster.lab.ssh(
            host.name, f"docker inspect --format '{{{{.Image}}}}' {container}"
        ).stdout.strip()
        assert runs == image_of(cluster, host.name, f"nginx@{digest}")
    created = manifest_requests(cluster) - before
    assert created > 0  # the log counts them
    print(f"\nmanifest requests for create on 3 nodes: {created}")

    # A killed task's replacement runs from what its node holds: no registry request.
    supervisor = Supervisor(cluster)
    try:
        (victim,) = [t for t in running(cluster, "web") if t["node_id"]][:1]
        host = json.loads(cluster("node", "inspect", victim["node_id"]).stdout)[0]
        name = host["Description"]["Hostname"]
        quiet = manifest_requests(cluster)
        cluster.lab.ssh(name, f"docker rm -f {victim['container_id']}")
        wait_for(
            "a replacement task",
            lambda: any(
                t["node_id"] == victim["node_id"] and t["id"] != victim["id"]
                for t in running(cluster, "web")
            ),
        )
    finally:
        supervisor.stop()
    assert manifest_requests(cluster) == quiet


def test_no_resolve_image_keeps_the_tag(pinned: Cluster) -> None:
    pinned("service", "create", "--name", "web", "--no-resolve-image", "nginx")

    (spec,) = json.loads(pinned("service", "inspect", "web").stdout)
    assert spec["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] == "nginx"


def test_a_registry_out_of_reach_leaves_the_tag_with_one_warning(cluster: Cluster) -> None:
    cluster("init", "manager1")
    cluster("join", "--all")
    for host in cluster.lab.hosts:  # every node holds the image already
        cluster.lab.ssh(host.name, "docker pull -q nginx >/dev/null")
    block = f"OUTPUT -d {cluster.lab.layout.registry_address} -j DROP"
    for host in cluster.lab.hosts:  # a silent registry: the hostile case
        cluster.lab.ssh(host.name, f"iptables -I {block}")
    try:
        started = time.monotonic()
        created = cluster("service", "create", "--name", "web", "nginx", warnings=True)
        took = time.monotonic() - started
    finally:
        for host in cluster.lab.hosts:
            cluster.lab.ssh(host.name, f"iptables -D {block}", check=False)

    warnings = [line for line in created.stderr.splitlines() if line.startswith("Warning")]
    assert len(warnings) == 1
    assert warnings[0].startswith("Warning: image nginx could not be resolved to a digest (")
    assert "verify: Service converged" in created.stdout
    (spec,) = json.loads(cluster("service", "inspect", "web").stdout)
    assert spec["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] == "nginx"
    print(f"\ncreate with the registry out of reach: {took:.1f} s")
