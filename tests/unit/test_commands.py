"""Remote command text: quoting of hostile values, templates, and what SSHConnection sends.

Quoting is proven by running the produced text through a local `sh -c`; no host is used.
"""

import fcntl
import os
import shlex
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import jinja2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmctl.commands import docker, render
from swarmctl.executor import _reason
from swarmctl.inventory import InventoryHost
from swarmctl.models import (
    HealthCheck,
    MountSpec,
    PortSpec,
    PublishMode,
    Service,
    ServiceSpec,
    Task,
)
from swarmctl.spec import parse_mount
from swarmctl.transport.ssh import CommandFailed, CommandTimeout, Result, SSHConnection

HOSTILE = [
    "$(rm -rf /)",
    "`reboot`",
    "; reboot",
    "a && b || c",
    "it's",
    'say "hi"',
    "back\\slash",
    "two\nlines",
    "tab\there",
    "carriage\rreturn",
    "*",
    "~root",
    "$HOME",
    "-n",
    "",
    " lead and trail ",
    "é 中文",
]


def sh(line: str, env: dict | None = None) -> str:
    """Run `line` as a remote shell would (sh -c) and return its stdout."""
    out = subprocess.run(["sh", "-c", line], capture_output=True, check=True, env=env).stdout
    return out.decode()  # not text=True: that would turn a "\r" into "\n"


def printed_back(values: list[str]) -> list[str]:
    """What the shell hands to printf when it runs the joined argv."""
    out = sh(shlex.join(["printf", "%s\\0", *values]))
    return out.split("\0")[:-1]


# ------------------------------------------------------------------------- shlex.join


def test_hostile_values_are_quoted_to_exact_text() -> None:
    argv = ["echo", "$(rm -rf /)", "; reboot", "it's", 'say "hi"', "two\nlines", ""]
    assert shlex.join(argv) == (
        "echo '$(rm -rf /)' '; reboot' 'it'\"'\"'s' 'say \"hi\"' 'two\nlines' ''"
    )


def test_hostile_values_reach_the_program_literally() -> None:
    assert printed_back(HOSTILE) == HOSTILE


def test_a_command_substitution_is_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    sh(shlex.join(["echo", f"$(touch {marker})", f"; touch {marker}", f"`touch {marker}`"]))
    assert not marker.exists()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\0")),
        min_size=1,
        max_size=4,
    )
)
def test_any_text_survives_the_shell(values: list[str]) -> None:
    assert printed_back(values) == values


# ------------------------------------------------------------------------ builders


def test_removing_cluster_containers_filters_on_the_cluster_label() -> None:
    assert docker.remove_cluster_containers("hqnlki4wjgmqhxur4044081wb").startswith(
        "{ docker ps -aq --filter label=swarmctl.cluster.id=hqnlki4wjgmqhxur4044081wb "
        "| xargs -r docker rm -f; } && "
    )


def test_a_hostile_cluster_id_stays_inside_the_filter_argument() -> None:
    line = docker.remove_cluster_containers("x; reboot")
    assert line.startswith(
        "{ docker ps -aq --filter 'label=swarmctl.cluster.id=x; reboot' | xargs -r docker rm -f; }"
    )


def test_apt_install_command_is_one_quoted_script() -> None:
    from swarmctl.facts import HostFacts, plan_join

    bare = HostFacts(os_id="debian", tools=frozenset({"apt-get", "systemctl"}))
    install = plan_join(bare, "w").install_docker
    assert install is not None
    assert shlex.join(install) == (
        "sh -c 'apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
        "docker.io'"
    )


# ------------------------------------------------------------------------- templates


def test_the_facts_script_needs_no_values_and_is_valid_sh() -> None:
    script = render.render("host/facts.sh.j2")
    subprocess.run(["sh", "-n", "-c", script], check=True)
    assert "docker version --format '{{.Server.Version}}'" in script
    assert "{%" not in script and "{{ '" not in script


def test_the_facts_script_prints_only_key_value_lines_and_comments() -> None:
    script = render.render("host/facts.sh.j2")
    echoed = [line for line in script.splitlines() if line.strip().startswith("echo")]
    assert echoed and all("=" in line for line in echoed)


IP_STUB = """#!/bin/sh
echo "$*" >> "$LOG"
case "$*" in
    "-o link show type vxlan") echo "7: swp4242v: <BROADCAST,MULTICAST> mtu 1450 qdisc noop" ;;
    "link add swp"*"v type vxlan"*) grep -q "^link del swp4242v$" "$LOG" || exit 2 ;;
esac
"""


def facts_with_stubs(tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    """The facts script (its probe lock in `tmp_path`) and an environment whose `ip` finds
    a probe device swp4242v, and makes a probe only once that one is deleted."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool, text in (("ip", IP_STUB), ("docker", "#!/bin/sh\nexit 1\n")):
        (bin_dir / tool).write_text(text)
        (bin_dir / tool).chmod(0o755)
    for tool in ("iptables", "arptables"):
        (bin_dir / tool).write_text("#!/bin/sh\nexit 0\n")
        (bin_dir / tool).chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "LOG": str(tmp_path / "ip.log")}
    script = render.render("host/facts.sh.j2")
    script = script.replace("/run/swarmctl-probe.lock", str(tmp_path / "probe.lock"))
    return ["sh", "-c", script], env


def test_the_facts_probe_first_removes_a_probe_a_killed_run_left(tmp_path: Path) -> None:
    # The probe holds VNI 42 on port 4789 while it lives: one left behind would make
    # every later probe fail, and the host read as one whose kernel has no VXLAN.
    argv, env = facts_with_stubs(tmp_path)
    out = subprocess.run(argv, capture_output=True, text=True, env=env).stdout
    assert "vxlan=yes" in out.splitlines() and "macvlan=yes" in out.splitlines()


def test_the_facts_probe_leaves_the_device_of_a_probe_running_alongside(tmp_path: Path) -> None:
    # Another swarmctl command probing the same host holds the lock while its probe lives.
    argv, env = facts_with_stubs(tmp_path)
    with open(tmp_path / "probe.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        probing = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
        time.sleep(1.0)
        log = tmp_path / "ip.log"
        assert "link del swp4242v" not in (log.read_text() if log.exists() else "")
        fcntl.flock(lock, fcntl.LOCK_UN)  # that probe is done: its device is a leftover now
    out, _ = probing.communicate(timeout=30)
    assert "vxlan=yes" in out.splitlines()


def render_text(text: str, **values: object) -> str:
    """Render `text` as a template with the environment every packaged template gets."""
    env = render.environment(jinja2.DictLoader({"t.sh.j2": text}))
    return env.get_template("t.sh.j2").render(**values)


def test_rendering_with_a_missing_value_raises_instead_of_printing_nothing() -> None:
    with pytest.raises(jinja2.UndefinedError, match="'container' is undefined"):
        render_text("docker rm -f {{ container | q }}\n")


def test_a_missing_attribute_raises_too() -> None:
    with pytest.raises(jinja2.UndefinedError):
        render_text("echo {{ node.address }}\n", node={})


def test_the_q_filter_quotes_every_hostile_value() -> None:
    line = render_text(
        "printf '%s\\0'{% for v in values %} {{ v | q }}{% endfor %}", values=HOSTILE
    )
    assert line == "printf '%s\\0' " + " ".join(shlex.quote(v) for v in HOSTILE)
    assert sh(line).split("\0")[:-1] == HOSTILE


def test_the_q_filter_quotes_non_text_values() -> None:
    assert render_text("{{ n | q }} {{ none | q }}", n=4789, none=None) == "4789 None"


# --------------------------------------------------------------- what SSH sends


class FakeChannel:
    """Just enough of a paramiko channel for SSHConnection.run: records the command."""

    def __init__(self, code: int, stdout: bytes, stderr: bytes, finishes: bool) -> None:
        self.command: str | None = None
        self.code, self.stdout, self.stderr, self.finishes = code, stdout, stderr, finishes
        self._read, self._write = os.pipe()  # never readable: select() just waits

    def exec_command(self, line: str) -> None:
        self.command = line

    def recv_ready(self) -> bool:
        return bool(self.stdout)

    def recv(self, _: int) -> bytes:
        data, self.stdout = self.stdout, b""
        return data

    def recv_stderr_ready(self) -> bool:
        return bool(self.stderr)

    def recv_stderr(self, _: int) -> bytes:
        data, self.stderr = self.stderr, b""
        return data

    def exit_status_ready(self) -> bool:
        return self.finishes

    def recv_exit_status(self) -> int:
        return self.code

    def fileno(self) -> int:
        return self._read

    def close(self) -> None:
        os.close(self._read)
        os.close(self._write)


class FakeTransport:
    def __init__(self, channel: FakeChannel) -> None:
        self.channel = channel

    def open_session(self, timeout: float | None = None) -> FakeChannel:
        return self.channel


def connection(
    code: int = 0,
    stdout: bytes = b"",
    stderr: bytes = b"",
    *,
    sudo: bool = False,
    finishes: bool = True,
) -> tuple[SSHConnection, FakeChannel]:
    conn = SSHConnection(InventoryHost(name="worker1", address="10.0.0.12"))
    conn.sudo = sudo
    channel = FakeChannel(code, stdout, stderr, finishes)
    conn._transport = lambda: FakeTransport(channel)  # type: ignore[method-assign]
    return conn, channel


def test_an_argv_is_sent_as_one_quoted_line() -> None:
    conn, channel = connection(stdout=b"ok\n")
    result = conn.run(["echo", "$(rm -rf /)", "; reboot"])
    assert channel.command == "echo '$(rm -rf /)' '; reboot'"
    assert (result.host, result.exit_code, result.stdout) == ("worker1", 0, "ok\n")


def test_a_shell_line_is_sent_as_it_is() -> None:
    conn, channel = connection()
    conn.run("id -u; sudo -n true 2>/dev/null && echo sudo")
    assert channel.command == "id -u; sudo -n true 2>/dev/null && echo sudo"


def test_with_sudo_the_line_is_quoted_again_for_sh_c() -> None:
    conn, channel = connection(sudo=True)
    conn.run(["echo", "it's; reboot"])
    assert (
        channel.command == "sudo -n sh -c 'echo '\"'\"'it'\"'\"'\"'\"'\"'\"'\"'\"'s; reboot'\"'\"''"
    )


def test_with_sudo_hostile_values_still_arrive_literally(tmp_path: Path) -> None:
    fake_sudo = tmp_path / "sudo"
    fake_sudo.write_text('#!/bin/sh\n[ "$1" = -n ] && shift\nexec "$@"\n')
    fake_sudo.chmod(0o755)
    conn, channel = connection(sudo=True)
    conn.run(["printf", "%s\\0", *HOSTILE])
    assert channel.command is not None
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    assert sh(channel.command, env=env).split("\0")[:-1] == HOSTILE


def test_a_failed_command_raises_one_line_naming_host_command_and_last_stderr_line() -> None:
    conn, _ = connection(code=100, stderr=b"Reading package lists...\nE: Unable to locate docker\n")
    with pytest.raises(CommandFailed) as caught:
        conn.run(["apt-get", "install", "-y", "docker.io"])
    assert str(caught.value) == (
        "worker1: `apt-get install -y docker.io` failed: E: Unable to locate docker"
    )
    assert caught.value.result.exit_code == 100


def test_a_failed_command_without_output_gives_its_exit_code() -> None:
    conn, _ = connection(code=3)
    with pytest.raises(CommandFailed, match=r"^worker1: `false` failed: exit 3$"):
        conn.run(["false"])


def test_check_false_returns_the_failure_instead() -> None:
    conn, _ = connection(code=1, stderr=b"nope\n")
    assert conn.run(["false"], check=False).stderr == "nope\n"


def test_a_long_command_is_shortened_in_the_error() -> None:
    conn, _ = connection(code=1)
    with pytest.raises(CommandFailed) as caught:
        conn.run(["echo", "x" * 200])
    shown = str(caught.value).split("`")[1]
    assert len(shown) == 80 and shown.endswith("…")


def test_a_failed_multi_line_command_is_still_one_line() -> None:
    conn, _ = connection(code=1, stderr=b"boom\n")
    with pytest.raises(CommandFailed) as caught:
        conn.run("set -e\nfalse\n")
    assert "\n" not in str(caught.value)


def test_a_command_that_does_not_finish_times_out_naming_the_host() -> None:
    conn, _ = connection(finishes=False)
    with pytest.raises(CommandTimeout) as caught:
        conn.run(["sleep", "1d"], timeout=0.05)
    assert str(caught.value) == "worker1 (10.0.0.12:22): `sleep 1d` did not finish within 0.05 s"


# ------------------------------------------------------------------------- run_task

# A stand-in `docker` that logs its argv (one NUL-separated line per call) and acts as
# FAKE_IMAGE (present|missing|the one reference present), FAKE_DAEMON (up|down),
# FAKE_PULL (ok|fail) and FAKE_RUN (ok|no-create|no-start|taken: the task's container
# exists already) say: the script's branches are tested, not Docker. With --pull never,
# `run` and `create` fail as docker does when the image (their last argument) is missing.
FAKE_DOCKER = r"""#!/bin/sh
printf '%s\0' "$@" >> "$LOG"; printf '\n' >> "$LOG"
eval "image=\${$#}"
case " $* " in *" --pull never "*)
  [ "$FAKE_IMAGE" = present ] || [ "$FAKE_IMAGE" = "$image" ] || {
    echo "docker: Error response from daemon: No such image: $image" >&2; exit 125; } ;;
esac
case "$1 $2" in
  "image inspect") [ "$FAKE_IMAGE" = present ] || [ "$FAKE_IMAGE" = "$3" ] ;;
  "version --format") [ "$FAKE_DAEMON" = up ] ;;
  "pull -q") [ "$FAKE_PULL" = ok ] || { echo "pull access denied" >&2; exit 1; } ;;
  "create --name")
    [ "$FAKE_RUN" = taken ] && { echo "Error response from daemon: Conflict." >&2; exit 1; }
    [ "$FAKE_RUN" = no-create ] && { echo "Error response from daemon: no network" >&2; exit 1; }
    touch "$LOG.made"; echo c0ffee ;;
  "run -d")
    case "$FAKE_RUN" in
      ok) echo c0ffee ;;
      no-create) echo "docker: Error response from daemon: no such network" >&2
                 echo "See 'docker run --help'." >&2; exit 125 ;;
      no-start) touch "$LOG.made"; echo "docker: Error response from daemon: shim" >&2; exit 127 ;;
      taken) echo "docker: Error response from daemon: Conflict." >&2; exit 125 ;;
    esac ;;
  "start "*)
    case "$FAKE_RUN" in
      ok) ;;
      taken) echo "$2" ;;
      *) echo "Error: shim" >&2; exit 1 ;;
    esac ;;
  "network connect") ;;
  "inspect --format")
    case "$3" in
      "{{.State.Error}}") [ -e "$LOG.made" ] && echo 'exec: "nope": not found' ;;
      *) echo '{"Id": "c0ffee"}' ;;
    esac ;;
esac
"""


def run_script(
    tmp_path: Path, script: str, stdout: bool = False, **fake: str
) -> tuple[int, list[list[str]], str]:
    """(exit status, docker calls, stderr or `stdout`) of `script` run by sh with the
    stand-in docker."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    log = tmp_path / "calls"
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "LOG": str(log),
        **{f"FAKE_{k.upper()}": v for k, v in fake.items()},
    }
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=env)
    calls = [line.split("\0")[:-1] for line in log.read_text().splitlines()] if log.exists() else []
    return done.returncode, calls, done.stdout if stdout else done.stderr


def run_task_script(networks: list[str], env: tuple[str, ...] = (), image: str = "nginx") -> str:
    service = Service("svc", ServiceSpec("web", image, env=env), "", "")
    task = Task("t1", "svc", 1, "2026-11-25T12:00:00.000+00:00", node_id="n1")
    return docker.run_task("c1", service, task, networks)


UP = {"image": "present", "daemon": "up", "pull": "ok", "run": "ok"}


def test_a_task_with_its_image_and_one_network_takes_one_docker_call(tmp_path: Path) -> None:
    script = run_task_script(["ngx_net"], ("X=$(reboot)",))
    status, calls, out = run_script(tmp_path, script, stdout=True, **UP)

    assert status == 0
    assert out.split() == ["c0ffee"]  # its record is read from the engine, not the CLI
    assert [c[:2] for c in calls] == [["run", "-d"]]
    run = calls[0]
    assert run[run.index("--network") + 1] == "ngx_net"
    assert run[run.index("--env") + 1] == "X=$(reboot)"  # literally, never run
    assert run[-3:] == ["--pull", "never", "nginx"]


def test_a_task_whose_image_is_missing_has_it_pulled_then_runs(tmp_path: Path) -> None:
    status, calls, _ = run_script(tmp_path, run_task_script(["ngx_net"]), **{**UP, "image": "no"})

    assert status == 0
    assert [c[:2] for c in calls] == [
        ["run", "-d"],
        ["image", "inspect"],
        ["version", "--format"],
        ["pull", "-q"],
        ["run", "-d"],
    ]
    assert "--pull" not in calls[-1]


def test_a_second_network_is_joined_before_the_container_starts(tmp_path: Path) -> None:
    status, calls, _ = run_script(tmp_path, run_task_script(["ngx_net", "ingress"]), **UP)

    assert status == 0
    assert [c[:2] for c in calls] == [
        ["create", "--name"],
        ["network", "connect"],
        ["start", "c0ffee"],
    ]
    assert calls[1][2] == "ingress"


def test_a_task_with_a_host_mode_port_on_an_overlay_is_made_on_the_default_bridge_first(
    tmp_path: Path,
) -> None:
    ports = (PortSpec(80, 8081, "tcp", PublishMode.HOST),)
    service = Service("svc", ServiceSpec("web", "nginx", ports=ports), "", "")
    task = Task("t1", "svc", 1, "2026-11-25T12:00:00.000+00:00", node_id="n1")
    script = docker.run_task("c1", service, task, ["ngx_net"])
    status, calls, _ = run_script(tmp_path, script, **UP)

    assert status == 0
    create, connect = calls[0], calls[1]
    assert create[create.index("--network") + 1] == "bridge"
    assert create[create.index("--publish") + 1] == "8081:80/tcp"
    assert connect[:3] == ["network", "connect", "ngx_net"]


def test_mounts_reach_docker_as_its_mount_csv_with_the_cluster_label(tmp_path: Path) -> None:
    spec = ServiceSpec(
        "db",
        "nginx",
        mounts=(
            parse_mount('source=db_data,target=/data,volume-opt=type=nfs,"volume-opt=o=addr=1,rw"'),
            parse_mount("type=tmpfs,target=/run/x,tmpfs-size=1m,tmpfs-mode=700"),
            parse_mount("type=bind,source=/srv/www,target=/srv,ro"),
        ),
    )
    task = Task("t1", "svc", 1, "2026-11-25T12:00:00.000+00:00", node_id="n1")
    _, calls, _ = run_script(
        tmp_path, docker.run_task("c1", Service("svc", spec, "", ""), task, []), **UP
    )

    run = calls[0]
    assert [run[i + 1] for i, arg in enumerate(run) if arg == "--mount"] == [
        "type=volume,source=db_data,target=/data,volume-opt=type=nfs,"
        '"volume-opt=o=addr=1,rw",volume-label=swarmctl.cluster.id=c1',
        "type=tmpfs,target=/run/x,tmpfs-size=1048576,tmpfs-mode=700",
        "type=bind,source=/srv/www,target=/srv,readonly",
    ]


_OPTION_TEXT = st.text(st.characters(codec="ascii", categories=("L", "N", "P", "S", "Zs")))


@given(
    name=st.from_regex(r"[a-z][a-z0-9_.-]{1,10}", fullmatch=True),
    opts=st.dictionaries(st.from_regex(r"[a-z][a-z0-9_.-]{0,6}", fullmatch=True), _OPTION_TEXT),
    readonly=st.booleans(),
    nocopy=st.booleans(),
)
def test_docker_reads_back_the_mount_that_was_asked_for(
    name: str, opts: dict[str, str], readonly: bool, nocopy: bool
) -> None:
    mount = MountSpec("volume", name, "/data", readonly, volume_opts=opts, volume_nocopy=nocopy)
    read_back = parse_mount(docker.mount_option(mount, "c1"))  # CSV, as docker's parser
    assert read_back == replace(mount, volume_labels={"swarmctl.cluster.id": "c1"})


@pytest.mark.parametrize(
    ("fake", "status"),
    [
        ({"image": "missing", "daemon": "down"}, docker.DAEMON_DOWN),
        ({"image": "missing", "pull": "fail"}, docker.PULL_FAILED),
        ({"run": "no-create"}, docker.CREATE_FAILED),
        ({"run": "no-start"}, docker.START_FAILED),
    ],
)
@pytest.mark.parametrize("networks", [["ngx_net"], ["ngx_net", "ingress"]])
def test_each_failure_exits_with_its_own_status(
    tmp_path: Path, fake: dict[str, str], status: int, networks: list[str]
) -> None:
    got, _, _ = run_script(tmp_path, run_task_script(networks), **{**UP, **fake})

    assert got == status


@pytest.mark.parametrize("networks", [["ngx_net"], ["ngx_net", "ingress"]])
def test_a_container_an_earlier_start_of_the_task_made_is_started_and_taken_over(
    tmp_path: Path, networks: list[str]
) -> None:
    script = run_task_script(networks)
    status, calls, out = run_script(tmp_path, script, stdout=True, **{**UP, "run": "taken"})

    assert status == 0
    assert calls[-1] == ["start", "web.1.t1"]
    assert out.split() == ["web.1.t1"]
    assert not any(c[0] == "network" for c in calls)


def test_a_container_that_would_not_start_reports_its_state_error_last(tmp_path: Path) -> None:
    _, _, stderr = run_script(tmp_path, run_task_script(["ngx_net"]), **{**UP, "run": "no-start"})

    assert stderr.strip().splitlines()[-1] == 'exec: "nope": not found'


def test_a_failed_run_is_explained_by_the_daemon_not_by_dockers_help_hint() -> None:
    stderr = "docker: Error response from daemon: no such network.\nSee 'docker run --help'.\n"
    failed = CommandFailed("x", Result("worker1", "sh", docker.CREATE_FAILED, "", stderr, 0.1))

    assert _reason(failed) == "docker: Error response from daemon: no such network."


# ------------------------------------------------------------------- docker's error line
# stderr as the lab's dockerd (Docker 26) wrote it.
BIND_SOURCE_MISSING = (
    'docker: Error response from daemon: invalid mount config for type "bind": '
    "bind source path does not exist: /nonexistent\n\n"
    "Run 'docker run --help' for more information\n"
)
PULL_WITHOUT_REGISTRY = (
    "Unable to find image 'nosuchimage:zz' locally\n"
    'docker: Error response from daemon: Get "https://registry-1.docker.io/v2/": dial tcp: '
    "lookup registry-1.docker.io on 10.99.151.1:53: read udp 10.99.151.11:58803->"
    "10.99.151.1:53: read: connection refused\n\n"
    "Run 'docker run --help' for more information\n"
)
NO_NETWORK = (
    "Unable to find image 'nginx:latest' locally\nlatest: Pulling from library/nginx\n"
    "Status: Downloaded newer image for nginx:latest\n"
    "docker: Error response from daemon: network nonet not found\n\n"
    "Run 'docker run --help' for more information\n"
)
OLD_HINT = "docker: Error response from daemon: Conflict.\nSee 'docker run --help'.\n"
BAD_LOAD = "Error processing tar file(exit status 1): unexpected EOF\n"


@pytest.mark.parametrize(
    ("stderr", "line"),
    [
        (
            BIND_SOURCE_MISSING,
            'docker: Error response from daemon: invalid mount config for type "bind": '
            "bind source path does not exist: /nonexistent",
        ),
        (PULL_WITHOUT_REGISTRY, PULL_WITHOUT_REGISTRY.splitlines()[1]),
        (NO_NETWORK, "docker: Error response from daemon: network nonet not found"),
        (OLD_HINT, "docker: Error response from daemon: Conflict."),
        (BAD_LOAD, "Error processing tar file(exit status 1): unexpected EOF"),
        ("", ""),
        ("\nRun 'docker run --help' for more information\n", ""),
    ],
    ids=["bind-source", "pull", "network", "old-hint", "load", "empty", "hint-only"],
)
def test_error_line_is_dockers_error_not_its_help_hint(stderr: str, line: str) -> None:
    assert docker.error_line(stderr) == line


def test_a_task_rejected_for_a_missing_bind_source_names_dockers_error() -> None:
    failed = CommandFailed(
        "x", Result("w1", "docker run", docker.CREATE_FAILED, "", BIND_SOURCE_MISSING, 0.1)
    )
    assert _reason(failed).endswith("bind source path does not exist: /nonexistent")


DIGEST = "sha256:" + "ab" * 32
PINNED = f"nginx:latest@{DIGEST}"


@pytest.mark.parametrize(
    ("present", "pulled", "runs"),
    [
        (f"nginx@{DIGEST}", None, f"nginx@{DIGEST}"),  # pulled by digest before
        (f"nginx:{DIGEST.replace(':', '-')}", None, f"nginx:{DIGEST.replace(':', '-')}"),  # copied
        ("nginx:latest", f"nginx@{DIGEST}", f"nginx@{DIGEST}"),  # a stale tag is not it
        ("missing", f"nginx@{DIGEST}", f"nginx@{DIGEST}"),
    ],
)
def test_a_pinned_image_runs_its_digest_and_is_pulled_only_when_the_node_lacks_it(
    tmp_path: Path, present: str, pulled: str | None, runs: str
) -> None:
    script = run_task_script(["ngx_net"], image=PINNED)
    status, calls, _ = run_script(tmp_path, script, **{**UP, "image": present})

    assert status == 0
    assert [c[2] for c in calls if c[:2] == ["pull", "-q"]] == ([pulled] if pulled else [])
    assert [c for c in calls if c[:2] == ["run", "-d"]][-1][-1] == runs


def test_a_peer_saves_a_pinned_image_under_its_digest_tag(tmp_path: Path) -> None:
    tag = f"nginx:{DIGEST.replace(':', '-')}"

    status, calls, _ = run_script(tmp_path, docker.save_image(PINNED), image="missing")

    assert status == 0
    assert calls[1:] == [["tag", f"nginx@{DIGEST}", tag], ["save", tag]]
    assert docker.save_image("nginx:1.25") == "docker save nginx:1.25"


def test_health_options_reach_docker_run_only_as_given() -> None:
    def run_argv(health: HealthCheck) -> list[str]:
        service = Service("svc", ServiceSpec("web", "nginx", health=health), "", "")
        task = Task("t1", "svc", 1, "2026-11-25T12:00:00.000+00:00", node_id="n1")
        (line,) = [
            x for x in docker.run_task("c1", service, task, []).splitlines() if "run -d" in x
        ]
        return shlex.split(line[line.index("docker run") :].split(")")[0])

    full = run_argv(HealthCheck("curl -f http://x/", 2.0, 4, 0.5, 10.0))
    assert full[full.index("--health-cmd") :][:10] == [
        "--health-cmd", "curl -f http://x/", "--health-interval", "2s", "--health-timeout",
        "0.5s", "--health-start-period", "10s", "--health-retries", "4",
    ]  # fmt: skip
    only = run_argv(HealthCheck(retries=5))
    assert "--health-cmd" not in only and only[only.index("--health-retries") + 1] == "5"
    assert "--no-healthcheck" in run_argv(HealthCheck(disabled=True))


def test_a_task_is_made_with_its_stop_signal_and_grace_and_stopped_before_removal() -> None:
    spec = ServiceSpec("web", "nginx", stop_grace_period=90.0, stop_signal="SIGUSR1")
    task = Task("t1", "svc", 1, "2026-11-25T12:00:00.000+00:00", node_id="n1")
    (line,) = [
        x
        for x in docker.run_task("c1", Service("svc", spec, "", ""), task, []).splitlines()
        if "run -d" in x
    ]
    argv = shlex.split(line[line.index("docker run") :].split(")")[0])
    assert argv[argv.index("--stop-timeout") + 1] == "90"
    assert argv[argv.index("--stop-signal") + 1] == "SIGUSR1"
    stop = docker.stop_tasks(["t1"])
    assert stop.index("docker stop $ids") < stop.index("docker rm -f $ids")


def test_a_task_is_made_with_the_specs_entrypoint_hostname_and_container_labels() -> None:
    spec = ServiceSpec(
        "st_web",
        "nginx",
        command=("/bin/sh", "-c"),
        args=("echo hi",),
        hostname="web.local",
        container_labels={"com.docker.stack.namespace": "st", "swarmctl.task.id": "forged"},
    )
    task = Task("t1", "svc", 1, "2026-11-25T12:00:00.000+00:00", node_id="n1")
    (line,) = [
        x
        for x in docker.run_task("c1", Service("svc", spec, "", ""), task, []).splitlines()
        if "run -d" in x
    ]
    argv = shlex.split(line[line.index("docker run") :].split(" 2>/dev/null)")[0])
    assert argv[argv.index("--entrypoint") + 1] == "/bin/sh"
    assert argv[argv.index("--hostname") + 1] == "web.local"
    assert argv[argv.index("$img") :] == ["$img", "-c", "echo hi"]
    labels = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--label"]
    assert "com.docker.stack.namespace=st" in labels
    assert "swarmctl.task.id=t1" in labels and "swarmctl.task.id=forged" not in labels


def test_a_command_waits_on_a_hung_engine_10_s_not_its_pools_command_timeout() -> None:
    from swarmctl.runtime.engine import DockerHost

    worker = InventoryHost(name="worker1", address="10.0.0.12")
    assert DockerHost(worker, command_timeout=120.0).engine().timeout == 10.0
    assert DockerHost(worker, command_timeout=3.0).engine().timeout == 3.0  # the supervisor's
