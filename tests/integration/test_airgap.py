"""Air-gapped nodes: no registry reachable, images only by `image load` (or a peer).

The lab's hosts pull through the lab registry; here each host first gets what the tests
run (nginx, swarmctl/tools), then rejects every packet to the registry, and loses any
helper image, so nothing can be pulled from anywhere.
"""

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import Cluster, RunningLab, unexpected_warnings
from tests.integration.test_services import hostnames, http, task_records

pytestmark = pytest.mark.lab
PROBE = "airgap/probe:1"


@pytest.fixture(scope="module")
def no_registry(lab: RunningLab) -> RunningLab:
    block = f"OUTPUT -d {lab.layout.registry_address} -j REJECT"
    for host in lab.hosts:
        lab.ssh(
            host.name,
            "docker pull -q nginx >/dev/null && docker pull -q swarmctl/tools >/dev/null"
            f" && {{ docker rmi -f busybox swarmctl/pause:1 {PROBE} >/dev/null 2>&1; true; }}"
            f" && iptables -I {block}",
        )
    yield lab
    for host in lab.hosts:
        lab.ssh(host.name, f"iptables -D {block}", check=False)


@pytest.fixture
def airgapped(no_registry: RunningLab, cluster: Cluster) -> Cluster:
    cluster("init", "manager1")
    cluster("join", "--all")
    cluster("network", "create", "-d", "overlay", "ngx_net")
    return cluster


def has_probe(lab: RunningLab, host: str) -> bool:
    return bool(lab.ssh(host, f"docker images -q {PROBE}").stdout.strip())


@pytest.fixture
def probe_archive(no_registry: RunningLab, tmp_path: Path) -> Path:
    """An image none of the nodes has, as `docker save` wrote it."""
    lab = no_registry
    argv = lab.lab.ssh_argv("manager1", [f"docker tag nginx {PROBE} && docker save {PROBE}"])
    archive = tmp_path / "probe.tar"
    archive.write_bytes(subprocess.run(argv, capture_output=True, check=True).stdout)
    lab.ssh("manager1", f"docker rmi {PROBE}")
    yield archive
    for host in lab.hosts:
        lab.ssh(host.name, f"docker rmi {PROBE}", check=False)


def test_no_host_can_pull(no_registry: RunningLab) -> None:
    pulled = no_registry.ssh("worker1", "docker pull busybox", check=False)
    assert pulled.returncode != 0


def test_the_mesh_and_names_work_with_no_registry(airgapped: Cluster) -> None:
    cluster = airgapped
    created = cluster(
        "service",
        "create",
        "--name",
        "nginx",
        "-p",
        "80:80",
        "--network",
        "ngx_net",
        "nginx",
        warnings=True,
    )
    # Nothing but the registry that cannot be reached (the tag then runs): no mesh step.
    assert unexpected_warnings(created.stderr, offline=True) == []
    (only,) = hostnames(cluster, "nginx")
    for host in cluster.lab.hosts:
        assert http(cluster, host.address) == only
    for host in cluster.lab.hosts:  # a name resolves from the overlay on every node
        out = cluster.lab.ssh(
            host.name, "docker run --rm --network ngx_net swarmctl/tools wget -qO- http://nginx/"
        )
        assert out.stdout.strip() == only


def test_a_missing_bind_source_is_reported_with_dockers_error(airgapped: Cluster) -> None:
    result = airgapped(
        "service",
        "create",
        "--name",
        "bad",
        "--mount",
        "type=bind,source=/nonexistent,target=/x",
        "nginx",
        check=False,
    )
    assert result.returncode == 1
    assert "bind source path does not exist: /nonexistent" in result.stderr
    assert "--help" not in result.stderr
    task = task_records(airgapped, "bad")[0]
    assert "bind source path does not exist" in task["error"]


def test_image_load_puts_the_image_on_every_node(airgapped: Cluster, probe_archive: Path) -> None:
    loaded = airgapped("image", "load", "-i", str(probe_archive))
    assert loaded.stdout.strip() == f"Loaded {PROBE} on manager1, worker1, worker2"
    assert all(has_probe(airgapped.lab, h.name) for h in airgapped.lab.hosts)


def test_image_load_from_stdin_to_one_node(airgapped: Cluster, probe_archive: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "swarmctl", "image", "load", "--node", "worker1"],
        stdin=probe_archive.open("rb"),
        env=airgapped.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert [has_probe(airgapped.lab, h) for h in ("manager1", "worker1", "worker2")] == [
        False,
        True,
        False,
    ]


def test_a_corrupt_archive_is_refused_before_any_node_is_touched(
    airgapped: Cluster, probe_archive: Path, tmp_path: Path
) -> None:
    corrupt = tmp_path / "corrupt.tar"
    corrupt.write_bytes(probe_archive.read_bytes()[:4096])
    state = Path(airgapped.env["SWARMCTL_STATE"])
    before = hashlib.sha256(state.read_bytes()).hexdigest()
    result = airgapped("image", "load", "-i", str(corrupt), check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: {corrupt}: not a readable image archive (unexpected end of data), "
        "so no node was touched"
    ]
    assert hashlib.sha256(state.read_bytes()).hexdigest() == before
    assert not any(has_probe(airgapped.lab, h.name) for h in airgapped.lab.hosts)


def test_image_load_names_a_node_that_is_down_and_loads_the_others(
    airgapped: Cluster, probe_archive: Path
) -> None:
    airgapped.lab.lab.kill("worker2")
    try:
        result = airgapped("image", "load", "-i", str(probe_archive), check=False)
        assert result.returncode == 1
        assert result.stdout.strip() == f"Loaded {PROBE} on manager1, worker1"
        (error,) = result.stderr.strip().splitlines()
        assert error.startswith("Error: worker2: not loaded: ")
        assert has_probe(airgapped.lab, "manager1") and has_probe(airgapped.lab, "worker1")
    finally:
        airgapped.lab.lab.start("worker2")
