"""Services on real hosts: the swarm walkthrough, the routing mesh, names, bad input."""

import collections
import json

import pytest

from swarmctl import netns
from tests.integration.conftest import Cluster

pytestmark = pytest.mark.lab


def http(cluster: Cluster, address: str, port: int = 80) -> str:
    """GET / from the lab's control namespace: what a user's curl would get."""
    with netns.connect(address, port, netns=cluster.lab.layout.ctl_netns, timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    return data.decode().split("\r\n\r\n", 1)[-1].strip()


def task_records(cluster: Cluster, service: str) -> list[dict]:
    """swarmctl's own records of the service's tasks, in `service ps` order."""
    ids = cluster("service", "ps", "-q", service).stdout.split()
    return json.loads(cluster("inspect", "--type", "task", *ids).stdout) if ids else []


def tasks(cluster: Cluster, service: str) -> list[dict]:
    return [t for t in task_records(cluster, service) if t["desired_state"] == "running"]


def hostnames(cluster: Cluster, service: str) -> set[str]:
    """The hostname each running task's container answers with (its short ID)."""
    return {t["container_id"][:12] for t in tasks(cluster, service) if t["state"] == "running"}


@pytest.fixture
def walkthrough(cluster: Cluster) -> Cluster:
    cluster("init", "manager1")
    cluster("join", "--all")
    cluster("network", "create", "-d", "overlay", "ngx_net")
    return cluster


@pytest.mark.modes("online", "offline")
def test_the_swarm_walkthrough(walkthrough: Cluster) -> None:
    cluster = walkthrough
    created = cluster(
        "service",
        "create",
        "--name",
        "nginx",
        "--replicas",
        "1",
        "--network",
        "ngx_net",
        "-p",
        "80:80/tcp",
        "nginx",
    )
    assert "verify: Service converged" in created.stdout
    (only,) = hostnames(cluster, "nginx")
    for host in cluster.lab.hosts:  # the mesh answers on every node
        assert http(cluster, host.address) == only

    scaled = cluster("service", "scale", "nginx=5")
    assert scaled.stdout.startswith("nginx scaled to 5\n")
    running = tasks(cluster, "nginx")
    assert len(running) == 5 and all(t["state"] == "running" for t in running)
    per_node = sorted(collections.Counter(t["node_id"] for t in running).values())
    assert per_node == [1, 2, 2]
    listing = cluster("service", "tasks", "nginx").stdout.splitlines()
    assert listing[0].split()[:4] == ["ID", "NAME", "IMAGE", "NODE"]
    assert sorted(line.split()[1] for line in listing[1:]) == [f"nginx.{i}" for i in range(1, 6)]

    answers = {http(cluster, cluster.lab.hosts[i % 3].address) for i in range(60)}
    assert answers == hostnames(cluster, "nginx")

    # A client on the overlay, on any host, reaches the service by name.
    out = cluster.lab.ssh(
        "worker2",
        "docker run --rm --network ngx_net swarmctl/tools "
        "sh -c 'for i in $(seq 20); do wget -qO- http://nginx/; done'",
    )
    assert set(out.stdout.split()) <= hostnames(cluster, "nginx")
    assert len(set(out.stdout.split())) > 1

    ls = cluster("service", "ls").stdout.splitlines()
    # the image pinned to its digest, shown by its tag as docker does
    # Resolved to a digest, the image shows as swarm shows it; with no registry, as given.
    shown = "nginx" if cluster.lab.offline else "nginx:latest"
    assert ls[1].split()[1:] == ["nginx", "replicated", "5/5", shown, "*:80->80/tcp"]

    cluster("service", "scale", "nginx=2")
    assert len(tasks(cluster, "nginx")) == 2
    assert cluster("service", "rm", "nginx", "--yes").stdout.strip() == "nginx"
    assert cluster("service", "ls", "-q").stdout == ""
    for host in cluster.lab.hosts:
        left = cluster.lab.ssh(
            host.name,
            "docker ps -aq --filter label=swarmctl.task.id;"
            " docker ps -aq --filter label=swarmctl.vip;"
            " iptables -t nat -S | grep -E '^-A SW[IV]-'; true",
        ).stdout
        assert left.strip() == "", host.name
    with pytest.raises(OSError):
        http(cluster, cluster.lab.hosts[0].address)


def test_service_inspect_is_shaped_like_swarms(walkthrough: Cluster) -> None:
    cluster = walkthrough
    cluster(
        "service",
        "create",
        "--name",
        "web",
        "--replicas",
        "2",
        "--network",
        "ngx_net",
        "-p",
        "8080:80",
        "--env",
        "A=1",
        "--label",
        "team=web",
        "--restart-condition",
        "on-failure",
        "--restart-delay",
        "2s",
        "nginx",
    )
    (doc,) = json.loads(cluster("service", "inspect", "web").stdout)
    spec = doc["Spec"]
    assert spec["Name"] == "web" and spec["Labels"] == {"team": "web"}
    assert spec["Mode"] == {"Replicated": {"Replicas": 2}}
    assert spec["TaskTemplate"]["ContainerSpec"]["Env"] == ["A=1"]
    assert spec["TaskTemplate"]["RestartPolicy"]["Condition"] == "on-failure"
    assert spec["TaskTemplate"]["RestartPolicy"]["Delay"] == 2_000_000_000
    assert doc["Endpoint"]["Ports"] == [
        {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080, "PublishMode": "ingress"}
    ]
    (vip,) = doc["Endpoint"]["VirtualIPs"]
    assert vip["Addr"].endswith("/24")
    assert "Replicas:" in cluster("service", "inspect", "--pretty", "web").stdout


def test_a_global_service_runs_once_on_every_node(walkthrough: Cluster) -> None:
    cluster = walkthrough
    cluster("service", "create", "--name", "agent", "--mode", "global", "busybox", "sleep", "1d")
    running = tasks(cluster, "agent")
    assert len(running) == 3
    assert len({t["node_id"] for t in running}) == 3


def test_host_mode_publishes_on_the_tasks_node_only(walkthrough: Cluster) -> None:
    cluster = walkthrough
    cluster(
        "service",
        "create",
        "--name",
        "edge",
        "--network",
        "ngx_net",  # a macvlan network, where Docker publishes nothing
        "--constraint",
        "node.hostname==worker1",
        "-p",
        "mode=host,published=8081,target=80",
        "nginx",
    )
    (task,) = tasks(cluster, "edge")
    assert http(cluster, cluster.lab.host("worker1").address, 8081) == task["container_id"][:12]
    with pytest.raises(OSError):
        http(cluster, cluster.lab.host("worker2").address, 8081)


def test_an_unknown_image_is_rejected_and_create_exits_non_zero(walkthrough: Cluster) -> None:
    result = walkthrough("service", "create", "--name", "ghost", "nosuch/image:1", check=False)
    assert result.returncode == 1
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert "service ghost did not converge (0 of 1 tasks running)" in error
    assert "rejected" in error and "nosuch/image" in error
    (task,) = task_records(walkthrough, "ghost")[:1]
    assert task["state"] == "rejected"


def test_a_constraint_no_node_matches_leaves_the_task_pending_with_the_reason(
    walkthrough: Cluster,
) -> None:
    result = walkthrough(
        "service",
        "create",
        "--name",
        "picky",
        "--constraint",
        "node.labels.gpu==yes",
        "nginx",
        check=False,
    )
    assert result.returncode == 1
    assert "scheduling constraints not satisfied on 3 nodes" in result.stderr
    listing = walkthrough("service", "ps", "picky").stdout
    assert "Pending" in listing


def test_a_node_unreachable_while_creating_gets_no_tasks(walkthrough: Cluster) -> None:
    cluster = walkthrough
    cluster.lab.lab.kill("worker2")
    try:
        result = cluster(
            "service", "create", "--name", "web", "--replicas", "3", "nginx", warnings=True
        )
        assert "worker2" in result.stderr
        running = [t for t in tasks(cluster, "web") if t["state"] == "running"]
        assert len(running) == 3
        worker2 = json.loads(cluster("node", "inspect", "worker2").stdout)[0]
        assert worker2["Status"]["State"] == "down"
        assert worker2["ID"] not in {t["node_id"] for t in running}
    finally:
        cluster.lab.lab.start("worker2")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "x", "--network", "nonet", "nginx"], "Error: network nonet not found"),
        (["--name", "x", "--replicas", "-1", "nginx"], "Error: --replicas -1: must be 0 or more"),
        (
            ["--name", "x;rm", "nginx"],
            "Error: service name 'x;rm': use letters, digits, '_' and "
            "'-' (at most 63, starting with a letter or digit)",
        ),
        (
            ["--name", "x", "-p", "22:80", "nginx"],
            "Error: port 22/tcp is the SSH port swarmctl "
            "reaches nodes on: the routing mesh would take it "
            "over on every node",
        ),
    ],
)
def test_bad_service_input_is_one_line_and_creates_nothing(
    walkthrough: Cluster, args, message
) -> None:
    result = walkthrough("service", "create", *args, check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == message
    assert walkthrough("service", "ls", "-q").stdout == ""


def test_a_duplicate_name_and_a_taken_port_are_refused(walkthrough: Cluster) -> None:
    walkthrough("service", "create", "--name", "web", "-p", "80:80", "nginx")
    again = walkthrough("service", "create", "--name", "web", "nginx", check=False)
    assert again.stderr.strip() == "Error: service web already exists"
    port = walkthrough("service", "create", "--name", "other", "-p", "80:80", "nginx", check=False)
    assert port.stderr.strip() == "Error: port 80/tcp is already published by service web"


def test_service_rm_asks_before_deleting_when_not_told_yes(walkthrough: Cluster) -> None:
    walkthrough("service", "create", "--name", "web", "nginx")
    refused = walkthrough("service", "rm", "web", check=False)
    assert refused.returncode == 1
    assert "--yes" in refused.stderr
    assert walkthrough("service", "ls", "-q").stdout.strip() != ""


@pytest.mark.modes("online", "offline")
def test_a_task_is_stopped_with_its_stop_signal_then_removed(cluster: Cluster) -> None:
    # The task's command records the signal it got in a volume that outlives it; `docker
    # rm -f` (SIGKILL at once) gave it no chance to.
    cluster("init", "manager1")
    cluster("join", "--all")
    trap = "trap 'echo usr1 > /data/stopped; exit 0' USR1; while :; do sleep 0.2; done"
    cluster(
        "service", "create", "--name", "calm", "--stop-signal", "USR1",
        "--stop-grace-period", "30s", "--constraint", "node.hostname==worker1",
        "--mount", "type=volume,source=calm_data,target=/data",
        "swarmctl/tools", "sh", "-c", trap, warnings=True,
    )  # fmt: skip
    cluster("service", "scale", "calm=0")
    left = cluster.lab.ssh("worker1", "docker ps -aq --filter label=swarmctl.service.name=calm")
    assert left.stdout.strip() == ""  # stopped, then removed
    seen = cluster.lab.ssh(
        "worker1", "docker run --rm -v calm_data:/data swarmctl/tools cat /data/stopped"
    )
    assert seen.stdout.strip() == "usr1"
