"""Secrets and configs without hosts: encryption at rest, the key check, --secret parsing,
the commands' output (never a secret's value), rolling users on update, and delivery by
the executor (the value on stdin, never in a command line)."""

import io
import json
import os
import subprocess
import sys
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest

from swarmctl import executor, secrets, services
from swarmctl.errors import SwarmctlError
from swarmctl.models import FileRef, Service, ServiceSpec, UpdateState
from swarmctl.spec import Changes, build_spec, parse_file_ref, updated_spec
from swarmctl.state import StateStore
from swarmctl.state.repo import Repo
from tests.unit.test_control_loop import CLUSTER, nodes, plan_now
from tests.unit.test_membership_cli import make_state, one_error

VALUE = b"hunter2-the-db-password"
KEY = {"SWARMCTL_SECRETS_PASSPHRASE": "correct horse battery staple"}


@pytest.fixture
def key(monkeypatch) -> None:
    monkeypatch.delenv(secrets.KEY_FILE_ENV, raising=False)
    monkeypatch.setenv(secrets.PASSPHRASE_ENV, KEY["SWARMCTL_SECRETS_PASSPHRASE"])


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return make_state(tmp_path / "cluster.state.json")


def swarmctl(*args: str, input: bytes = b"", env: dict | None = None):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SWARMCTL_")}
    return subprocess.run(
        [sys.executable, "-m", "swarmctl", *args],
        capture_output=True,
        input=input,
        env={**clean, **(env if env is not None else KEY)},
        timeout=60,
    )


def ok(*args: str, **kwargs) -> str:
    result = swarmctl(*args, **kwargs)
    assert result.returncode == 0, result.stderr
    return result.stdout.decode()


def error(*args: str, **kwargs) -> str:
    result = swarmctl(*args, **kwargs)
    result.stderr = result.stderr.decode()
    return one_error(result)


def put_service(path: Path, spec: ServiceSpec) -> Service:
    service = Service(f"svc{spec.name:0>22}", spec, CLUSTER.created_at, CLUSTER.created_at)
    with StateStore(path).transaction() as db:
        Repo(db).services.put(service)
    return service


# ------------------------------------------------------------------ encryption


def test_a_secret_round_trips_through_its_encrypted_record(state: Path, key) -> None:
    with StateStore(state).transaction() as db:
        record, changed = secrets.put(Repo(db), "secret", "db_password", VALUE)
    assert changed and record.version == 1
    assert VALUE not in record.data.encode()
    with StateStore(state).read() as db:
        assert secrets.value(Repo(db), "secret", record) == VALUE


def test_the_state_file_holds_neither_the_value_nor_the_key(state: Path, key) -> None:
    ok("--state", str(state), "secret", "create", "db_password", "-", input=VALUE)
    raw = state.read_bytes()
    assert VALUE not in raw
    assert KEY["SWARMCTL_SECRETS_PASSPHRASE"].encode() not in raw
    assert b"secrets_key" in raw  # the salt and the check value only


def test_a_wrong_key_is_named_in_one_line_not_used(state: Path, key, tmp_path: Path) -> None:
    ok("--state", str(state), "secret", "create", "db_password", "-", input=VALUE)
    before = state.read_bytes()
    wrong = {"SWARMCTL_SECRETS_PASSPHRASE": "wrong"}
    assert error(
        "--state", str(state), "secret", "update", "db_password", "-", input=b"x", env=wrong
    ) == ("the secrets key does not open this cluster's secrets")
    assert error(
        "--state", str(state), "secret", "create", "other", "-", input=b"x", env=wrong
    ) == ("the secrets key does not open this cluster's secrets")
    assert state.read_bytes() == before


def test_a_key_file_opens_what_it_locked_and_the_option_names_it(state: Path, tmp_path) -> None:
    key_file = tmp_path / "key"
    key_file.write_bytes(os.urandom(32).hex().encode() + b"\n")
    ok("--state", str(state), "--secrets-key-file", str(key_file), "secret", "create", "a", "-",
       input=VALUE, env={})  # fmt: skip
    with_env = {"SWARMCTL_SECRETS_KEY_FILE": str(key_file)}
    out = ok("--state", str(state), "secret", "update", "a", "-", input=b"new", env=with_env)
    assert out == "a: version 2\n"


def test_without_a_key_a_secret_is_refused_naming_where_to_put_one(state: Path) -> None:
    message = error("--state", str(state), "secret", "create", "a", "-", input=VALUE, env={})
    assert message.startswith("secrets need a key: set SWARMCTL_SECRETS_KEY_FILE")
    assert b"secrets" not in state.read_bytes()


def test_a_missing_secret_file_is_named(state: Path, key, tmp_path) -> None:
    missing = tmp_path / "nope.txt"
    assert error("--state", str(state), "secret", "create", "a", str(missing)) == (
        f"secret file {missing}: cannot read it (No such file or directory)"
    )


def test_configs_are_kept_plain_in_base64_and_shown_by_inspect_pretty(state: Path) -> None:
    ok("--state", str(state), "config", "create", "nginx_conf", "-", input=b"worker 1;\n", env={})
    out = ok("--state", str(state), "config", "inspect", "--pretty", "nginx_conf", env={})
    assert "Data:\nworker 1;\n" in out
    (document,) = json.loads(ok("--state", str(state), "config", "inspect", "nginx_conf", env={}))
    assert document["Spec"]["Data"] == "d29ya2VyIDE7Cg=="


# --------------------------------------------------------------------- output


def test_no_command_prints_a_secrets_value(state: Path, key) -> None:
    ok("--state", str(state), "secret", "create", "--label", "a=b", "db_password", "-", input=VALUE)
    put_service(state, ServiceSpec("db", "postgres", secrets=(FileRef("db_password", "pw"),)))
    outputs = [
        ok("--state", str(state), "secret", "ls"),
        ok("--state", str(state), "secret", "ls", "--format", "json"),
        ok("--state", str(state), "secret", "inspect", "db_password"),
        ok("--state", str(state), "secret", "inspect", "--pretty", "db_password"),
        ok("--state", str(state), "service", "inspect", "db"),
        ok("--state", str(state), "inspect", "db_password"),
    ]
    for out in outputs:
        assert VALUE.decode() not in out
    (document,) = json.loads(outputs[2])
    assert document["Spec"] == {"Name": "db_password", "Labels": {"a": "b"}}
    (service,) = json.loads(outputs[4])
    assert service["Spec"]["TaskTemplate"]["ContainerSpec"]["Secrets"] == [
        {"File": {"Name": "/run/secrets/pw", "UID": "0", "GID": "0", "Mode": 0o444},
         "SecretName": "db_password"}
    ]  # fmt: skip


def test_secret_ls_prints_docker_columns(state: Path, key) -> None:
    record_id = ok("--state", str(state), "secret", "create", "b", "-", input=VALUE).strip()
    lines = ok("--state", str(state), "secret", "ls").splitlines()
    assert lines[0].split() == ["ID", "NAME", "CREATED", "UPDATED"]
    assert lines[1].split()[:2] == [record_id, "b"]


def test_rm_of_a_secret_in_use_is_refused_naming_the_services(state: Path, key) -> None:
    ok("--state", str(state), "secret", "create", "pw", "-", input=VALUE)
    for name in ("db", "app"):
        put_service(state, ServiceSpec(name, "x", secrets=(FileRef("pw", "pw"),)))
    assert error("--state", str(state), "secret", "rm", "pw") == (
        "secret pw is in use by service app, db"
    )
    assert "pw" in ok("--state", str(state), "secret", "ls")


def test_create_of_an_existing_name_and_a_bad_name_are_refused(state: Path, key) -> None:
    ok("--state", str(state), "secret", "create", "pw", "-", input=VALUE)
    assert error("--state", str(state), "secret", "create", "pw", "-", input=VALUE) == (
        "secret pw already exists (change it with `secret update`)"
    )
    assert error("--state", str(state), "secret", "create", "a/b", "-", input=VALUE).startswith(
        "secret name 'a/b': use letters"
    )


# ------------------------------------------------------------------ update rolls


def test_update_with_a_new_value_starts_an_update_of_each_service_using_it(
    state: Path, key
) -> None:
    ok("--state", str(state), "secret", "create", "pw", "-", input=VALUE)
    user = put_service(state, ServiceSpec("db", "x", secrets=(FileRef("pw", "pw"),)))
    other = put_service(state, ServiceSpec("web", "x"))
    out = ok("--state", str(state), "secret", "update", "--detach", "pw", "-", input=b"new")
    assert out == "pw: version 2\ndb: update recorded\n"
    with StateStore(state).read() as db:
        repo = Repo(db)
        db_service, web = repo.services.get("db"), repo.services.get("web")
        assert secrets.value(repo, "secret", repo.secrets.get("pw")) == b"new"
    assert db_service.version == user.version + 1 and db_service.spec == user.spec
    assert db_service.update_status.state == UpdateState.UPDATING
    assert db_service.update_status.message == "secret pw updated"
    assert web == other
    # A rerun (after Ctrl-C, say) carries on the update it recorded, and records no other.
    again = ok("--state", str(state), "secret", "update", "-d", "pw", "-", input=b"new")
    assert again == "db: update recorded\n"
    with StateStore(state).transaction() as db:
        repo = Repo(db)
        assert repo.services.get("db") == db_service
        done = replace(db_service.update_status, state=UpdateState.COMPLETED, completed_at="x")
        repo.services.put(replace(db_service, update_status=done))
    again = ok("--state", str(state), "secret", "update", "pw", "-", input=b"new")
    assert again == "pw: value unchanged, no service rolled\n"


# --------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("kind", "text", "ref"),
    [
        ("secret", "pw", FileRef("pw", "pw", "0", "0", 0o444)),
        (
            "secret",
            "source=pw,target=db/password,uid=999,gid=998,mode=0400",
            FileRef("pw", "db/password", "999", "998", 0o400),
        ),
        ("secret", "src=pw,mode=440", FileRef("pw", "pw", "0", "0", 0o440)),
        ("config", "nginx_conf", FileRef("nginx_conf", "/nginx_conf")),
        ("config", "source=c,target=etc/app.conf", FileRef("c", "/etc/app.conf")),
    ],
)
def test_a_secret_or_config_option_reads_as_dockers(kind: str, text: str, ref: FileRef) -> None:
    assert parse_file_ref(kind, text) == ref


@pytest.mark.parametrize(
    ("text", "cause"),
    [
        ("source=pw,mode=0999", "mode '0999': expected octal permission bits, e.g. 0400"),
        ("source=pw,uid=root", "uid 'root': expected a numeric ID"),
        ("source=pw,target=../etc/passwd", "target '../etc/passwd': expected a file path"),
        ("source=pw,size=3", "expected KEY=VALUE with a key of source, target, uid, gid, mode"),
        ("source=pw,source=x", "source is given twice"),
        ("target=x", "secret name '': use letters"),
    ],
)
def test_a_bad_secret_option_is_named(text: str, cause: str) -> None:
    with pytest.raises(SwarmctlError) as raised:
        parse_file_ref("secret", text)
    assert str(raised.value).startswith(f"--secret '{text}': {cause}")


def test_two_secrets_at_one_target_are_refused() -> None:
    with pytest.raises(SwarmctlError, match=r"^secret other: /run/secrets/pw is already the file"):
        build_spec(name="db", image="x", secrets=["pw", "source=other,target=pw"])


def test_a_config_at_a_secrets_path_is_refused() -> None:
    clash = "source=cfg,target=/run/secrets/db_pw"
    with pytest.raises(SwarmctlError, match=r"^config cfg: /run/secrets/db_pw is already the file"):
        build_spec(name="db", image="x", secrets=["db_pw"], configs=[clash])
    spec = build_spec(name="db", image="x", secrets=["db_pw"])
    with pytest.raises(SwarmctlError, match="is already the file of secret db_pw"):
        updated_spec(spec, Changes(config_add=[clash]))


def test_update_adds_replaces_and_removes_secrets_and_configs() -> None:
    spec = build_spec(name="db", image="x", secrets=["a", "b"], configs=["c"])
    changed = updated_spec(
        spec,
        Changes(secret_rm=["a"], secret_add=["source=z,target=b"], config_rm=["c"]),
    )
    assert changed.secrets == (FileRef("z", "b"),)
    assert changed.configs == ()


# -------------------------------------------------------------------- delivery


def test_a_task_gets_its_files_on_stdin_never_in_a_command_line(state: Path, key) -> None:
    from swarmctl.transport.fake import FakeHosts

    with StateStore(state).transaction() as db:
        repo = Repo(db)
        repo.nodes.delete(n.id for n in repo.nodes.all())
        repo.nodes.put_many(nodes(1))
        secrets.put(repo, "secret", "pw", VALUE)
        secrets.put(repo, "config", "conf", b"plain")
    spec = ServiceSpec(
        "db",
        "postgres",
        secrets=(FileRef("pw", "pw", "999", "999", 0o400),),
        configs=(FileRef("conf", "/etc/db.conf"),),
    )
    put_service(state, spec)
    hosts = FakeHosts(["manager1"])
    host = hosts["manager1"]
    given: list[bytes] = []
    run = host.run

    def recording(command, *, stdin=None, **kwargs):
        if stdin is not None:
            given.append(stdin)
        return run(command, stdin=stdin, **kwargs)

    host.run = recording  # type: ignore[method-assign]
    store = StateStore(state)
    executor.apply(store, hosts, plan_now(store))
    (task,) = _tasks(store)
    assert not any(VALUE.decode() in line for line in host.commands)
    directory = f"/run/swarmctl/secrets/{task.id}"
    assert any("tar -x" in line and directory in line for line in host.commands)
    start = next(line for line in host.commands if "docker run" in line)
    assert f"source={directory}/secret-0,target=/run/secrets/pw,readonly" in start
    assert f"source={directory}/config-0,target=/etc/db.conf,readonly" in start
    (archive,) = given
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert (members["secret-0"].mode, members["secret-0"].uid) == (0o400, 999)
        assert tar.extractfile("secret-0").read() == VALUE
        assert tar.extractfile("config-0").read() == b"plain"


def _tasks(store: StateStore):
    with store.read() as db:
        return Repo(db).tasks.all()


def test_a_task_whose_secrets_cannot_be_opened_is_rejected_without_the_value(
    state: Path, key, monkeypatch
) -> None:
    from swarmctl.transport.fake import FakeHosts

    with StateStore(state).transaction() as db:
        repo = Repo(db)
        repo.nodes.delete(n.id for n in repo.nodes.all())
        repo.nodes.put_many(nodes(1))
        secrets.put(repo, "secret", "pw", VALUE)
    put_service(state, ServiceSpec("db", "postgres", secrets=(FileRef("pw", "pw"),)))
    monkeypatch.setenv(secrets.PASSPHRASE_ENV, "wrong")
    store = StateStore(state)
    hosts = FakeHosts(["manager1"])
    executor.apply(store, hosts, plan_now(store))
    (task,) = _tasks(store)
    assert task.state.value == "rejected"
    assert task.error == (
        "secrets and configs not delivered: the secrets key does not open this cluster's secrets"
    )
    assert not any("docker run" in line for line in hosts["manager1"].commands)


def test_services_check_their_secrets_exist(state: Path, key) -> None:
    with StateStore(state).transaction() as db:
        repo = Repo(db)
        with pytest.raises(SwarmctlError, match="--secret pw: no such secret"):
            services._check(repo, ServiceSpec("db", "x", secrets=(FileRef("pw", "pw"),)), [])


def test_a_rollback_to_a_spec_whose_secret_is_gone_is_refused(state: Path, key) -> None:
    old = ServiceSpec("db", "x", secrets=(FileRef("old", "pw"),))
    service = put_service(state, ServiceSpec("db", "x"))
    with StateStore(state).transaction() as db:
        Repo(db).services.put(replace(service, version=2, previous_spec=old))
    before = state.read_bytes()
    with pytest.raises(SwarmctlError) as refused:
        services.rollback(StateStore(state), "db")
    assert str(refused.value) == (
        "cannot roll back service db: --secret old: no such secret "
        "(create it with `swarmctl secret create old FILE`)"
    )
    assert state.read_bytes() == before


def test_removing_a_tasks_container_removes_its_files_and_leftovers_are_swept() -> None:
    from swarmctl.commands import docker

    stop = docker.stop_tasks(["task1"])
    assert stop.endswith("&& rm -rf -- /run/swarmctl/secrets/task1")
    remove = docker.remove_tasks(["task1", "task2"])
    assert "&& rm -rf -- /run/swarmctl/secrets/task1 /run/swarmctl/secrets/task2 &&" in remove
    # A directory older than ten minutes whose task has no container any more goes too.
    assert "find /run/swarmctl/secrets -mindepth 1 -maxdepth 1 -type d -mmin +10" in remove
    assert '[ -z "$c" ] && rm -rf -- "$d"' in remove


def test_a_service_with_secrets_is_refused_when_the_key_does_not_open_them(
    state: Path, key, monkeypatch
) -> None:
    with StateStore(state).transaction() as db:
        secrets.put(Repo(db), "secret", "pw", VALUE)
    monkeypatch.setenv(secrets.PASSPHRASE_ENV, "wrong")
    spec = ServiceSpec("db", "x", secrets=(FileRef("pw", "pw"),))
    with StateStore(state).read() as db, pytest.raises(SwarmctlError) as raised:
        services._check(Repo(db), spec, [])
    assert str(raised.value) == secrets.WRONG_KEY


def test_a_node_leaving_loses_every_task_file_directory_without_a_container() -> None:
    from swarmctl.commands import docker

    line = docker.remove_cluster_containers("c" * 25)
    assert line.endswith(
        "&& { for d in $(find /run/swarmctl/secrets -mindepth 1 -maxdepth 1 -type d 2>/dev/null);"
        ' do c=$(docker ps -aq --filter label=swarmctl.task.id="${d##*/}")'
        ' && [ -z "$c" ] && rm -rf -- "$d"; done; true; }'
    )


def test_config_update_rolls_the_services_using_it_and_not_a_secret_of_that_name(
    state: Path,
) -> None:
    ok("--state", str(state), "config", "create", "conf", "-", input=b"a", env={})
    user = put_service(state, ServiceSpec("app", "x", configs=(FileRef("conf", "/conf"),)))
    bystander = put_service(state, ServiceSpec("db", "x", secrets=(FileRef("conf", "conf"),)))
    out = ok("--state", str(state), "config", "update", "-d", "conf", "-", input=b"b", env={})
    assert out == "conf: version 2\napp: update recorded\n"
    with StateStore(state).read() as db:
        repo = Repo(db)
        assert repo.services.get("app").version == user.version + 1
        assert repo.services.get("db") == bystander


def test_the_supervisors_unit_names_the_key_file_and_never_holds_a_passphrase(
    state: Path, tmp_path: Path
) -> None:
    key_file = tmp_path / "key"
    args = ("-i", str(tmp_path / "inventory.yml"), "--state", str(state), "supervise", "--unit")
    unit = ok(*args, env={"SWARMCTL_SECRETS_KEY_FILE": str(key_file)})
    (start,) = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    assert f"--secrets-key-file {key_file} supervise" in start
    assert "EnvironmentFile=-/etc/swarmctl/supervise.env" in unit

    result = swarmctl(*args)  # a passphrase in the environment: not written in the unit
    assert result.returncode == 0
    assert KEY["SWARMCTL_SECRETS_PASSPHRASE"].encode() not in result.stdout
    assert b"supervise --interval" in result.stdout and b"key-file /" not in result.stdout
    assert result.stderr.decode() == (
        "Warning: the unit does not carry $SWARMCTL_SECRETS_PASSPHRASE: "
        "put it in /etc/swarmctl/supervise.env\n"
    )
