from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarmctl.errors import SwarmctlError, cut
from swarmctl.models import (
    HealthCheck,
    Mode,
    MountSpec,
    PortSpec,
    PublishMode,
    Resources,
    RestartCondition,
    RestartPolicy,
    ServiceSpec,
)
from swarmctl.spec import (
    build_spec,
    default_name,
    parse_bytes,
    parse_cpus,
    parse_duration,
    parse_env,
    parse_mount,
    parse_publish,
    parse_volume,
)

NAME_HELP = "use letters, digits, '_' and '-' (at most 63, starting with a letter or digit)"
PUBLISH_HELP = "expected [PUBLISHED:]TARGET[/PROTOCOL] or published=…,target=…"
PATH_HELP = "an absolute path of letters, digits and '/_.-@%+~'"
KEYS = (
    "type, source, target, readonly, volume-driver, volume-opt, volume-label, volume-nocopy,"
    " tmpfs-size, tmpfs-mode"
)
EXPECTED_MODE = "tmpfs-mode '{}': expected permission bits in octal, like 1770"
VOLUME_HELP = (
    "must be a name of 2 or more letters, digits, '_', '.' and '-' (type=bind mounts a host path)"
)
USER_HELP = "expected NAME, UID, NAME:GROUP or UID:GID (letters, digits, '_', '.', '-')"
DIGEST = "sha256:" + "ab" * 32
MiB = 2**20


def error_of(call: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
    with pytest.raises(SwarmctlError) as caught:
        call(*args, **kwargs)
    return str(caught.value)


def spec_error(**options: Any) -> str:
    return error_of(build_spec, **{"name": "web", "image": "nginx", **options})


def spec(**options: Any) -> ServiceSpec:
    return build_spec(**{"name": "web", "image": "nginx", **options})


# ----------------------------------------------------------------------------- publish


@pytest.mark.parametrize(
    ("text", "port"),
    [
        ("80", PortSpec(target=80)),
        ("8080:80", PortSpec(target=80, published=8080)),
        ("8080:80/udp", PortSpec(target=80, published=8080, protocol="udp")),
        ("5000:5000/sctp", PortSpec(target=5000, published=5000, protocol="sctp")),
        ("53/UDP", PortSpec(target=53, protocol="udp")),
        ("65535:1", PortSpec(target=1, published=65535)),
        ("published=8080,target=80", PortSpec(target=80, published=8080)),
        (
            "published=8080,target=80,protocol=udp,mode=host",
            PortSpec(target=80, published=8080, protocol="udp", mode=PublishMode.HOST),
        ),
        ("mode=host,target=80", PortSpec(target=80, mode=PublishMode.HOST)),
        ("target=80,mode=ingress,protocol=TCP", PortSpec(target=80)),
        ("target=80,mode=HOST", PortSpec(target=80, mode=PublishMode.HOST)),
    ],
)
def test_every_publish_form_is_accepted(text: str, port: PortSpec) -> None:
    assert parse_publish(text) == port


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("abc", PUBLISH_HELP),
        ("", PUBLISH_HELP),
        ("80:", PUBLISH_HELP),
        ("80/", PUBLISH_HELP),
        ("1.2.3.4:80:80", PUBLISH_HELP),
        ("8080-8081:80-81", PUBLISH_HELP),
        ("target=80,udp", PUBLISH_HELP),
        ("0:80", "port 0 is not in 1..65535"),
        ("70000:80", "port 70000 is not in 1..65535"),
        ("8080:0", "port 0 is not in 1..65535"),
        ("80/icmp", "protocol icmp is not tcp, udp or sctp"),
        ("published=8080", "expected target=…"),
        ("target=http", "port 'http' is not a number"),
        ("target=80,published=", "port '' is not a number"),
        ("target=80,protocol=icmp", "protocol icmp is not tcp, udp or sctp"),
        ("target=80,proto=udp", "unknown key 'proto' (use published, target, protocol, mode)"),
        ("target=80,target=81", "target is given twice"),
        ("target=80,mode=bridge", "mode bridge is not ingress or host"),
        ("80;reboot", PUBLISH_HELP),
        ("$(rm -rf /)", PUBLISH_HELP),
        ("'80'", PUBLISH_HELP),
        ("target=$(rm -rf /)", "port '$(rm -rf /)' is not a number"),
    ],
)
def test_a_bad_publish_is_refused_naming_the_value(text: str, why: str) -> None:
    assert error_of(parse_publish, text) == f"--publish '{text}': {why}"


def test_a_publish_with_a_newline_is_refused_on_one_line() -> None:
    assert error_of(parse_publish, "80\n81") == (
        "--publish '80\\n81': must be one line of printable text"
    )


# ------------------------------------------------------------------------------- mount


@pytest.mark.parametrize(
    ("text", "mount"),
    [
        (
            "type=bind,source=/srv/www,target=/usr/share/nginx/html,readonly",
            MountSpec("bind", "/srv/www", "/usr/share/nginx/html", readonly=True),
        ),
        ("type=bind,src=/srv,dst=/data", MountSpec("bind", "/srv", "/data")),
        ("type=bind,source=/srv,destination=/data,ro", MountSpec("bind", "/srv", "/data", True)),
        ("type=BIND,source=/srv,target=/data", MountSpec("bind", "/srv", "/data")),
        ("source=/srv,type=bind,target=/data", MountSpec("bind", "/srv", "/data")),
        ("type=volume,source=data,target=/data", MountSpec("volume", "data", "/data")),
        ("source=data,target=/data", MountSpec("volume", "data", "/data")),
        ("target=/data", MountSpec("volume", "", "/data")),
        ("type=volume,source=,target=/data", MountSpec("volume", "", "/data")),
        ("src=My_vol.1-a,target=/var/lib/x", MountSpec("volume", "My_vol.1-a", "/var/lib/x")),
        ("target=/data,readonly=true", MountSpec("volume", "", "/data", True)),
        ("target=/data,readonly=TRUE", MountSpec("volume", "", "/data", True)),
        ("target=/data,readonly=false", MountSpec("volume", "", "/data", False)),
        ("target=/data,ro=1", MountSpec("volume", "", "/data", True)),
        ("target=/data,ro=0", MountSpec("volume", "", "/data", False)),
        (
            "type=bind,source=/srv/a_b.c-d@e%f+g~h,target=/data/",
            MountSpec("bind", "/srv/a_b.c-d@e%f+g~h", "/data/"),
        ),
        ("TYPE=volume,Target=/data,RO", MountSpec("volume", "", "/data", True)),
        ("type=tmpfs,target=/run/cache", MountSpec("tmpfs", "", "/run/cache")),
        (
            "type=tmpfs,target=/t,tmpfs-size=64m,tmpfs-mode=1770",
            MountSpec("tmpfs", "", "/t", tmpfs_size=64 * 2**20, tmpfs_mode=0o1770),
        ),
        (
            'source=db,target=/d,volume-driver=local,volume-opt=type=nfs,"volume-opt=o=addr=10.0.0.9,rw"',
            MountSpec(
                "volume",
                "db",
                "/d",
                volume_driver="local",
                volume_opts={"type": "nfs", "o": "addr=10.0.0.9,rw"},
            ),
        ),
        (
            "source=db,target=/d,volume-nocopy,volume-label=tier=db,volume-label=backup",
            MountSpec(
                "volume",
                "db",
                "/d",
                volume_nocopy=True,
                volume_labels={"tier": "db", "backup": ""},
            ),
        ),
        ("source=db,target=/d,volume-nocopy=false", MountSpec("volume", "db", "/d")),
    ],
)
def test_every_mount_form_is_accepted(text: str, mount: MountSpec) -> None:
    assert parse_mount(text) == mount


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("type=npipe,target=/x", "type npipe is not bind, volume or tmpfs"),
        (
            "type=tmpfs,source=/run,target=/x",
            "a tmpfs mount takes no source (it is made in memory)",
        ),
        ("type=tmpfs,source=,target=/x", "a tmpfs mount takes no source (it is made in memory)"),
        ("type=tmpfs,target=/x,tmpfs-size=big", "tmpfs-size 'big': expected a size like 64m or 1g"),
        ("type=tmpfs,target=/x,tmpfs-mode=0o700", EXPECTED_MODE.format("0o700")),
        ("type=tmpfs,target=/x,tmpfs-mode=8", EXPECTED_MODE.format("8")),
        ("type=tmpfs,target=/x,volume-nocopy", "volume-nocopy is only for type=volume"),
        ("type=bind,source=/a,target=/x,volume-opt=type=nfs", "volume-opt is only for type=volume"),
        ("target=/x,tmpfs-size=1m", "tmpfs-size is only for type=tmpfs"),
        ("target=/x,volume-opt=", "volume-opt '': expected KEY=VALUE"),
        ("target=/x,volume-opt==nfs", "volume-opt '=nfs': expected KEY=VALUE"),
        (
            "target=/x,volume-driver=$(reboot)",
            "volume-driver '$(reboot)': expected a driver name like local",
        ),
        ("target=/x,volume-nocopy=maybe", "volume-nocopy=maybe: expected true or false"),
        ('target=/x,"a', "not a comma-separated list (unexpected end of data)"),
        ("type=bind,target=/x", "a bind mount needs source=<absolute path>"),
        ("type=bind,source=,target=/x", "a bind mount needs source=<absolute path>"),
        ("type=bind,source=srv,target=/x", f"source 'srv' must be {PATH_HELP}"),
        ("source=data,target=x", f"target 'x' must be {PATH_HELP}"),
        ("source=data,target=", f"target '' must be {PATH_HELP}"),
        ("source=data", "expected target=…"),
        ("source=data,target=/", "target / is the container's root"),
        ("source=data,target=//", "target / is the container's root"),
        ("source=/srv,target=/x", f"volume source '/srv' {VOLUME_HELP}"),
        ("source=-data,target=/x", f"volume source '-data' {VOLUME_HELP}"),
        ("source=d,target=/x", f"volume source 'd' {VOLUME_HELP}"),
        (
            "type=bind,source=/srv,target=/x,bind-propagation=rshared",
            f"unknown key 'bind-propagation' (use {KEYS})",
        ),
        ("target=/x,", f"unknown key '' (use {KEYS})"),
        ("target=/x,target=/y", "target is given twice"),
        ("target=/x,dst=/y", "target is given twice"),
        ("target=/x,ro,readonly", "readonly is given twice"),
        ("target=/x,readonly=yes", "readonly=yes: expected true or false"),
        ("target=/x,ro=", "readonly=: expected true or false"),
        ("type,target=/x", "expected type=…"),
        ("target", "expected target=…"),
    ],
)
def test_a_bad_mount_is_refused_naming_the_value(text: str, why: str) -> None:
    assert error_of(parse_mount, text) == f"--mount '{text}': {why}"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("type=bind,source=/srv/$(rm -rf /),target=/x", "source '/srv/$(rm -rf /)' must be"),
        ("type=bind,source=/srv;reboot,target=/x", "source '/srv;reboot' must be"),
        ("type=bind,source=/srv,target=/x y", "target '/x y' must be"),
        ("type=bind,source=/srv,target=/x'y", "target '/x'y' must be"),
        ('type=bind,source="/srv",target=/x', "source '\"/srv\"' must be"),
        ("source=`reboot`,target=/x", "volume source '`reboot`' must be"),
        ("type=bind,source=/a,b,target=/x", "unknown key 'b'"),
    ],
)
def test_a_hostile_mount_value_is_refused(text: str, why: str) -> None:
    assert error_of(parse_mount, text).startswith(f"--mount '{text}': {why}")


def test_a_mount_with_a_newline_is_refused_on_one_line() -> None:
    assert error_of(parse_mount, "type=bind,source=/srv\n,target=/x") == (
        "--mount 'type=bind,source=/srv\\n,target=/x': must be one line of printable text"
    )


# ---------------------------------------------------------------------------- duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0),
        ("-0", 0.0),
        ("0s", 0.0),
        ("5s", 5.0),
        ("+5s", 5.0),
        ("1m30s", 90.0),
        ("500ms", 0.5),
        ("2h", 7200.0),
        ("1h1m1s", 3661.0),
        ("1.5s", 1.5),
        (".5s", 0.5),
        ("1.s", 1.0),
        ("1m0.5s", 60.5),
        ("100us", 0.0001),
        ("100µs", 0.0001),
        ("100μs", 0.0001),
        ("10ns", 1e-8),
        ("1s500ms", 1.5),
    ],
)
def test_every_go_duration_form_is_accepted(text: str, seconds: float) -> None:
    assert parse_duration(text, "--restart-delay") == seconds


@pytest.mark.parametrize("text", ["5", "5x", "", "s", ".s", "5 s", " 5s", "1h30", "5S", "1d", "+"])
def test_a_malformed_duration_is_refused_naming_the_option(text: str) -> None:
    assert error_of(parse_duration, text, "--restart-delay") == (
        f"--restart-delay '{text}': expected a duration like 5s, 1m30s or 500ms"
    )


def test_a_negative_duration_is_refused() -> None:
    assert error_of(parse_duration, "-5s", "--restart-window") == (
        "--restart-window -5s: must be 0 or more"
    )


def test_a_duration_beyond_gos_range_is_refused() -> None:
    assert error_of(parse_duration, "9999999h", "--restart-delay") == (
        "--restart-delay 9999999h: too long"
    )


def test_a_duration_with_a_newline_is_refused_on_one_line() -> None:
    assert error_of(parse_duration, "5s\n", "--restart-delay") == (
        "--restart-delay '5s\\n': must be one line of printable text"
    )


# ------------------------------------------------------------------------------- bytes


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("0", 0),
        ("1024", 1024),
        ("1024b", 1024),
        ("1024B", 1024),
        ("1k", 1024),
        ("1K", 1024),
        ("1kb", 1024),
        ("1KiB", 1024),
        ("512M", 512 * MiB),
        ("512m", 512 * MiB),
        ("512MB", 512 * MiB),
        ("512mib", 512 * MiB),
        ("1g", 2**30),
        ("1G", 2**30),
        ("1.5GiB", 3 * 2**29),
        (".5g", 2**29),
        ("2t", 2 * 2**40),
        ("1.0000001k", 1024),
    ],
)
def test_every_docker_size_form_is_accepted(text: str, size: int) -> None:
    assert parse_bytes(text, "--limit-memory") == size


@pytest.mark.parametrize("text", ["12x", "", "1ib", "-1m", "1 g", "1p", "m", "1mm", "1e3"])
def test_a_malformed_size_is_refused_naming_the_option(text: str) -> None:
    assert error_of(parse_bytes, text, "--limit-memory") == (
        f"--limit-memory '{text}': expected a size like 512M, 1g or 1.5GiB"
    )


def test_a_size_beyond_int64_is_refused() -> None:
    assert error_of(parse_bytes, "9999999t", "--limit-memory") == (
        "--limit-memory 9999999t: too large"
    )


# -------------------------------------------------------------------------------- cpus


@pytest.mark.parametrize(
    ("text", "nano"),
    [
        ("0.5", 500_000_000),
        ("2", 2_000_000_000),
        ("1.25", 1_250_000_000),
        (".5", 500_000_000),
        ("2.", 2_000_000_000),
        ("0.000000001", 1),
    ],
)
def test_every_cpu_count_form_is_accepted(text: str, nano: int) -> None:
    assert parse_cpus(text, "--limit-cpu") == nano


@pytest.mark.parametrize("text", ["abc", "", "-1", "1e3", "1/2", "1_000", " 1", "½"])
def test_a_malformed_cpu_count_is_refused_naming_the_option(text: str) -> None:
    assert error_of(parse_cpus, text, "--limit-cpu") == (
        f"--limit-cpu '{text}': expected a number of CPUs like 0.5 or 2"
    )


@pytest.mark.parametrize("text", ["0", "0.0", ".0"])
def test_zero_cpus_are_refused(text: str) -> None:
    assert (
        error_of(parse_cpus, text, "--reserve-cpu") == f"--reserve-cpu {text}: must be more than 0"
    )


def test_a_cpu_count_finer_than_a_nano_cpu_is_refused() -> None:
    assert error_of(parse_cpus, "0.0000000001", "--limit-cpu") == (
        "--limit-cpu 0.0000000001: too precise (at most 9 decimals)"
    )


def test_a_cpu_count_beyond_int64_is_refused() -> None:
    assert error_of(parse_cpus, "9999999999", "--limit-cpu") == "--limit-cpu 9999999999: too large"


# --------------------------------------------------------------------------------- env


@pytest.mark.parametrize("item", ["A=1", "A=", "a_b=x=y", "_X=$(rm -rf /)", "Q='; reboot \""])
def test_an_env_item_is_kept_as_given(item: str) -> None:
    assert parse_env([item]) == (item,)


def test_env_items_keep_their_order_and_repeats() -> None:
    assert parse_env(["B=2", "A=1", "B=3"]) == ("B=2", "A=1", "B=3")


def test_a_bare_env_key_is_refused() -> None:
    assert error_of(parse_env, ["K"]) == "--env 'K': expected KEY=VALUE"


@pytest.mark.parametrize("item", ["1A=b", "A B=c", "$(x)=1", "=v", "A-B=1", "é=1"])
def test_an_env_key_outside_the_shell_grammar_is_refused(item: str) -> None:
    key = item.partition("=")[0]
    assert error_of(parse_env, [item]) == (
        f"--env '{item}': key '{key}' must be letters, digits and '_', not starting with a digit"
    )


@pytest.mark.parametrize(("item", "shown"), [("A=1\n2", "'A=1\\n2'"), ("A=\x00", "'A=\\x00'")])
def test_an_env_value_must_be_one_line(item: str, shown: str) -> None:
    assert error_of(parse_env, [item]) == f"--env {shown}: must be one line of printable text"


def test_a_tab_in_an_env_value_is_kept() -> None:
    assert parse_env(["A=x\ty"]) == ("A=x\ty",)


# ---------------------------------------------------------------------- build_spec: basics


def test_a_minimal_spec_has_swarms_defaults() -> None:
    assert spec() == ServiceSpec(
        name="web",
        image="nginx",
        mode=Mode.REPLICATED,
        replicas=1,
        restart=RestartPolicy(RestartCondition.ANY, delay=None, max_attempts=0, window=0.0),
    )


def test_every_option_reaches_the_spec() -> None:
    assert build_spec(
        name="web",
        image="registry.example.com:5000/team/web:1.2",
        args=["nginx", "-g", "daemon off;"],
        replicas=3,
        mode="replicated",
        networks=["front", "back"],
        publish=["8080:80", "published=8443,target=443,mode=host", "53/udp"],
        env=["A=1", "B=two words"],
        labels=["tier=web", "owner"],
        constraints=["node.role==worker", "node.labels.zone != c"],
        placement_prefs=["spread=node.labels.zone"],
        replicas_max_per_node=2,
        reserve_cpu="0.25",
        reserve_memory="64M",
        limit_cpu="1.5",
        limit_memory="1g",
        restart_condition="on-failure",
        restart_delay="5s",
        restart_max_attempts=3,
        restart_window="2m",
        mounts=["type=bind,src=/srv/www,dst=/usr/share/nginx/html,ro", "source=cache,target=/c"],
        workdir="/app",
        user="www-data:www-data",
    ) == ServiceSpec(
        name="web",
        image="registry.example.com:5000/team/web:1.2",
        command=(),
        args=("nginx", "-g", "daemon off;"),
        env=("A=1", "B=two words"),
        labels={"tier": "web", "owner": ""},
        mode=Mode.REPLICATED,
        replicas=3,
        networks=("front", "back"),
        ports=(
            PortSpec(target=80, published=8080),
            PortSpec(target=443, published=8443, mode=PublishMode.HOST),
            PortSpec(target=53, protocol="udp"),
        ),
        constraints=("node.role==worker", "node.labels.zone != c"),
        placement_prefs=("spread=node.labels.zone",),
        max_replicas_per_node=2,
        reservations=Resources(nano_cpus=250_000_000, memory_bytes=64 * MiB),
        limits=Resources(nano_cpus=1_500_000_000, memory_bytes=2**30),
        restart=RestartPolicy(RestartCondition.ON_FAILURE, delay=5.0, max_attempts=3, window=120.0),
        mounts=(
            MountSpec("bind", "/srv/www", "/usr/share/nginx/html", readonly=True),
            MountSpec("volume", "cache", "/c"),
        ),
        workdir="/app",
        user="www-data:www-data",
    )


def test_the_spec_holds_tuples_even_when_given_lists() -> None:
    built = spec(args=["a"], networks=["n"], env=["A=1"], constraints=["node.role==worker"])
    assert (built.args, built.networks, built.env, built.constraints) == (
        ("a",),
        ("n",),
        ("A=1",),
        ("node.role==worker",),
    )


# ------------------------------------------------------------------------- name and image


@pytest.mark.parametrize("name", ["web", "Web_1", "9lives", "a-b", "a" * 63])
def test_a_docker_style_service_name_is_accepted(name: str) -> None:
    assert spec(name=name).name == name


@pytest.mark.parametrize("name", ["a;b", "a.b", "", "-web", "_web", "$(rm -rf /)", "a b", "a" * 64])
def test_a_bad_service_name_is_refused(name: str) -> None:
    assert spec_error(name=name) == f"service name '{name}': {NAME_HELP}"


def test_a_service_name_with_a_newline_is_refused_on_one_line() -> None:
    assert spec_error(name="a\nb") == f"service name 'a\\nb': {NAME_HELP}"


@pytest.mark.parametrize(
    "image",
    [
        "nginx",
        "nginx:1.25",
        "nginx:1.25-alpine",
        "nginx:Latest_1",
        "library/nginx",
        "docker.io/library/nginx:latest",
        "localhost:5000/team/app:v1",
        "registry.example.com:443/a/b",
        "[::1]:5000/app",
        f"ghcr.io/owner/repo@{DIGEST}",
        f"nginx:1.25@{DIGEST}",
        "my-app",
        "my--app",
        "a__b",
        "a.b_c",
    ],
)
def test_a_docker_image_reference_is_accepted(image: str) -> None:
    assert spec(image=image).image == image


@pytest.mark.parametrize(
    ("image", "why"),
    [
        ("", "empty"),
        ("NGINX", "repository name must be lowercase"),
        ("library/Nginx:1", "repository name must be lowercase"),
        ("a" * 256, "repository name longer than 255 characters"),
    ],
)
def test_a_bad_image_is_refused_with_the_reason(image: str, why: str) -> None:
    assert spec_error(image=image) == f"image '{cut(image)}': invalid reference format ({why})"


@pytest.mark.parametrize(
    "image",
    [
        "nginx latest",
        "nginx:",
        "nginx:-1",
        ":latest",
        "-nginx",
        "nginx_",
        "nginx@sha256:abc",
        "nginx/",
        "$(rm -rf /)",
        "nginx;reboot",
        "nginx'",
        "'nginx'",
        'nginx"',
        "ngin✓",
    ],
)
def test_an_image_outside_the_reference_grammar_is_refused(image: str) -> None:
    assert spec_error(image=image) == (
        f"image '{image}': invalid reference format"
        " (expected [REGISTRY[:PORT]/]NAME[:TAG][@DIGEST])"
    )


def test_an_image_with_a_newline_is_refused_on_one_line() -> None:
    assert spec_error(image="nginx\n") == (
        "image 'nginx\\n': invalid reference format"
        " (expected [REGISTRY[:PORT]/]NAME[:TAG][@DIGEST])"
    )


# ------------------------------------------------------------------------ mode and replicas


def test_replicas_are_kept() -> None:
    assert spec(replicas=5).replicas == 5


def test_zero_replicas_are_allowed() -> None:
    assert spec(replicas=0).replicas == 0


def test_negative_replicas_are_refused() -> None:
    assert spec_error(replicas=-1) == "--replicas -1: must be 0 or more"


def test_a_global_service_has_no_replica_count() -> None:
    assert (spec(mode="global").mode, spec(mode="global").replicas) == (Mode.GLOBAL, 0)


def test_replicas_are_refused_for_a_global_service() -> None:
    assert spec_error(mode="global", replicas=2) == "--replicas is only for replicated services"


def test_an_unknown_mode_is_refused() -> None:
    assert spec_error(mode="daemon") == "--mode 'daemon': use replicated or global"


def test_max_replicas_per_node_is_kept() -> None:
    assert spec(replicas_max_per_node=2).max_replicas_per_node == 2


def test_negative_max_replicas_per_node_are_refused() -> None:
    assert spec_error(replicas_max_per_node=-1) == "--replicas-max-per-node -1: must be 0 or more"


def test_max_replicas_per_node_are_refused_for_a_global_service() -> None:
    assert spec_error(mode="global", replicas_max_per_node=1) == (
        "--replicas-max-per-node is only for replicated services"
    )


# ----------------------------------------------------------------------------- args


def test_args_are_kept_as_given_and_the_command_stays_empty() -> None:
    built = spec(args=["sh", "-c", "echo $(rm -rf /); 'x'"])
    assert (built.command, built.args) == ((), ("sh", "-c", "echo $(rm -rf /); 'x'"))


@pytest.mark.parametrize(("arg", "shown"), [("a\nb", "'a\\nb'"), ("a\x00", "'a\\x00'")])
def test_an_arg_must_be_one_line(arg: str, shown: str) -> None:
    assert spec_error(args=["sh", arg]) == f"argument {shown}: must be one line of printable text"


# ------------------------------------------------------------------------------ networks


@pytest.mark.parametrize("network", ["a;b", "a.b", "$(rm -rf /)", ""])
def test_a_bad_network_name_is_refused(network: str) -> None:
    assert spec_error(networks=[network]) == f"--network '{network}': {NAME_HELP}"


def test_a_network_given_twice_is_refused() -> None:
    assert spec_error(networks=["front", "back", "front"]) == "--network 'front': given twice"


# --------------------------------------------------------------------------- publish in spec


def test_a_published_port_is_refused_a_second_time_for_the_same_protocol() -> None:
    assert spec_error(publish=["8080:80", "8080:81"]) == (
        "--publish '8080:81': port 8080/tcp is already published by '8080:80'"
    )


def test_a_host_mode_port_conflicts_with_the_same_ingress_port() -> None:
    assert spec_error(publish=["8080:80", "published=8080,target=81,mode=host"]) == (
        "--publish 'published=8080,target=81,mode=host': port 8080/tcp"
        " is already published by '8080:80'"
    )


def test_the_same_published_port_may_serve_two_protocols() -> None:
    assert spec(publish=["53:53", "53:53/udp"]).ports == (
        PortSpec(target=53, published=53),
        PortSpec(target=53, published=53, protocol="udp"),
    )


def test_ports_to_be_allocated_later_do_not_conflict() -> None:
    assert spec(publish=["80", "80"]).ports == (PortSpec(target=80), PortSpec(target=80))


def test_a_bad_publish_fails_the_whole_spec() -> None:
    assert spec_error(publish=["80", "abc"]) == f"--publish 'abc': {PUBLISH_HELP}"


# ------------------------------------------------------------------------------- labels


def test_a_bad_label_key_is_refused_by_the_label_rules() -> None:
    assert spec_error(labels=["a b=1"]) == (
        "--label: label 'a b': invalid key (letters, digits, '.', '_', '-')"
    )


def test_a_label_value_with_a_newline_is_refused() -> None:
    assert (
        spec_error(labels=["a=1\n2"]) == "--label: label a: value '1\\n2' is not one line of text"
    )


# ------------------------------------------------------------------- constraints and prefs


def test_constraints_keep_their_original_text() -> None:
    assert spec(constraints=["  node.labels.zone == a "]).constraints == (
        "  node.labels.zone == a ",
    )


def test_a_bad_constraint_is_refused_by_the_constraint_parser() -> None:
    assert spec_error(constraints=["node.labels.zone=a"]) == (
        "constraint 'node.labels.zone=a': expected `==` or `!=`"
    )


def test_a_constraint_with_a_newline_is_refused() -> None:
    assert spec_error(constraints=["node.labels.zone==a\nb"]) == (
        "--constraint 'node.labels.zone==a\\nb': must be one line of printable text"
    )


def test_a_bad_placement_preference_is_refused_by_the_preference_parser() -> None:
    assert spec_error(placement_prefs=["spread=zone"]) == (
        "placement preference 'spread=zone': expected spread=node.labels.<key>"
    )


def test_a_placement_preference_with_a_nul_is_refused() -> None:
    assert spec_error(placement_prefs=["spread=node.labels.z\x00"]) == (
        "--placement-pref 'spread=node.labels.z\\x00': must be one line of printable text"
    )


# ---------------------------------------------------------------------------- resources


def test_a_reservation_without_a_limit_is_kept() -> None:
    built = spec(reserve_cpu="4", reserve_memory="8g")
    assert (built.reservations, built.limits) == (Resources(4 * 10**9, 8 * 2**30), Resources())


def test_a_reservation_equal_to_its_limit_is_allowed() -> None:
    built = spec(reserve_memory="512M", limit_memory="512m")
    assert built.reservations.memory_bytes == built.limits.memory_bytes == 512 * MiB


def test_a_memory_reservation_above_its_limit_is_refused() -> None:
    assert spec_error(reserve_memory="1G", limit_memory="512M") == (
        "--reserve-memory 1G is more than --limit-memory 512M"
    )


def test_a_cpu_reservation_above_its_limit_is_refused() -> None:
    assert spec_error(reserve_cpu="2", limit_cpu="1.5") == (
        "--reserve-cpu 2 is more than --limit-cpu 1.5"
    )


def test_a_zero_memory_limit_means_no_limit() -> None:
    assert spec(limit_memory="0", reserve_memory="1g").limits == Resources()


@pytest.mark.parametrize("option", ["reserve", "limit"])
def test_memory_below_dockers_minimum_is_refused(option: str) -> None:
    assert spec_error(**{f"{option}_memory": "4m"}) == (
        f"--{option}-memory 4m: Docker needs at least 6MiB"
    )


@pytest.mark.parametrize(
    ("option", "flag"),
    [
        ("reserve_cpu", "--reserve-cpu"),
        ("limit_cpu", "--limit-cpu"),
        ("reserve_memory", "--reserve-memory"),
        ("limit_memory", "--limit-memory"),
    ],
)
def test_a_resource_error_names_its_option(option: str, flag: str) -> None:
    assert spec_error(**{option: "lots"}).startswith(f"{flag} 'lots': expected ")


# ------------------------------------------------------------------------------ restart


def test_an_explicit_restart_delay_is_a_fixed_delay_in_seconds() -> None:
    assert spec(restart_delay="1m30s").restart.delay == 90.0


def test_a_zero_restart_delay_stays_distinct_from_no_delay() -> None:
    assert spec(restart_delay="0").restart.delay == 0.0


@pytest.mark.parametrize("condition", list(RestartCondition))
def test_every_restart_condition_is_accepted(condition: RestartCondition) -> None:
    assert spec(restart_condition=condition.value).restart.condition is condition


def test_an_unknown_restart_condition_is_refused() -> None:
    assert spec_error(restart_condition="always") == (
        "--restart-condition 'always': use none, on-failure or any"
    )


def test_negative_restart_attempts_are_refused() -> None:
    assert spec_error(restart_max_attempts=-1) == "--restart-max-attempts -1: must be 0 or more"


def test_a_bad_restart_delay_names_its_option() -> None:
    assert spec_error(restart_delay="5") == (
        "--restart-delay '5': expected a duration like 5s, 1m30s or 500ms"
    )


def test_a_negative_restart_window_is_refused() -> None:
    assert spec_error(restart_window="-1m") == "--restart-window -1m: must be 0 or more"


# ------------------------------------------------------------------------------- mounts


def test_two_mounts_on_one_target_are_refused() -> None:
    assert spec_error(mounts=["source=db,target=/data", "type=bind,source=/srv,target=/data"]) == (
        "--mount 'type=bind,source=/srv,target=/data': target /data is already mounted"
    )


# ---------------------------------------------------------------------- workdir and user


def test_an_absolute_workdir_is_kept() -> None:
    assert spec(workdir="/usr/src/app").workdir == "/usr/src/app"


@pytest.mark.parametrize("workdir", ["app", "./app", "/app dir", "/$(rm -rf /)", "/a;b", "/a'b"])
def test_a_workdir_that_is_not_a_plain_absolute_path_is_refused(workdir: str) -> None:
    assert spec_error(workdir=workdir) == f"--workdir '{workdir}': expected {PATH_HELP}"


@pytest.mark.parametrize("user", ["www-data", "1000", "www-data:www-data", "1000:1000", "a.b_c"])
def test_every_user_form_is_accepted(user: str) -> None:
    assert spec(user=user).user == user


@pytest.mark.parametrize("user", ["a;b", "a:b:c", "root user", "$(id)", ":1000", "a:", "'root'"])
def test_a_user_outside_name_or_id_with_group_is_refused(user: str) -> None:
    assert spec_error(user=user) == f"--user '{user}': {USER_HELP}"


def test_a_user_with_a_newline_is_refused_on_one_line() -> None:
    assert spec_error(user="root\n") == f"--user 'root\\n': {USER_HELP}"


# ------------------------------------------------------------------------------ properties


@given(st.integers(min_value=0, max_value=10**9))
def test_whole_seconds_parse_to_themselves(n: int) -> None:
    assert parse_duration(f"{n}s", "--restart-delay") == n


@given(st.integers(min_value=0, max_value=2**40))
def test_mebibytes_parse_to_n_times_two_to_the_twenty(n: int) -> None:
    assert parse_bytes(f"{n}m", "--limit-memory") == n * 2**20


@pytest.mark.parametrize(
    "parse",
    [
        parse_publish,
        parse_mount,
        lambda text: parse_duration(text, "--restart-delay"),
        lambda text: parse_bytes(text, "--limit-memory"),
        lambda text: parse_cpus(text, "--limit-cpu"),
        lambda text: parse_env([text]),
        lambda text: build_spec(name=text, image=text, user=text, workdir=text),
    ],
)
@given(text=st.text())
def test_any_text_parses_or_fails_with_a_one_line_error(
    parse: Callable[[str], object], text: str
) -> None:
    try:
        parse(text)
    except SwarmctlError as error:
        assert "\n" not in str(error) and "\r" not in str(error)


@pytest.mark.parametrize(
    ("image", "name"),
    [
        ("nginx", "nginx"),
        ("nginx:1.25", "nginx"),
        ("library/nginx@sha256:0123", "nginx"),
        ("localhost:5000/team/app:2", "app"),
        ("localhost:5000/app", "app"),
    ],
)
def test_a_service_is_named_after_its_image(image: str, name: str) -> None:
    assert default_name(image) == name


# ----------------------------------------------------------------------------- health


def test_health_options_set_only_what_is_given_the_rest_stays_the_images() -> None:
    assert spec(health_retries=5).health == HealthCheck(retries=5)
    assert spec(
        health_cmd="curl -f http://localhost/",
        health_interval="2s",
        health_timeout="500ms",
        health_start_period="0",
        health_retries=2,
    ).health == HealthCheck("curl -f http://localhost/", 2.0, 2, 0.5, 0.0)
    assert spec().health is None
    assert spec(no_healthcheck=True).health == HealthCheck(disabled=True)


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"no_healthcheck": True, "health_cmd": "true"}, "--no-healthcheck conflicts with --he"),
        ({"no_healthcheck": True, "health_timeout": "1s"}, "--no-healthcheck conflicts with --hea"),
        ({"health_cmd": " "}, "--health-cmd '': give a command"),
        ({"health_retries": 0}, "--health-retries 0: must be 1 or more"),
        ({"health_interval": "10ms"}, "--health-interval 10ms: at least 100ms"),
        ({"health_timeout": "0"}, "--health-timeout 0: at least 100ms"),
        ({"health_start_period": "soon"}, "--health-start-period 'soon': expected a duration"),
    ],
)  # fmt: skip
def test_bad_health_options_are_refused_naming_the_option(options: dict, error: str) -> None:
    assert spec_error(**options).startswith(error)


# ------------------------------------------------------------------------- volume create


def test_volume_create_takes_a_name_a_driver_and_key_value_options() -> None:
    assert parse_volume("db_data", "local", ["type=nfs", "o=addr=10.0.0.9,rw", "nocopy="]) == {
        "type": "nfs",
        "o": "addr=10.0.0.9,rw",
        "nocopy": "",
    }


@pytest.mark.parametrize(
    ("name", "driver", "options", "error"),
    [
        (
            "a/b",
            "local",
            [],
            "volume name 'a/b': must be a name of 2 or more letters, digits, '_', '.' and '-'",
        ),
        ("vol", "$(x)", [], "--driver '$(x)': expected a driver name like local"),
        ("vol", "local", ["type"], "--opt 'type': expected KEY=VALUE"),
        ("vol", "local", ["=nfs"], "--opt '=nfs': expected KEY=VALUE"),
        ("vol", "local", ["o=a\nb"], "volume create 'o=a\\nb': must be one line of printable text"),
    ],
)
def test_a_bad_volume_create_is_refused_in_one_line(
    name: str, driver: str, options: list[str], error: str
) -> None:
    assert error_of(parse_volume, name, driver, options) == error
