"""The same Compose file through `docker stack deploy` on real swarm mode and through
`swarmctl stack deploy`, on the same lab hosts: the services that result must match in
what the file said, so a user can move a stack between the two unchanged."""

import json
import shlex

import pytest

from tests.integration.conftest import WIPE_HOST, Cluster

pytestmark = pytest.mark.lab

STACK = "cmp"
# Host-mode ports: this kernel has no IPVS, so swarm's ingress mesh cannot run here.
FILE = """\
version: "3.8"
services:
  front:
    image: nginx
    environment:
      GREETING: hello
      TIER: front
    ports:
      - {target: 80, published: 8088, protocol: tcp, mode: host}
    networks: [back]
    deploy:
      replicas: 2
      labels: {team: web}
      placement:
        max_replicas_per_node: 1
      update_config: {parallelism: 1, order: start-first}
  db:
    image: nginx
    command: ["sleep", "1d"]
    volumes:
      - data:/data
      - type: tmpfs
        target: /scratch
    networks: [back]
    deploy:
      replicas: 1
      placement:
        constraints: ["node.role==worker"]
networks:
  back: {}
volumes:
  data: {}
"""


def projection(doc: dict, network_names: dict[str, str]) -> dict:
    """What the file decided about a service, from a `service inspect` document."""
    spec = doc["Spec"]
    container = spec["TaskTemplate"]["ContainerSpec"]
    placement = spec["TaskTemplate"].get("Placement", {})
    return {
        "name": spec["Name"],
        "labels": spec.get("Labels", {}),
        "image": container["Image"].split("@")[0],
        "args": container.get("Args", []),
        "env": sorted(container.get("Env", [])),
        "mounts": sorted(
            (m["Type"], m.get("Source", ""), m["Target"]) for m in container.get("Mounts", [])
        ),
        "replicas": spec["Mode"]["Replicated"]["Replicas"],
        "ports": sorted(
            (p["Protocol"], p["TargetPort"], p["PublishedPort"], p["PublishMode"])
            for p in spec.get("EndpointSpec", {}).get("Ports", [])
        ),
        "networks": sorted(network_names[n["Target"]] for n in spec["TaskTemplate"]["Networks"])
        if "Networks" in spec["TaskTemplate"]
        else sorted(network_names[n["Target"]] for n in spec.get("Networks", [])),
        "constraints": placement.get("Constraints", []),
        "max_per_node": placement.get("MaxReplicas", 0),
        "update": (spec["UpdateConfig"]["Parallelism"], spec["UpdateConfig"]["Order"]),
    }


def swarm_services(cluster: Cluster) -> dict[str, dict]:
    lab = cluster.lab
    manager = lab.host("manager1").address
    lab.ssh("manager1", f"docker swarm init --advertise-addr {manager} >/dev/null")
    try:
        token = lab.ssh("manager1", "docker swarm join-token -q worker").stdout.strip()
        for host in lab.hosts[1:]:
            lab.ssh(host.name, f"docker swarm join --token {token} {manager}:2377 >/dev/null")
        lab.ssh("manager1", f"cat > /tmp/{STACK}.yml <<'EOF'\n{FILE}EOF")
        lab.ssh("manager1", f"docker stack deploy -c /tmp/{STACK}.yml {STACK} >/dev/null")
        ids = lab.ssh(
            "manager1", f"docker service ls -q --filter label=com.docker.stack.namespace={STACK}"
        ).stdout.split()
        docs = json.loads(lab.ssh("manager1", f"docker service inspect {shlex.join(ids)}").stdout)
        networks = json.loads(
            lab.ssh("manager1", "docker network inspect $(docker network ls -q)").stdout
        )
        names = {n["Id"]: n["Name"] for n in networks}
        return {d["Spec"]["Name"]: projection(d, names) for d in docs}
    finally:
        for host in reversed(lab.hosts):
            lab.ssh(host.name, "docker swarm leave --force >/dev/null 2>&1", check=False)
        for host in lab.hosts:  # swarm's tasks, volumes and bridge: swarmctl starts clean
            lab.ssh(host.name, WIPE_HOST, check=False)
            lab.ssh(host.name, "docker network rm docker_gwbridge >/dev/null 2>&1", check=False)


def swarmctl_services(cluster: Cluster, tmp_path) -> dict[str, dict]:
    path = tmp_path / f"{STACK}.yml"
    path.write_text(FILE)
    cluster("init", "manager1")
    cluster("join", "--all")
    cluster("stack", "deploy", "-c", str(path), STACK)
    docs = json.loads(cluster("service", "inspect", f"{STACK}_db", f"{STACK}_front").stdout)
    networks = json.loads(cluster("network", "inspect", f"{STACK}_back").stdout)
    ids = {n["Id"]: n["Name"] for n in networks}
    return {d["Spec"]["Name"]: projection(d, ids) for d in docs}


def test_a_stack_file_gives_the_same_services_on_swarm_mode_and_on_swarmctl(
    cluster: Cluster, tmp_path
) -> None:
    swarm = swarm_services(cluster)
    mine = swarmctl_services(cluster, tmp_path)
    assert sorted(swarm) == sorted(mine) == [f"{STACK}_db", f"{STACK}_front"]
    for name in swarm:
        assert mine[name] == swarm[name], name
