"""The Compose loader: files in tmp_path, a Stack of plain data out (swarmctl.stack.compose)."""

from pathlib import Path

import pytest

from swarmctl.models import (
    FailureAction,
    FileRef,
    HealthCheck,
    Mode,
    MountSpec,
    PortSpec,
    PublishMode,
    Resources,
    RestartCondition,
    RestartPolicy,
    UpdateOrder,
    UpdatePolicy,
)
from swarmctl.stack.compose import ComposeError, load
from swarmctl.stack.model import (
    IMAGE_LABEL,
    NAMESPACE_LABEL,
    StackFileObject,
    StackNetwork,
    StackVolume,
)

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "stack.yml"


def write(folder: Path, text: str, name: str = "stack.yml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def load_text(folder: Path, text: str, environ: dict[str, str] | None = None, stack: str = "st"):
    return load([write(folder, text)], stack, environ or {})


def service(stack, key: str):
    (found,) = [s for s in stack.services if s.name == f"{stack.name}_{key}"]
    return found


def error(folder: Path, text: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ComposeError) as info:
        load_text(folder, text, environ)
    message = str(info.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------------- interpolation


@pytest.mark.parametrize(
    ("value", "environ", "expected"),
    [
        ("${TAG}", {"TAG": "1.25"}, "1.25"),
        ("$TAG", {"TAG": "1.25"}, "1.25"),
        ("${TAG:-latest}", {}, "latest"),
        ("${TAG:-latest}", {"TAG": ""}, "latest"),
        ("${TAG-latest}", {"TAG": ""}, ""),
        ("${TAG-latest}", {}, "latest"),
        ("${TAG:-$FALLBACK}", {"FALLBACK": "1.0"}, "$FALLBACK"),
        ("${TAG:?set TAG}", {"TAG": "2"}, "2"),
        ("${TAG}", {}, ""),
        ("cost$$5", {}, "cost$5"),
    ],
)
def test_a_variable_is_interpolated_as_docker_does(tmp_path, value, environ, expected):
    stack = load_text(
        tmp_path,
        f"services:\n  web:\n    image: nginx\n    environment:\n      V: '{value}'\n",
        environ,
    )

    assert service(stack, "web").env == (f"V={expected}",)


def test_a_required_variable_that_is_unset_names_the_file_key_variable_and_message(tmp_path):
    message = error(tmp_path, "services:\n  web:\n    image: ${IMAGE:?give the web image}\n")

    assert message == (
        f"{tmp_path}/stack.yml: services.web.image: variable IMAGE is unset or empty:"
        " give the web image"
    )


def test_a_required_variable_without_colon_accepts_an_empty_value(tmp_path):
    text = "services:\n  web:\n    image: nginx\n    environment: ['A=${A?needed}']\n"

    assert service(load_text(tmp_path, text, {"A": ""}), "web").env == ("A=",)
    assert "variable A is unset: needed" in error(tmp_path, text)


def test_a_lone_dollar_is_an_invalid_interpolation(tmp_path):
    message = error(tmp_path, "services:\n  web:\n    image: nginx\n    command: echo $ 5\n")

    assert message == (
        f"{tmp_path}/stack.yml: services.web.command: invalid interpolation in 'echo $ 5'"
        " (write a literal $ as $$)"
    )


def test_the_env_file_beside_the_first_file_gives_variables_and_the_environment_wins(tmp_path):
    write(tmp_path, 'TAG=1.24\nPORT=8080\n# a comment\nexport USER_ID="1000"\n', ".env")
    text = (
        "services:\n  web:\n    image: nginx:${TAG}\n    user: ${USER_ID}\n"
        "    ports: ['${PORT}:80']\n"
    )

    stack = load_text(tmp_path, text, {"TAG": "1.25"})

    web = service(stack, "web")
    assert (web.image, web.user, web.ports) == ("nginx:1.25", "1000", (PortSpec(80, 8080),))


def test_interpolated_numbers_and_booleans_are_cast_before_validation(tmp_path):
    text = (
        "services:\n  web:\n    image: nginx\n    deploy:\n      replicas: ${N}\n"
        "    volumes:\n      - {type: volume, source: data, target: /data, read_only: '${RO}'}\n"
        "volumes:\n  data:\n    external: ${EXTERNAL}\n"
    )

    stack = load_text(tmp_path, text, {"N": "3", "RO": "true", "EXTERNAL": "yes"})

    web = service(stack, "web")
    assert web.replicas == 3
    assert web.mounts == (MountSpec("volume", "data", "/data", readonly=True),)
    assert stack.volumes == (StackVolume("data", external=True),)


# ------------------------------------------------------------------------------ merge


def test_a_later_file_overrides_mappings_key_by_key_and_merges_unique_lists(tmp_path):
    base = write(
        tmp_path,
        "services:\n"
        "  web:\n"
        "    image: nginx:1.24\n"
        "    command: [nginx, -g, 'daemon off;']\n"
        "    environment: [A=1, B=2]\n"
        "    labels: {tier: front}\n"
        "    ports: ['8080:80', '9090:90']\n"
        "    volumes: ['/srv/a:/a', 'data:/data']\n"
        "    secrets: [pw]\n"
        "    deploy:\n"
        "      replicas: 2\n"
        "      placement: {constraints: ['node.role == worker']}\n"
        "volumes:\n  data:\n"
        "secrets:\n  pw: {external: true}\n",
        "base.yml",
    )
    override = write(
        tmp_path,
        "services:\n"
        "  web:\n"
        "    image: nginx:1.25\n"
        "    command: [nginx-debug]\n"
        "    environment: {B: '3', C: '4'}\n"
        "    labels: [owner=ops]\n"
        "    ports: ['8080:80/tcp', '7070:70']\n"
        "    volumes: ['/srv/b:/a']\n"
        "    secrets: [{source: pw, target: other}]\n"
        "    deploy:\n"
        "      placement: {constraints: ['node.labels.zone == a']}\n"
        "  worker:\n    image: busybox\n",
        "override.yml",
    )

    stack = load([base, override], "st", {})

    web = service(stack, "web")
    assert web.image == "nginx:1.25"
    assert web.args == ("nginx-debug",)
    assert web.env == ("A=1", "B=3", "C=4")
    assert web.container_labels == {"tier": "front", "owner": "ops", NAMESPACE_LABEL: "st"}
    assert web.ports == (PortSpec(80, 8080), PortSpec(90, 9090), PortSpec(70, 7070))
    assert [(m.source, m.target) for m in web.mounts] == [("/srv/b", "/a"), ("st_data", "/data")]
    assert web.replicas == 2
    assert web.constraints == ("node.role == worker", "node.labels.zone == a")
    assert web.secrets == (FileRef("pw", "other"),)
    assert [s.name for s in stack.services] == ["st_web", "st_worker"]
    assert stack.files == (str(base), str(override))


def test_the_digest_is_of_the_merged_interpolated_document(tmp_path):
    one = load_text(tmp_path, "services:\n  web:\n    image: nginx:${TAG}\n", {"TAG": "1"})
    same = load_text(tmp_path, "services: {web: {image: 'nginx:1'}}\n")
    other = load_text(tmp_path, "services:\n  web:\n    image: nginx:${TAG}\n", {"TAG": "2"})

    assert one.digest == same.digest != other.digest
    assert len(one.digest) == 64


# ------------------------------------------------------------------------- services


def test_the_example_stack_loads(tmp_path):
    stack = load([EXAMPLE], "demo", {})

    assert [s.name for s in stack.services] == ["demo_web", "demo_app", "demo_db"]
    assert [n.name for n in stack.networks] == ["demo_front", "demo_back"]
    assert stack.volumes == (StackVolume("demo_db_data", labels={NAMESPACE_LABEL: "demo"}),)
    web, app, db = stack.services
    assert web.ports == (PortSpec(80, 8080),)
    assert app.secrets == (FileRef("demo_db_password", "db_password"),)
    assert app.configs == (FileRef("demo_app_conf", "/etc/app/app.conf"),)
    assert db.mounts[0].source == "demo_db_data"
    assert Path(stack.secrets[0].file).read_text().strip()
    assert stack.ignored == ()


def test_names_and_namespace_labels_follow_docker_stack_deploy(tmp_path):
    stack = load_text(
        tmp_path,
        "services:\n  web:\n    image: nginx\n    labels: [a=b]\n"
        "    deploy:\n      labels: {c: d}\n",
    )

    web = service(stack, "web")
    assert web.name == "st_web"
    assert web.labels == {"c": "d", NAMESPACE_LABEL: "st", IMAGE_LABEL: "nginx"}
    assert web.container_labels == {"a": "b", NAMESPACE_LABEL: "st"}
    assert web.networks == ("st_default",)
    assert stack.networks == (StackNetwork("st_default", labels={NAMESPACE_LABEL: "st"}),)


def test_command_is_the_args_and_entrypoint_the_command(tmp_path):
    stack = load_text(
        tmp_path,
        "services:\n  web:\n    image: nginx\n    entrypoint: /bin/sh -c\n"
        "    command: \"echo 'hello world'\"\n",
    )

    web = service(stack, "web")
    assert (web.command, web.args) == (("/bin/sh", "-c"), ("echo", "hello world"))


def test_short_and_long_ports(tmp_path):
    stack = load_text(
        tmp_path,
        "services:\n  web:\n    image: nginx\n    ports:\n"
        "      - 80\n      - '8053:53/udp'\n      - 127.0.0.1:8443:443\n"
        "      - {target: 9000, published: 9000, protocol: tcp, mode: host}\n"
        "      - {target: 22, host_ip: 10.0.0.1}\n",
    )

    assert service(stack, "web").ports == (
        PortSpec(80),
        PortSpec(53, 8053, "udp"),
        PortSpec(443, 8443),
        PortSpec(9000, 9000, "tcp", PublishMode.HOST),
        PortSpec(22),
    )
    assert stack.ignored == ("services.web.ports[2]", "services.web.ports[4].host_ip")


def test_an_unquoted_port_pair_is_not_a_base_60_number(tmp_path):
    text = "services:\n  web:\n    image: nginx\n    ports: [80:80, 8080:80]\n"
    text += "    secrets: [{source: pw, mode: 0400}]\nsecrets:\n  pw: {external: true}\n"

    web = service(load_text(tmp_path, text), "web")

    assert web.ports == (PortSpec(80, 80), PortSpec(80, 8080))
    assert web.secrets[0].mode == 0o400


def test_short_and_long_volumes_become_mounts(tmp_path):
    stack = load_text(
        tmp_path,
        "services:\n  db:\n    image: busybox\n    volumes:\n"
        "      - data:/var/lib/db:nocopy\n"
        "      - ./conf:/etc/db:ro\n"
        "      - /cache\n"
        "      - {type: tmpfs, target: /tmp, tmpfs: {size: 64m}}\n"
        "      - {type: volume, source: shared, target: /shared, read_only: true}\n"
        "volumes:\n"
        "  data:\n    driver: local\n    driver_opts: {type: nfs, o: 'addr=10.0.0.1,rw'}\n"
        "    labels: {backup: daily}\n"
        "  shared:\n    external: true\n    name: team_shared\n",
    )

    assert service(stack, "db").mounts == (
        MountSpec(
            "volume",
            "st_data",
            "/var/lib/db",
            volume_driver="local",
            volume_opts={"type": "nfs", "o": "addr=10.0.0.1,rw"},
            volume_labels={"backup": "daily", NAMESPACE_LABEL: "st"},
            volume_nocopy=True,
        ),
        MountSpec("bind", f"{tmp_path}/conf", "/etc/db", readonly=True),
        MountSpec("volume", "", "/cache"),
        MountSpec("tmpfs", "", "/tmp", tmpfs_size=64 * 2**20),
        MountSpec("volume", "team_shared", "/shared", readonly=True),
    )
    assert stack.volumes == (
        StackVolume(
            "st_data",
            driver="local",
            driver_opts={"type": "nfs", "o": "addr=10.0.0.1,rw"},
            labels={"backup": "daily", NAMESPACE_LABEL: "st"},
        ),
        StackVolume("team_shared", external=True),
    )


def test_secrets_and_configs_short_and_long(tmp_path):
    write(tmp_path, "s3cret", "pw.txt")
    write(tmp_path, "x=1", "app.conf")
    stack = load_text(
        tmp_path,
        "services:\n  app:\n    image: busybox\n"
        "    secrets:\n      - pw\n"
        "      - {source: api_key, target: /etc/key, uid: '100', gid: '101', mode: 0400}\n"
        "    configs: [app_conf, {source: app_conf, target: /etc/app.conf, mode: 0440}]\n"
        "secrets:\n  pw:\n    file: ./pw.txt\n    labels: [kind=db]\n"
        "  api_key:\n    external: true\n    name: shared_key\n"
        "configs:\n  app_conf:\n    file: app.conf\n    name: app_conf_v1\n",
    )

    app = service(stack, "app")
    assert app.secrets == (
        FileRef("st_pw", "pw"),
        FileRef("shared_key", "/etc/key", "100", "101", 0o400),
    )
    assert app.configs == (
        FileRef("app_conf_v1", "/app_conf"),
        FileRef("app_conf_v1", "/etc/app.conf", mode=0o440),
    )
    assert stack.secrets == (
        StackFileObject(
            "st_pw", file=f"{tmp_path}/pw.txt", labels={"kind": "db", NAMESPACE_LABEL: "st"}
        ),
        StackFileObject("shared_key", external=True),
    )
    assert stack.configs == (
        StackFileObject("app_conf_v1", file=f"{tmp_path}/app.conf", labels={NAMESPACE_LABEL: "st"}),
    )


def test_deploy_fields(tmp_path):
    stack = load_text(
        tmp_path,
        """
services:
  web:
    image: nginx
    user: "1000:1000"
    working_dir: /srv
    hostname: web.local
    stop_grace_period: 1m30s
    stop_signal: SIGQUIT
    healthcheck:
      test: ["CMD-SHELL", "wget -qO- http://127.0.0.1/ || exit 1"]
      interval: 10s
      timeout: 2s
      retries: 4
      start_period: 5s
    deploy:
      replicas: 3
      placement:
        constraints: [node.role == worker]
        preferences: [{spread: node.labels.zone}, {x-note: none}]
        max_replicas_per_node: 2
      resources:
        limits: {cpus: '0.5', memory: 128M}
        reservations: {cpus: 0.25, memory: 64M}
      restart_policy: {condition: on-failure, delay: 5s, max_attempts: 3, window: 1m}
      update_config:
        parallelism: 2
        delay: 10s
        failure_action: rollback
        monitor: 30s
        max_failure_ratio: 0.25
        order: start-first
      rollback_config: {parallelism: 0, failure_action: continue}
  agent:
    image: busybox
    healthcheck: {disable: true}
    deploy: {mode: global}
""",
    )

    web = service(stack, "web")
    assert (web.user, web.workdir, web.hostname) == ("1000:1000", "/srv", "web.local")
    assert (web.stop_grace_period, web.stop_signal) == (90.0, "SIGQUIT")
    assert web.health == HealthCheck("wget -qO- http://127.0.0.1/ || exit 1", 10.0, 4, 2.0, 5.0)
    assert (web.mode, web.replicas) == (Mode.REPLICATED, 3)
    assert web.constraints == ("node.role == worker",)
    assert web.placement_prefs == ("spread=node.labels.zone",)
    assert web.max_replicas_per_node == 2
    assert web.limits == Resources(500_000_000, 128 * 2**20)
    assert web.reservations == Resources(250_000_000, 64 * 2**20)
    assert web.restart == RestartPolicy(RestartCondition.ON_FAILURE, 5.0, 3, 60.0)
    assert web.update == UpdatePolicy(
        2, 10.0, 30.0, FailureAction.ROLLBACK, 0.25, UpdateOrder.START_FIRST
    )
    assert web.rollback == UpdatePolicy(parallelism=0, failure_action=FailureAction.CONTINUE)
    agent = service(stack, "agent")
    assert (agent.mode, agent.health) == (Mode.GLOBAL, HealthCheck(disabled=True))


def test_a_cmd_health_test_runs_through_the_shell_quoted(tmp_path):
    stack = load_text(
        tmp_path,
        "services:\n  web:\n    image: nginx\n    healthcheck:\n"
        "      test: [CMD, wget, -qO-, 'http://127.0.0.1/a b']\n",
    )

    assert service(stack, "web").health == HealthCheck("wget -qO- 'http://127.0.0.1/a b'")


def test_environment_from_env_files_then_environment_and_bare_keys_from_the_caller(tmp_path):
    write(tmp_path, "A=from-file\nB=from-file\n", "web.env")
    stack = load_text(
        tmp_path,
        "services:\n  web:\n    image: nginx\n    env_file: web.env\n"
        "    environment: [B=inline, FROM_SHELL, UNSET]\n",
        {"FROM_SHELL": "yes"},
    )

    assert service(stack, "web").env == ("A=from-file", "B=inline", "FROM_SHELL=yes")
    assert stack.ignored == ("services.web.environment.UNSET",)


def test_networks_as_list_or_map_with_top_level_names_and_external(tmp_path):
    stack = load_text(
        tmp_path,
        "services:\n"
        "  web:\n    image: nginx\n    networks: [front, default]\n"
        "  app:\n    image: busybox\n    networks:\n"
        "      back: {aliases: [api, app], ipv4_address: 10.0.9.5}\n"
        "      outside:\n"
        "networks:\n"
        "  front: {attachable: true, labels: {a: b}, ipam: {config: [{subnet: 10.0.9.0/24}]}}\n"
        "  back: {name: shared_back, driver_opts: {mtu: '1400'}}\n"
        "  outside: {external: true, name: corp}\n"
        "  unused: {}\n",
    )

    assert service(stack, "web").networks == ("st_front", "st_default")
    assert service(stack, "app").networks == ("shared_back", "corp")
    assert service(stack, "app").network_aliases == {
        "shared_back": ("app", "api"),
        "corp": ("app",),
    }
    assert stack.networks == (
        StackNetwork(
            "st_front",
            attachable=True,
            subnet="10.0.9.0/24",
            labels={"a": "b", NAMESPACE_LABEL: "st"},
        ),
        StackNetwork("st_default", labels={NAMESPACE_LABEL: "st"}),
        StackNetwork("shared_back", labels={NAMESPACE_LABEL: "st"}),
        StackNetwork("corp", external=True),
    )
    assert set(stack.ignored) == {
        "services.app.networks.back.ipv4_address",
        "networks.back.driver_opts",
        "networks.unused",
    }


def test_keys_swarm_ignores_or_swarmctl_does_not_support_are_listed(tmp_path):
    stack = load_text(
        tmp_path,
        "x-common: &common {image: nginx}\n"
        "services:\n  web:\n    <<: *common\n"
        "    build: .\n    container_name: web\n    depends_on: [db]\n    restart: always\n"
        "    privileged: true\n    x-note: mine\n"
        "    deploy:\n      endpoint_mode: dnsrr\n"
        "      resources: {reservations: {generic_resources: []}}\n"
        "  db:\n    image: busybox\n    volumes: ['/srv:/srv:z']\n",
    )

    assert stack.ignored == (
        "services.web.build",
        "services.web.container_name",
        "services.web.depends_on",
        "services.web.restart",
        "services.web.privileged",
        "services.web.deploy.resources.reservations.generic_resources",
        "services.web.deploy.endpoint_mode",
        "services.db.volumes[0].z",
    )


# --------------------------------------------------------------------------- errors


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ComposeError, match=f"^{tmp_path}/nope.yml: no such file$"):
        load([tmp_path / "nope.yml"], "st", {})


def test_a_yaml_error_names_the_line_and_column(tmp_path):
    message = error(tmp_path, "services:\n  web:\n    image: [nginx\n")

    assert message.startswith(f"{tmp_path}/stack.yml: line 4, column 1: ")


def test_a_schema_error_names_the_file_and_the_key_path(tmp_path):
    message = error(
        tmp_path, "services:\n  web:\n    image: nginx\n    deploy:\n      replicas: two\n"
    )

    assert message == (
        f"{tmp_path}/stack.yml: services.web.deploy.replicas: 'two' is not of type integer"
    )


def test_a_value_of_the_wrong_type_is_shown_as_written(tmp_path):
    message = error(tmp_path, "version: 3.8\nservices:\n  web:\n    image: nginx\n")

    assert message == f"{tmp_path}/stack.yml: version: 3.8 is not of type string"


def test_an_unknown_key_is_refused(tmp_path):
    message = error(tmp_path, "services:\n  web:\n    image: nginx\n    replica: 2\n")

    assert message == f"{tmp_path}/stack.yml: services.web.replica: unknown key"


def test_an_error_in_a_merged_service_names_the_last_file_that_sets_it(tmp_path):
    base = write(tmp_path, "services:\n  web:\n    image: nginx\n", "a.yml")
    override = write(tmp_path, "services:\n  web:\n    deploy: {replicas: -1}\n", "b.yml")

    with pytest.raises(ComposeError, match=f"^{override}: services.web: --replicas -1: must be"):
        load([base, override], "st", {})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "services:\n  web:\n    image: nginx\n    networks: [back]\n",
            "services.web.networks.back: network 'back' is not defined in the top-level networks",
        ),
        (
            "services:\n  web:\n    image: nginx\n    secrets: [pw]\n",
            "services.web.secrets[0]: secret 'pw' is not defined in the top-level secrets",
        ),
        (
            "services:\n  web:\n    image: nginx\n    configs: [{source: conf}]\n",
            "services.web.configs[0]: config 'conf' is not defined in the top-level configs",
        ),
        (
            "services:\n  web:\n    image: nginx\n    volumes: ['data:/data']\n",
            "services.web.volumes[0]: volume 'data' is not defined in the top-level volumes",
        ),
        (
            "services:\n  web:\n    image: nginx\n    ports: ['80:x']\n",
            "services.web.ports[0]: --publish '80:x': expected [PUBLISHED:]TARGET[/PROTOCOL]"
            " or published=…,target=…",
        ),
        (
            "services:\n  web:\n    image: nginx\n    deploy:\n"
            "      resources: {limits: {memory: lots}}\n",
            "services.web.deploy.resources.limits.memory: memory 'lots': expected a size"
            " like 512M, 1g or 1.5GiB",
        ),
        (
            "services:\n  web:\n    image: nginx\n    deploy:\n"
            "      restart_policy: {condition: sometimes}\n",
            "services.web: --restart-condition 'sometimes': use none, on-failure or any",
        ),
        (
            "services:\n  web:\n    image: nginx\n    networks: {default: {aliases: [a b]}}\n",
            "services.web.networks.default.aliases: 'a b': expected a DNS name (letters, digits,"
            " '_', '.', '-')",
        ),
        (
            "services:\n  web:\n    image: nginx\n"
            "networks:\n  default: {ipam: {config: [{subnet: 10.0.9.1/24}]}}\n",
            "networks.default.ipam.config[0].subnet: '10.0.9.1/24': 10.0.9.1/24 has host bits set",
        ),
        (
            "services:\n  web:\n    image: nginx\n    secrets: [{target: pw}]\n",
            "services.web.secrets[0]: no source: (the name of a top-level one)",
        ),
        (
            "services:\n  web:\n    image: nginx\n    volumes: [{type: bind, target: /x}]\n",
            "services.web.volumes[0]: --mount 'type=bind,target=/x': a bind mount needs"
            " source=<absolute path>",
        ),
        (
            "services:\n  web:\n    build: .\n",
            "services.web: no image: (swarm runs images; build: is not supported)",
        ),
        (
            "services:\n  web:\n    image: nginx\n    hostname: '{{.Task.Slot}}'\n",
            "services.web.hostname: '{{.Task.Slot}}': expected a host name (letters, digits,"
            " '-', '.'); templates such as {{.Task.Slot}} are not supported",
        ),
        (
            "services:\n  web:\n    image: nginx\n    secrets: [pw]\n"
            "secrets:\n  pw: {file: gone.txt}\n",
            "secrets.pw.file: {tmp}/gone.txt: no such file",
        ),
        (
            "services:\n  web:\n    image: nginx\n    env_file: [gone.env]\n",
            "services.web.env_file[0]: {tmp}/gone.env: no such file",
        ),
    ],
)
def test_each_bad_input_is_one_line_naming_the_file_and_the_key(tmp_path, text, expected):
    message = error(tmp_path, text)

    assert message == f"{tmp_path}/stack.yml: " + expected.replace("{tmp}", str(tmp_path))


def test_a_bad_stack_name_is_refused(tmp_path):
    path = write(tmp_path, "services:\n  web:\n    image: nginx\n")

    with pytest.raises(ComposeError, match=r"^stack name 'my stack': use letters"):
        load([path], "my stack", {})


def test_the_schema_ships_in_the_package():
    from importlib import resources

    schema = resources.files("swarmctl.stack").joinpath("compose-spec.json").read_text()

    assert '"title": "Compose Specification"' in schema


FILE_REFS = (
    "services:\n  app:\n    image: busybox\n    {kind}: [{refs}]\n"
    "secrets:\n  pw: {{external: true}}\nconfigs:\n  conf: {{external: true}}\n"
)


def test_a_secrets_uid_is_checked_as_on_the_command_line(tmp_path):
    text = FILE_REFS.format(kind="secrets", refs="{source: pw, uid: nobody}")
    assert error(tmp_path, text) == (
        f"{tmp_path}/stack.yml: services.app.secrets[0]: uid 'nobody': expected a numeric ID"
    )


def test_a_configs_relative_target_is_from_the_root_as_docker_mounts_it(tmp_path):
    text = FILE_REFS.format(kind="configs", refs="{source: conf, target: app.conf}")
    assert service(load_text(tmp_path, text), "app").configs[0].target == "/app.conf"


def test_two_files_at_one_path_are_refused(tmp_path):
    text = FILE_REFS.format(kind="secrets", refs="pw").replace(
        "    secrets: [pw]\n",
        "    secrets: [pw]\n    configs: [{source: conf, target: /run/secrets/pw}]\n",
    )
    assert error(tmp_path, text) == (
        f"{tmp_path}/stack.yml: services.app: config conf: /run/secrets/pw is already the "
        "file of secret pw"
    )


# ---------------------------------------------------------------------------- extends


def test_extends_of_a_service_in_the_same_file_merges_as_a_later_file_would(tmp_path):
    stack = load_text(
        tmp_path,
        "services:\n"
        "  base:\n    image: app:1\n    command: [serve]\n    environment: {A: '1', B: '2'}\n"
        "    ports: ['8080:80']\n    deploy: {replicas: 2, labels: {tier: web}}\n"
        "  web:\n    extends: {service: base}\n    command: [serve, --fast]\n"
        "    environment: [B=3]\n    ports: ['8080:80', '9090:90']\n"
        "    deploy: {labels: {team: a}}\n"
        "  worker:\n    extends: web\n    image: app:2\n",
    )
    web, worker = service(stack, "web"), service(stack, "worker")
    assert (web.image, web.args, web.replicas) == ("app:1", ("serve", "--fast"), 2)
    assert sorted(web.env) == ["A=1", "B=3"]
    assert [(p.published, p.target) for p in web.ports] == [(8080, 80), (9090, 90)]
    assert {k: v for k, v in web.labels.items() if k not in (NAMESPACE_LABEL, IMAGE_LABEL)} == {
        "tier": "web",
        "team": "a",
    }
    assert (worker.image, worker.args, sorted(worker.env)) == ("app:2", web.args, sorted(web.env))
    assert "services.web.extends" not in stack.ignored and stack.ignored == ()


def test_extends_from_another_file_takes_its_paths_from_that_files_directory(tmp_path):
    common = tmp_path / "common"
    common.mkdir()
    write(common, "FROM_COMMON=yes\n", "app.env")
    write(
        common,
        "services:\n  app:\n    extends: {file: ../more/base.yml, service: root}\n"
        "    env_file: app.env\n    volumes: ['./data:/data:ro']\n",
        "app.yml",
    )
    (tmp_path / "more").mkdir()
    write(tmp_path / "more", "services:\n  root:\n    image: app:${TAG}\n", "base.yml")
    stack = load_text(
        tmp_path,
        "services:\n  api:\n    extends: {file: common/app.yml, service: app}\n"
        "    environment: {OWN: '1'}\n",
        {"TAG": "7"},
    )
    api = service(stack, "api")
    assert api.image == "app:7"
    assert sorted(api.env) == ["FROM_COMMON=yes", "OWN=1"]
    (mount,) = api.mounts
    assert (mount.source, mount.target, mount.readonly) == (str(common / "data"), "/data", True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "services:\n  web:\n    extends: nosuch\n",
            "{file}: services.web.extends: no service 'nosuch' in {file}",
        ),
        (
            "services:\n  a:\n    extends: b\n    image: x\n  b:\n    extends: a\n",
            "{file}: services.a.extends: a loop (a -> b -> a)",
        ),
        (
            "services:\n  web:\n    extends: {file: gone.yml, service: x}\n",
            "{tmp}/gone.yml: no such file",
        ),
        (
            "services:\n  web:\n    extends: {file: sub, service: x}\n",
            "{tmp}/sub: is a directory, not a file",
        ),
        ("services:\n  web:\n    extends: {file: x.yml}\n", "{file}: services.web.extends: "),
    ],
)
def test_a_bad_extends_is_one_line_naming_the_file_and_the_service(tmp_path, text, expected):
    (tmp_path / "sub").mkdir()
    message = error(tmp_path, text)
    file = tmp_path / "stack.yml"
    assert message.startswith(expected.format(file=file, tmp=tmp_path))


def test_a_directory_given_as_a_file_is_called_a_directory(tmp_path):
    with pytest.raises(ComposeError, match=f"^{tmp_path}: is a directory, not a file$"):
        load([tmp_path], "st", {})
    (tmp_path / "pw").mkdir()
    assert (
        error(
            tmp_path,
            "services:\n  web:\n    image: nginx\n    secrets: [pw]\n    env_file: [pw]\n"
            "secrets:\n  pw: {file: pw}\n",
        )
        == f"{tmp_path}/stack.yml: secrets.pw.file: {tmp_path}/pw: is a directory, not a file"
    )
    message = error(tmp_path, "services:\n  web:\n    image: nginx\n    env_file: [pw]\n")
    assert message == (
        f"{tmp_path}/stack.yml: services.web.env_file[0]: {tmp_path}/pw: is a directory, not a file"
    )
