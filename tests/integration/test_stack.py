"""`stack deploy` on real hosts: a stack comes up, a redeploy of the unchanged file
touches no container (container IDs compared on the hosts), a changed service alone is
rolled, --prune removes a dropped one, --dry-run changes nothing and exits 0 or 2, a
file in conflict deploys nothing, a deploy cut short by Ctrl-C is finished by the next,
and `stack rm` takes it all away."""

import hashlib
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import Cluster, interruptible
from tests.integration.test_supervisor import wait_for

pytestmark = pytest.mark.lab

NEVER = ("--resolve-image", "never")  # the tools image is on the hosts; no registry asked


def service(replicas: int, *extra: str) -> str:
    lines = [
        "    image: swarmctl/tools",
        '    command: ["sleep", "1000"]',
        "    deploy:",
        f"      replicas: {replicas}",
        "      update_config: {monitor: 1s}",
        *extra,
    ]
    return "\n".join(lines)


def compose(**services: str) -> str:
    body = "\n".join(f"  {name}:\n{text}" for name, text in services.items())
    return f"services:\n{body}\n"


THREE = {"front": service(2), "app": service(2), "db": service(1)}


@pytest.fixture
def stack(cluster: Cluster, tmp_path: Path):
    cluster("init", "manager1")
    cluster("join", "--all")
    file = tmp_path / "stack.yml"

    def deploy(*args: str, check: bool = True, **services: str):
        file.write_text(compose(**(services or THREE)))
        return cluster("stack", "deploy", *NEVER, "-c", str(file), *args, "web", check=check)

    deploy.cluster = cluster
    deploy.file = file
    return deploy


def containers(cluster: Cluster) -> dict[str, set[str]]:
    """The running containers of the stack's services, by service, on every host."""
    found: dict[str, set[str]] = {}
    for host in cluster.lab.hosts:
        out = cluster.lab.ssh(
            host.name, "docker ps --format '{{.ID}} {{.Label \"swarmctl.service.name\"}}'"
        ).stdout
        for line in out.splitlines():
            container, _, name = line.partition(" ")
            if name.startswith("web_"):
                found.setdefault(name, set()).add(container)
    return found


def state_hash(cluster: Cluster) -> str:
    return hashlib.sha256(Path(cluster.env["SWARMCTL_STATE"]).read_bytes()).hexdigest()


def error_line(stderr: str) -> str:
    (line,) = [x for x in stderr.splitlines() if x.startswith("Error:")]
    return line


@pytest.mark.modes("online", "offline")
def test_a_stack_comes_up_and_an_unchanged_redeploy_touches_no_container(stack) -> None:
    cluster = stack.cluster
    out = stack().stdout
    assert "Creating network web_default" in out
    for name in ("web_front", "web_app", "web_db"):
        assert f"Creating service {name}" in out
    before = containers(cluster)
    assert {n: len(c) for n, c in before.items()} == {"web_front": 2, "web_app": 2, "web_db": 1}
    assert cluster("stack", "ls").stdout.split() == ["NAME", "SERVICES", "web", "3"]
    listed = cluster("stack", "services", "web").stdout
    assert "web_front" in listed and "2/2" in listed and "1/1" in listed
    assert len(cluster("stack", "ps", "-q", "web").stdout.split()) == 5

    dry = stack("--dry-run")
    assert dry.returncode == 0
    assert "0 to create, 0 to update, 0 to remove, 3 unchanged" in dry.stdout

    again = stack()
    assert again.stdout == "Stack web: nothing to change (3 service(s) unchanged)\n"
    assert containers(cluster) == before
    (_, deployed) = cluster("stack", "history", "web").stdout.splitlines()
    assert "web_app:1 web_db:1 web_front:1" in deployed
    assert deployed.endswith("stack.yml (and 1 unchanged redeploy(s))")


@pytest.mark.modes("online", "offline")
def test_a_changed_service_alone_is_rolled_and_prune_removes_a_dropped_one(stack) -> None:
    cluster = stack.cluster
    stack()
    before = containers(cluster)
    changed = {**THREE, "app": service(2, "    environment: [COLOR=blue]")}

    untouched = state_hash(cluster)
    dry = stack("--dry-run", check=False, **changed)
    assert dry.returncode == 2
    assert "~ service web_app\n    env: [] -> [COLOR=blue]" in dry.stdout
    assert state_hash(cluster) == untouched and containers(cluster) == before

    out = stack(**changed).stdout
    assert "Updating service web_app" in out and "web_front" not in out
    after = containers(cluster)
    assert after["web_front"] == before["web_front"] and after["web_db"] == before["web_db"]
    assert len(after["web_app"]) == 2 and not after["web_app"] & before["web_app"]
    assert "env: [] -> [COLOR=blue]" in cluster("service", "history", "web_app").stdout

    out = cluster("stack", "rollback", "web").stdout
    assert "Rolling back service web_app" in out
    rolled = containers(cluster)
    assert rolled["web_front"] == before["web_front"] and rolled["web_db"] == before["web_db"]
    assert not rolled["web_app"] & after["web_app"]

    smaller = {"front": THREE["front"], "app": THREE["app"]}
    dry = stack("--prune", "--dry-run", check=False, **smaller)
    assert dry.returncode == 2 and "- service web_db" in dry.stdout
    assert "Removing service web_db" not in stack(**smaller).stdout  # no --prune: kept
    assert "web_db" in containers(cluster)
    assert "Removing service web_db" in stack("--prune", **smaller).stdout
    wait_for("web_db's container gone", lambda: "web_db" not in containers(cluster))
    assert containers(cluster)["web_front"] == before["web_front"]


def test_an_update_that_pauses_fails_the_deploy_and_the_same_file_again(stack) -> None:
    stack()
    broken = {**THREE, "app": service(2).replace("swarmctl/tools", "swarmctl/missing")}
    first = stack(check=False, **broken)
    assert first.returncode == 1
    assert error_line(first.stderr).startswith(
        "Error: stack web: service web_app: paused: update paused due to failure of task web_app.1"
    )
    again = stack(check=False, **broken)
    assert again.returncode == 1 and "Updating" not in again.stdout
    assert error_line(again.stderr).startswith("Error: stack web: service web_app: paused:")


def test_a_stacks_secret_and_config_reach_its_task_and_a_new_secret_rolls_only_its_user(
    stack, tmp_path: Path
) -> None:
    cluster = stack.cluster
    cluster.env["SWARMCTL_SECRETS_PASSPHRASE"] = "lab passphrase"
    (tmp_path / "key.txt").write_text("first-key")
    (tmp_path / "app.conf").write_text("color=blue")
    files = {"secrets": {"key": {"file": "./key.txt"}}, "configs": {"conf": {"file": "./app.conf"}}}
    uses = ["    secrets: [key]", "    configs: [{source: conf, target: /etc/app.conf}]"]
    body = compose(**{**THREE, "app": service(1, *uses)})
    stack.file.write_text(body + yaml.safe_dump(files))
    argv = ("stack", "deploy", *NEVER, "-c", str(stack.file), "web")
    out = cluster(*argv).stdout
    assert "Creating secret web_key" in out and "Creating config web_conf" in out
    (app,) = containers(cluster)["web_app"]
    read = "cat /run/secrets/key /etc/app.conf"
    assert in_container(cluster, app, read) == "first-keycolor=blue"
    before = containers(cluster)

    (tmp_path / "key.txt").write_text("second-key")
    dry = cluster(*argv[:-1], "--dry-run", "web", check=False)
    assert dry.returncode == 2 and "~ secret web_key (rolls web_app)" in dry.stdout
    assert "second-key" not in dry.stdout + dry.stderr
    out = cluster(*argv).stdout
    assert "Updating secret web_key (rolls web_app)" in out and "second-key" not in out
    after = containers(cluster)
    assert after["web_front"] == before["web_front"] and after["web_db"] == before["web_db"]
    (new_app,) = after["web_app"]
    assert new_app != app and in_container(cluster, new_app, read) == "second-keycolor=blue"

    assert "Removing secret web_key" in cluster("stack", "rm", "-f", "web").stdout
    assert "web_key" not in cluster("secret", "ls").stdout


def in_container(cluster: Cluster, container: str, command: str) -> str:
    for host in cluster.lab.hosts:
        found = cluster.lab.ssh(host.name, f"docker exec {container} {command}", check=False)
        if found.returncode == 0:
            return found.stdout
    raise AssertionError(f"no host runs container {container}")


def test_a_file_in_conflict_deploys_nothing_and_says_why_in_one_line(stack) -> None:
    cluster = stack.cluster
    cluster(
        "service", "create", "-q", "--detach", "--no-resolve-image", "--name", "plain",
        "-p", "8080:80", "swarmctl/tools", "sleep", "1000",
    )  # fmt: skip
    untouched = state_hash(cluster)
    ports = "    ports: ['8080:80']"
    conflicting = {**THREE, "front": service(1, ports)}
    for dry_run in (("--dry-run",), ()):
        result = stack(*dry_run, check=False, **conflicting)
        assert result.returncode == 1
        assert error_line(result.stderr) == (
            "Error: stack web: service web_front: port 8080/tcp is already published by "
            "service plain"
        )
    assert state_hash(cluster) == untouched
    assert "web_default" not in cluster("network", "ls").stdout

    cluster("service", "create", "-q", "--detach", "--no-resolve-image", "--name", "web_db",
            "swarmctl/tools", "sleep", "1000")  # fmt: skip
    result = stack(check=False)
    assert error_line(result.stderr) == (
        "Error: stack web: service web_db already exists outside any stack"
    )
    assert cluster("stack", "ls").stdout.split() == ["NAME", "SERVICES"]


def test_a_deploy_cut_short_by_ctrl_c_is_finished_by_the_next(stack) -> None:
    cluster = stack.cluster
    stack.file.write_text(compose(**THREE))
    process = cluster.popen(
        "stack", "deploy", *NEVER, "-c", str(stack.file), "web",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible,
    )  # fmt: skip
    # Cut short once its first task has started: the deploy is recorded, tasks are not all up.
    wait_for("a first container", lambda: containers(cluster), timeout=120)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    time.sleep(0.5)
    stack()  # the same file: it finishes what the first one began
    found = containers(cluster)
    assert {n: len(c) for n, c in found.items()} == {"web_front": 2, "web_app": 2, "web_db": 1}


def test_stack_rm_asks_unless_forced_then_removes_services_and_networks(stack) -> None:
    cluster = stack.cluster
    stack()
    refused = cluster("stack", "rm", "web", check=False)
    assert refused.returncode == 1 and "confirm with --force" in refused.stderr
    assert len(containers(cluster)) == 3

    out = cluster("stack", "rm", "-f", "web").stdout
    assert "Removing service web_front" in out and "Removing network web_default" in out
    wait_for("the stack's containers gone", lambda: not containers(cluster))
    assert cluster("stack", "ls").stdout.split() == ["NAME", "SERVICES"]
    assert "web_default" not in cluster("network", "ls").stdout
    gone = cluster("stack", "ps", "web", check=False)
    assert gone.returncode == 1 and "nothing found in stack: web" in gone.stderr
