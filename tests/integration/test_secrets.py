"""Secrets and configs on real hosts: a task reads them at their targets with the asked
owner and mode, from a tmpfs on the node; `secret update` replaces the tasks of the
services using it and the new tasks see the new value; rm is refused while in use; the
value reaches neither the node's disk nor any output."""

import json
from pathlib import Path

import pytest

from tests.integration.conftest import Cluster
from tests.integration.test_supervisor import running

pytestmark = pytest.mark.lab

VALUE = "s3cret-value-4-the-lab"
NEW_VALUE = "rotated-value-2-the-lab"
APP_ARGS = (
    "--name",
    "app",
    "--replicas",
    "2",
    "--secret",
    "source=db_password,target=db_pw,uid=999,gid=998,mode=0400",
    "--secret",
    "api_token",
    "--config",
    "source=app_conf,target=/etc/app.conf,mode=0440",
    "nginx",  # on the hosts in both modes; its busybox has sh, cat and stat
    "sleep",
    "1d",
)


def hostname(cluster: Cluster, node_id: str) -> str:
    return cluster(
        "inspect", "--type", "node", "--format", "{{.Description.Hostname}}", node_id
    ).stdout.strip()


def in_task(cluster: Cluster, task: dict, command: str) -> str:
    host = hostname(cluster, task["node_id"])
    return cluster.lab.ssh(host, f"docker exec {task['container_id']} sh -c '{command}'").stdout


def mount_sources(cluster: Cluster, task: dict) -> list[tuple[str, str]]:
    """(source on the node, the filesystem type there) of each bind mount of the task."""
    host = hostname(cluster, task["node_id"])
    mounts = json.loads(
        cluster.lab.ssh(
            host, f"docker inspect --format '{{{{json .Mounts}}}}' {task['container_id']}"
        ).stdout
    )
    return [
        (
            m["Source"],
            cluster.lab.ssh(host, f"findmnt -n -o FSTYPE --target {m['Source']}").stdout.strip(),
        )
        for m in mounts
        if m["Type"] == "bind"
    ]


@pytest.mark.modes("online", "offline")
def test_a_task_reads_its_secrets_and_configs_and_secret_update_rolls_it(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.env["SWARMCTL_SECRETS_PASSPHRASE"] = "lab passphrase"
    files = {"db_password": VALUE, "api_token": "token-1", "app_conf": "level=1\n"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    outputs = [cluster("init", "manager1").stdout, cluster("join", "--all").stdout]
    outputs += [cluster("secret", "create", name, str(tmp_path / name)).stdout
                for name in ("db_password", "api_token")]  # fmt: skip
    outputs.append(cluster("config", "create", "app_conf", str(tmp_path / "app_conf")).stdout)
    outputs.append(cluster("service", "create", *APP_ARGS).stdout)

    first = running(cluster, "app")
    assert len(first) == 2
    for task in first:
        seen = in_task(
            cluster,
            task,
            'cat /run/secrets/db_pw; echo; stat -c "%a %u %g" /run/secrets/db_pw; '
            "cat /run/secrets/api_token; echo; cat /etc/app.conf; stat -c %a /etc/app.conf",
        )
        assert seen.splitlines() == [VALUE, "400 999 998", "token-1", "level=1", "440"]
        sources = mount_sources(cluster, task)
        assert len(sources) == 3
        for source, fstype in sources:
            assert source.startswith(f"/run/swarmctl/secrets/{task['id']}/")
            assert fstype == "tmpfs"
        host = hostname(cluster, task["node_id"])
        assert VALUE not in cluster.lab.ssh(host, f"docker inspect {task['container_id']}").stdout

    refused = cluster("secret", "rm", "db_password", check=False)
    assert refused.returncode == 1
    assert refused.stderr == "Error: secret db_password is in use by service app\n"

    (tmp_path / "new").write_text(NEW_VALUE)
    outputs.append(cluster("secret", "update", "db_password", str(tmp_path / "new")).stdout)
    second = running(cluster, "app")
    assert len(second) == 2
    assert not {t["id"] for t in second} & {t["id"] for t in first}
    for task in second:
        assert in_task(cluster, task, "cat /run/secrets/db_pw") == NEW_VALUE

    # The replaced tasks' files are gone with their containers.
    for task in first:
        host = hostname(cluster, task["node_id"])
        gone = cluster.lab.ssh(host, f"test -e /run/swarmctl/secrets/{task['id']}", check=False)
        assert gone.returncode == 1

    outputs += [
        cluster("secret", "ls").stdout,
        cluster("secret", "inspect", "db_password").stdout,
        cluster("service", "inspect", "app").stdout,
        cluster("service", "ps", "app").stdout,
        cluster("events", "--since", "1h").stdout,
    ]
    for out in outputs:
        assert VALUE not in out and NEW_VALUE not in out

    cluster("service", "rm", "--yes", "app")
    for host in cluster.lab.hosts:
        left = cluster.lab.ssh(host.name, "ls -A /run/swarmctl/secrets 2>/dev/null", check=False)
        assert left.stdout == ""
    cluster("secret", "rm", "db_password", "api_token")
    assert cluster("secret", "ls", "-q").stdout == ""
