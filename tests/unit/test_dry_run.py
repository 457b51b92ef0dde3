"""`--dry-run` of the commands that change a cluster, as a user runs them on a state file
built here (no hosts): the plan printed, exit 2 when something would change and 0 when
nothing would, bad input refused in one line, and the state file's bytes untouched.
"""

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from swarmctl import convergence, secrets, services
from swarmctl.models import FileRef, PortSpec, ServiceSpec, TaskState
from swarmctl.network import networking
from swarmctl.stack.model import NAMESPACE_LABEL, StackDeploy
from swarmctl.state import StateStore
from swarmctl.state.repo import Repo
from tests.unit.test_membership_cli import make_state, one_error, swarmctl

WEB = ServiceSpec("web", "nginx", replicas=2, networks=("front",), ports=(PortSpec(80, 8080),))
HOSTS = ("manager1", "manager2", "worker1", "worker2")


@pytest.fixture
def cluster(tmp_path: Path) -> Path:
    """Four nodes (worker2 drained), network front, service web: 2 tasks running."""
    path = make_state(tmp_path / "cluster.state.json")
    (tmp_path / "hosts.yml").write_text(
        "all:\n  hosts:\n"
        + "".join(f"    {h}: {{ansible_host: 10.9.0.{i}}}\n" for i, h in enumerate(HOSTS, 1))
    )
    with StateStore(path).transaction() as db:
        repo = Repo(db)
        networking.record_new(repo, networking.NetworkOptions("front"))
        services.record_create(repo, WEB, ())
        plan = convergence.reconcile_now(repo, datetime.now(UTC))
        repo.tasks.put_many(
            replace(t, state=TaskState.RUNNING, container_id=f"c{t.slot}") for t in plan.create
        )
    return path


def dry_run(cluster: Path, command: str, *args: str) -> tuple[int, str]:
    """Run `command --dry-run ARGS…`; its exit status and output, the state unchanged."""
    before = cluster.read_bytes()
    inventory = str(cluster.with_name("hosts.yml"))
    result = swarmctl(
        "-i", inventory, "--state", str(cluster), *command.split(), "--dry-run", *args
    )  # fmt: skip
    assert result.stderr == "" or result.returncode == 1, result.stderr
    assert cluster.read_bytes() == before
    return result.returncode, result.stdout


def test_service_create_plans_its_tasks_on_the_nodes_the_scheduler_picks(cluster) -> None:
    assert dry_run(cluster, "service create", "--name", "api", "--replicas", "3", "app:1") == (
        2,
        "+ service api (app:1, 3 replica(s))\n"
        "+ task api.1 on worker1\n"
        "+ task api.2 on manager1\n"
        "+ task api.3 on manager2\n",
    )


def test_service_create_with_a_port_and_a_network_plans_the_mesh_on_every_node(cluster) -> None:
    code, out = dry_run(
        cluster, "service create", "--name", "api", "--network", "front", "-p", "9090:80",
        "app:1",
    )  # fmt: skip
    assert code == 2
    assert out.splitlines()[:4] == [
        "+ service api (app:1, 1 replica(s))",
        "+ ingress port 9090/tcp on manager1, manager2, worker1, worker2",
        "+ virtual IP 10.0.1.3 on manager1, manager2, worker1, worker2",
        "+ VIP helper swarmctl-vip.api.front (10.0.1.3) on manager1, manager2, worker1, worker2",
    ]
    assert out.splitlines()[4:] == ["+ task api.1 on worker1"]


def test_scaling_up_and_down_names_the_tasks_that_start_and_stop(cluster) -> None:
    assert dry_run(cluster, "service scale", "web=3") == (
        2,
        "~ service web\n    replicas: 2 -> 3\n+ task web.3 on worker1\n",
    )
    code, out = dry_run(cluster, "service scale", "web=1")
    assert code == 2
    assert out == "~ service web\n    replicas: 2 -> 1\n- task web.2 on manager2 (scaled down)\n"


def test_a_change_that_changes_nothing_exits_0(cluster) -> None:
    assert dry_run(cluster, "service scale", "web=2") == (0, "Nothing would change.\n")
    assert dry_run(cluster, "service update", "--replicas", "2", "web") == (
        0,
        "Nothing would change.\n",
    )


def test_service_update_prints_the_changed_fields_and_the_first_batch(cluster) -> None:
    code, out = dry_run(cluster, "service update", "--image", "nginx:2", "--env-add", "A=1", "web")
    assert code == 2
    assert out == (
        "~ service web\n"
        "    image: nginx -> nginx:2\n"
        "    env: [] -> [A=1]\n"
        "~ tasks of web: 2 to replace, 1 at a time (stop-first); the first batch:\n"
        "- task web.1 on manager1 (updated)\n"
        "+ task web.1 on manager1\n"
    )


def test_service_rm_plans_its_containers_and_mesh_rules_gone(cluster) -> None:
    code, out = dry_run(cluster, "service rm", "web")
    assert code == 2
    every = "on manager1, manager2, worker1, worker2"
    assert out.splitlines() == [
        "- service web",
        f"- ingress port 8080/tcp {every}",
        f"- virtual IP 10.0.1.2 {every}",
        f"- VIP helper swarmctl-vip.web.front (10.0.1.2) {every}",
        "- task web.1 on manager1 (service removed)",
        "- task web.2 on manager2 (service removed)",
    ]


def test_draining_a_node_plans_its_tasks_moved_with_the_update_policy(cluster) -> None:
    code, out = dry_run(cluster, "node update", "--availability", "drain", "manager2")
    assert code == 2
    assert out == (
        "~ node manager2\n"
        "    availability: active -> drain\n"
        "~ tasks of web: 1 to replace, 1 at a time (stop-first); the first batch:\n"
        "- task web.2 on manager2 (drained)\n"
        "+ task web.2 on worker1\n"
    )


def test_leave_plans_the_host_cleaned_its_overlay_peers_and_its_tasks_elsewhere(cluster) -> None:
    code, out = dry_run(cluster, "leave", "manager2")
    assert code == 2
    assert out.splitlines() == [
        "- node manager2",
        "- overlay front peer manager2 (10.0.0.8) on manager1, worker1, worker2",
        "- overlay ingress peer manager2 (10.0.0.8) on manager1, worker1, worker2",
        "- overlay front on manager2",
        "- overlay ingress on manager2",
        "- task web.2 on manager2 (node left the cluster)",
        "+ task web.2 on worker1",
        "- every container of the cluster on manager2 (the host is cleaned)",
        "  (the supervisor starts the tasks of a node that left elsewhere)",
    ]


def test_network_create_and_rm_plan_the_overlay_on_every_node(cluster) -> None:
    assert dry_run(cluster, "network create", "back") == (
        2,
        "+ network back (10.0.3.0/24)\n+ overlay back on manager1, manager2, worker1, worker2\n",
    )
    code, _ = dry_run(cluster, "network rm", "front")
    assert code == 1  # web uses it


def test_bad_input_is_refused_in_one_line_and_writes_nothing(cluster) -> None:
    inventory = str(cluster.with_name("hosts.yml"))
    before = cluster.read_bytes()
    for command, args, error in [
        ("service scale", ["nosuch=2"], "service 'nosuch' not found"),
        ("service create", ["--name", "web", "nginx"], "service web already exists"),
        ("network rm", ["front"], "network front is in use by service web: remove the service"),
        ("leave", ["manager1"], "node manager1 is the leader: removing it needs --force"),
    ]:
        result = swarmctl(
            "-i", inventory, "--state", str(cluster), *command.split(), "--dry-run", *args
        )  # fmt: skip
        assert result.returncode == 1 and one_error(result).startswith(error)
    assert cluster.read_bytes() == before


def test_a_secrets_value_never_appears_in_a_plan(cluster, monkeypatch) -> None:
    monkeypatch.setenv("SWARMCTL_SECRETS_PASSPHRASE", "a passphrase")
    with StateStore(cluster).transaction() as db:
        secrets.put(Repo(db), "secret", "key", b"hunter2-value")
    before = cluster.read_bytes()
    inventory = str(cluster.with_name("hosts.yml"))
    result = swarmctl(
        "-i", inventory, "--state", str(cluster), "service", "update", "--dry-run",
        "--secret-add", "key", "web", env={"SWARMCTL_SECRETS_PASSPHRASE": "a passphrase"},
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "secrets: [] -> [{source=key" in result.stdout
    assert "hunter2" not in result.stdout + result.stderr
    assert cluster.read_bytes() == before


def test_a_secrets_new_value_plans_its_users_rolled_never_the_value(cluster, monkeypatch) -> None:
    passphrase = {"SWARMCTL_SECRETS_PASSPHRASE": "a passphrase"}
    monkeypatch.setenv("SWARMCTL_SECRETS_PASSPHRASE", "a passphrase")
    with StateStore(cluster).transaction() as db:
        repo = Repo(db)
        secrets.put(repo, "secret", "key", b"hunter2-one")
        (web,) = repo.services.all()
        repo.services.put(replace(web, spec=replace(web.spec, secrets=(FileRef("key", "key"),))))
    value = cluster.with_name("value")
    value.write_text("hunter2-two")
    before = cluster.read_bytes()
    inventory = str(cluster.with_name("hosts.yml"))
    result = swarmctl(
        "-i", inventory, "--state", str(cluster), "secret", "update", "--dry-run", "key",
        str(value), env=passphrase,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stdout == (
        "~ secret key: a new value (version 2)\n"
        "~ service web (every task replaced, spec unchanged)\n"
        "~ tasks of web: 2 to replace, 1 at a time (stop-first); the first batch:\n"
        "- task web.1 on manager1 (updated)\n"
        "+ task web.1 on manager1\n"
    )
    assert "hunter2" not in result.stdout + result.stderr
    assert cluster.read_bytes() == before
    result = swarmctl(
        "-i", inventory, "--state", str(cluster), "secret", "rm", "--dry-run", "key", env=passphrase
    )
    assert one_error(result).startswith("secret key is in use by service web")


def test_a_stack_does_not_take_over_a_secret_of_no_stack(cluster, monkeypatch) -> None:
    monkeypatch.setenv("SWARMCTL_SECRETS_PASSPHRASE", "a passphrase")
    with StateStore(cluster).transaction() as db:
        secrets.put(Repo(db), "secret", "st_pw", b"the user's own")
    (cluster.with_name("pw.txt")).write_text("the stack's")
    cluster.with_name("st.yml").write_text(
        "services:\n  app:\n    image: app:1\n    secrets: [pw]\n"
        "secrets:\n  pw:\n    file: ./pw.txt\n"
    )
    for dry in (["--dry-run"], []):
        before = cluster.read_bytes()
        result = swarmctl(
            "-i", str(cluster.with_name("hosts.yml")), "--state", str(cluster), "stack",
            "deploy", "-c", str(cluster.with_name("st.yml")), *dry, "st",
            env={"SWARMCTL_SECRETS_PASSPHRASE": "a passphrase"},
        )  # fmt: skip
        assert one_error(result) == (
            "stack st: secret st_pw already exists outside any stack "
            "(mark it external: true to use it)"
        )
        assert cluster.read_bytes() == before


def test_stack_rm_keeps_a_stack_secret_another_service_uses_and_says_so(
    cluster, monkeypatch
) -> None:
    monkeypatch.setenv("SWARMCTL_SECRETS_PASSPHRASE", "a passphrase")
    with StateStore(cluster).transaction() as db:
        repo = Repo(db)
        stack = {NAMESPACE_LABEL: "st"}
        secrets.put(repo, "secret", "st_pw", b"v", stack)
        secrets.put(repo, "config", "st_conf", b"c", stack)
        (web,) = repo.services.all()
        repo.services.put(replace(web, spec=replace(web.spec, secrets=(FileRef("st_pw", "pw"),))))
        repo.deploys.put(StackDeploy("d1", "st", 1, web.created_at, "digest"))
    result = swarmctl(
        "-i", str(cluster.with_name("hosts.yml")), "--state", str(cluster), "stack", "rm", "-f",
        "st", env={"SWARMCTL_SECRETS_PASSPHRASE": "a passphrase"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Removing config st_conf\n"
    assert result.stderr == "Warning: secret st_pw is kept: service web uses it\n"
    with StateStore(cluster).read() as db:
        repo = Repo(db)
        assert [r.name for r in repo.files("secret").all()] == ["st_pw"]
        assert repo.files("config").all() == [] and repo.deploys.all() == []


def stack_of_web(cluster: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """web and front as stack st's, with a secret of st's and two recorded deploys: web
    at version 1, then (a `service update` later) at version 2."""
    monkeypatch.setenv("SWARMCTL_SECRETS_PASSPHRASE", "a passphrase")
    with StateStore(cluster).transaction() as db:
        repo = Repo(db)
        stack = {NAMESPACE_LABEL: "st"}
        secrets.put(repo, "secret", "st_pw", b"hunter2", stack)
        (web,) = repo.services.all()
        repo.services.put(replace(web, spec=replace(web.spec, labels=stack)))
        front = repo.networks.get("front")
        repo.networks.put(replace(front, labels=stack))
        repo.deploys.put(StackDeploy("d1", "st", 1, web.created_at, "digest", services={"web": 1}))
    result = swarmctl(
        "-i", str(cluster.with_name("hosts.yml")), "--state", str(cluster), "service",
        "update", "--detach", "--image", "nginx:2", "web",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    with StateStore(cluster).transaction() as db:
        Repo(db).deploys.put(
            StackDeploy("d2", "st", 2, web.created_at, "digest", services={"web": 2})
        )


def test_stack_rm_plans_its_services_networks_secrets_and_history_gone(
    cluster, monkeypatch
) -> None:
    stack_of_web(cluster, monkeypatch)
    code, out = dry_run(cluster, "stack rm", "st")
    assert code == 2
    every = "on manager1, manager2, worker1, worker2"
    assert out.splitlines() == [
        "- secret st_pw",
        "- service web",
        "- network front",
        f"- overlay front {every}",
        f"- ingress port 8080/tcp {every}",
        f"- virtual IP 10.0.1.2 {every}",
        f"- VIP helper swarmctl-vip.web.front (10.0.1.2) {every}",
        "- task web.1 on manager1 (service removed)",
        "- task web.2 on manager2 (service removed)",
        "- deploy history of stack st (2 deploy(s))",
    ]
    code, _ = dry_run(cluster, "stack rm", "nosuch")
    assert code == 1


def test_stack_rollback_plans_the_services_rolled_back_and_their_first_batch(
    cluster, monkeypatch
) -> None:
    stack_of_web(cluster, monkeypatch)
    code, out = dry_run(cluster, "stack rollback", "st")
    assert code == 2
    assert out.splitlines() == [
        "~ service web",
        "    image: nginx:2 -> nginx",
        "~ tasks of web: 2 to replace, 1 at a time (stop-first); the first batch:",
        "- task web.1 on manager1 (updated)",
        "+ task web.1 on manager1",
    ]
    assert dry_run(cluster, "stack rollback", "st", "--to", "2") == (0, "Nothing would change.\n")
    code, _ = dry_run(cluster, "stack rollback", "st", "--to", "7")
    assert code == 1
