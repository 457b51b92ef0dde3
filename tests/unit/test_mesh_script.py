"""The routing-mesh script (templates/services/converge.sh.j2) without hosts: its
iptables-restore rules as text, and the script run for real under a local `sh` with stub
docker/iptables/iptables-restore first on PATH, including with hostile names.
"""

import os
import platform
import shlex
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from swarmctl import pause
from swarmctl.network import mesh
from swarmctl.network.mesh import Destination, Helper, IngressPort, NodeServices, VirtualIP
from swarmctl.network.networking import mesh_script

CLUSTER_ID = "clusterid0000000000000001"
SERVICE_ID = "websvc000000000000000000w"
FRONT_ID = "frontnet0000000000000000a"
PORT_CHAIN = mesh.chain("I", SERVICE_ID, "30000", "tcp")
VIP_CHAIN = mesh.chain("V", SERVICE_ID, FRONT_ID)
MARK = mesh.MESH_MARK

SERVICES = NodeServices(
    cluster_id=CLUSTER_ID,
    node="node1",
    ports=(
        IngressPort(
            "tcp",
            30000,
            Destination(PORT_CHAIN, ("10.255.0.17:80", "10.255.0.18:80", "10.255.0.19:80")),
        ),
    ),
    vips=(VirtualIP("10.0.1.2", Destination(VIP_CHAIN, ("10.0.1.17", "10.0.1.18"))),),
    helpers=(Helper("swarmctl-vip.web.front", "web", "front", "10.0.1.2"),),
    helper_image="busybox",
)


def script_for(services: NodeServices) -> str:
    return mesh_script(services)


def sh_syntax_errors(script: str) -> str:
    return subprocess.run(["sh", "-n"], input=script, capture_output=True, text=True).stderr


def restore_input(script: str) -> list[str]:
    """The lines the script feeds iptables-restore (its quoted here-document)."""
    start = script.index("iptables-restore --noflush <<'RULES'\n") + len(
        "iptables-restore --noflush <<'RULES'\n"
    )
    return script[start : script.index("\nRULES\n", start)].splitlines()


def chain_rules(script: str, chain: str) -> list[str]:
    return [line for line in restore_input(script) if line.startswith(f"-A {chain} ")]


# ------------------------------------------------------------------------ rendered text


def test_the_rendered_script_is_valid_shell() -> None:
    assert sh_syntax_errors(script_for(SERVICES)) == ""


def test_a_script_with_nothing_to_do_is_valid_shell() -> None:
    empty = replace(SERVICES, ports=(), vips=(), helpers=())
    assert sh_syntax_errors(script_for(empty)) == ""


def test_three_ingress_targets_get_one_third_one_half_then_the_rest() -> None:
    assert chain_rules(script_for(SERVICES), PORT_CHAIN) == [
        f"-A {PORT_CHAIN} -m statistic --mode random --probability 0.33333 -p tcp "
        "-j DNAT --to-destination 10.255.0.17:80",
        f"-A {PORT_CHAIN} -m statistic --mode random --probability 0.50000 -p tcp "
        "-j DNAT --to-destination 10.255.0.18:80",
        f"-A {PORT_CHAIN} -p tcp -j DNAT --to-destination 10.255.0.19:80",
    ]


def test_a_published_port_is_marked_and_sent_to_its_chain() -> None:
    assert chain_rules(script_for(SERVICES), "SWARMCTL-INGRESS") == [
        f"-A SWARMCTL-INGRESS -p tcp -m tcp --dport 30000 -j MARK --set-xmark {MARK}/{MARK}",
        f"-A SWARMCTL-INGRESS -p tcp -m tcp --dport 30000 -j {PORT_CHAIN}",
    ]


def test_a_virtual_ip_is_balanced_over_its_targets_on_every_port() -> None:
    script = script_for(SERVICES)
    assert chain_rules(script, "SWARMCTL-VIP") == [
        f"-A SWARMCTL-VIP -d 10.0.1.2/32 -j MARK --set-xmark {MARK}/{MARK}",
        f"-A SWARMCTL-VIP -d 10.0.1.2/32 -j {VIP_CHAIN}",
    ]
    assert chain_rules(script, VIP_CHAIN) == [
        f"-A {VIP_CHAIN} -m statistic --mode random --probability 0.50000 "
        "-j DNAT --to-destination 10.0.1.17",
        f"-A {VIP_CHAIN} -j DNAT --to-destination 10.0.1.18",
    ]


def test_a_single_target_takes_everything_without_a_statistic() -> None:
    one = replace(
        SERVICES,
        ports=(IngressPort("udp", 30000, Destination(PORT_CHAIN, ("10.255.0.17:53",))),),
    )
    assert chain_rules(script_for(one), PORT_CHAIN) == [
        f"-A {PORT_CHAIN} -p udp -j DNAT --to-destination 10.255.0.17:53"
    ]


def test_every_chain_is_declared_so_it_is_flushed_and_rebuilt() -> None:
    declared = [line for line in restore_input(script_for(SERVICES)) if line.startswith(":")]
    assert declared == [
        ":SWARMCTL-INGRESS - [0:0]",
        ":SWARMCTL-VIP - [0:0]",
        ":SWARMCTL-SNAT - [0:0]",
        f":{PORT_CHAIN} - [0:0]",
        f":{VIP_CHAIN} - [0:0]",
        ":SWARMCTL-FORWARD - [0:0]",
    ]


def test_a_virtual_ip_without_running_tasks_is_left_to_the_node_which_refuses_it() -> None:
    idle = replace(SERVICES, vips=(VirtualIP("10.0.1.2", Destination(VIP_CHAIN, ())),))
    assert chain_rules(script_for(idle), "SWARMCTL-VIP") == [
        "-A SWARMCTL-VIP -d 10.0.1.2/32 -j ACCEPT"
    ]


def test_marked_traffic_leaving_into_any_overlay_is_masqueraded_to_the_node() -> None:
    # A task answers the node's own address on its network, so the reply passes the node
    # that translated the request: without it a VIP's reply would go straight to the client.
    assert chain_rules(script_for(SERVICES), "SWARMCTL-SNAT") == [
        f"-A SWARMCTL-SNAT -m mark --mark {MARK}/{MARK} -o swb+ -j MASQUERADE"
    ]


def test_the_nat_and_filter_tables_are_each_committed() -> None:
    lines = restore_input(script_for(SERVICES))
    assert [line for line in lines if line.startswith(("*", "COMMIT"))] == [
        "*nat",
        "COMMIT",
        "*filter",
        "COMMIT",
    ]


def test_a_target_that_is_no_address_is_refused_at_render_time() -> None:
    bad = replace(
        SERVICES, vips=(VirtualIP("10.0.1.2", Destination(VIP_CHAIN, ("10.0.1.17 -j ACCEPT",))),)
    )
    with pytest.raises(ValueError):
        script_for(bad)


# ------------------------------------------------------------------ running with stubs
# Each stub logs its argv, NUL-separated. `docker inspect` answers from answers/inspect,
# `docker ps` from answers/ps, `iptables -t nat -S` from answers/nat; `iptables -C` finds
# no rule, `iptables -S DOCKER-USER` succeeds if answers/docker-user exists, and
# iptables-restore appends its input to restored.txt (and fails if answers/restore-fails
# exists). `docker image inspect` finds an image if answers/image exists, `docker import`
# keeps its input in answers/imported, `docker run` fails with answers/run-fails as its
# stderr if that exists. `rm` and `touch` are stubbed too.

STUB = """#!/bin/sh
# One call's record at a time: helpers start side by side, and two records interleaved
# would read as other calls.
exec 9>>LOG
flock 9
printf 'A%s\\000' "${0##*/}" "$@" >&9
printf 'E\\000' >&9
exec 9>&-
case "${0##*/}" in
    docker)
        case "$1" in
            inspect) [ -f ANSWERS/inspect ] || exit 1; cat ANSWERS/inspect ;;
            image) [ -f ANSWERS/image ] || exit 1 ;;
            import) cat > ANSWERS/imported ;;
            run) [ -f ANSWERS/run-fails ] && { cat ANSWERS/run-fails >&2; exit 125; } ;;
            ps) [ -f ANSWERS/ps ] && cat ANSWERS/ps ;;
        esac ;;
    iptables)
        case " $* " in
            *" -C "*) exit 1 ;;
            *" -S DOCKER-USER "*) [ -f ANSWERS/docker-user ] || exit 1 ;;
            *" -t nat -S "*) [ -f ANSWERS/nat ] && cat ANSWERS/nat ;;
        esac ;;
    iptables-restore)
        cat >> RESTORED
        [ -f ANSWERS/restore-fails ] && { echo "iptables-restore: line 3 failed" >&2; exit 1; } ;;
esac
exit 0
"""
STUBBED = ["docker", "iptables", "iptables-restore", "rm", "touch"]


@dataclass(frozen=True)
class StubRun:
    returncode: int
    stderr: str
    calls: list[list[str]]  # argv of each stub call, the tool's name first
    restored: str  # what iptables-restore read

    def calls_of(self, *prefix: str) -> list[list[str]]:
        return [c for c in self.calls if c[: len(prefix)] == list(prefix)]


def read_calls(log: Path) -> list[list[str]]:
    calls, current = [], []
    for item in log.read_text().split("\0")[:-1] if log.exists() else []:
        if item == "E":
            calls.append(current)
            current = []
        else:
            current.append(item[1:])
    return calls


def run_with_stubs(tmp: Path, script: str, answers: dict[str, str] | None = None) -> StubRun:
    stubs, replies, log, restored = tmp / "bin", tmp / "answers", tmp / "calls.log", tmp / "rst"
    stubs.mkdir()
    replies.mkdir()
    for name, text in (answers or {}).items():
        (replies / name).write_text(text)
    text = (
        STUB.replace("LOG", shlex.quote(str(log)))
        .replace("ANSWERS", shlex.quote(str(replies)))
        .replace("RESTORED", shlex.quote(str(restored)))
    )
    for tool in STUBBED:
        (stubs / tool).write_text(text)
        (stubs / tool).chmod(0o755)
    env = {"PATH": f"{stubs}:{os.environ['PATH']}", "LC_ALL": "C"}
    done = subprocess.run(
        ["sh", "-c", script], cwd=tmp, env=env, capture_output=True, text=True, timeout=30
    )
    saved = restored.read_text() if restored.exists() else ""
    return StubRun(done.returncode, done.stderr, read_calls(log), saved)


def pairs(argv: list[str]) -> list[list[str]]:
    return [argv[i : i + 2] for i in range(len(argv) - 1)]


def test_the_stubbed_script_feeds_iptables_restore_its_rules(tmp_path: Path) -> None:
    script = script_for(SERVICES)
    run = run_with_stubs(tmp_path, script)
    assert run.returncode == 0, run.stderr
    assert run.calls_of("iptables-restore") == [["iptables-restore", "--noflush"]]
    assert run.restored.splitlines() == restore_input(script)


def test_a_missing_helper_is_started_with_the_vip_and_the_service_name(tmp_path: Path) -> None:
    run = run_with_stubs(tmp_path, script_for(SERVICES))
    (start,) = run.calls_of("docker", "run")
    assert start == [
        "docker",
        "run",
        "-d",
        "--name",
        "swarmctl-vip.web.front",
        "--restart",
        "always",
        "--network",
        "front",
        "--ip",
        "10.0.1.2",
        "--network-alias",
        "web",
        "--sysctl",
        "net.ipv4.conf.all.arp_ignore=8",
        "--label",
        f"swarmctl.cluster.id={CLUSTER_ID}",
        "--label",
        "swarmctl.vip=true",
        "busybox",
        "sleep",
        "2147483647",
    ]
    assert run.calls_of("docker", "rm") == []  # none was there to remove


def test_a_stopped_helper_is_removed_and_started_again(tmp_path: Path) -> None:
    listed = "swarmctl-vip.web.front/exited\n"
    run = run_with_stubs(tmp_path, script_for(SERVICES), {"ps": listed})
    assert run.calls_of("docker", "rm") == [["docker", "rm", "-f", "swarmctl-vip.web.front"]]
    assert len(run.calls_of("docker", "run")) == 1


def test_missing_helpers_are_all_started_and_each_failure_is_named(tmp_path: Path) -> None:
    helpers = tuple(
        Helper(f"swarmctl-vip.s{i}.front", f"s{i}", "front", f"10.0.1.{i + 2}") for i in range(6)
    )  # more than start at once
    script = script_for(replace(SERVICES, helpers=helpers))
    run = run_with_stubs(tmp_path, script, {"run-fails": BIND_ERROR})
    assert run.returncode == 3
    assert sorted(c[4] for c in run.calls_of("docker", "run")) == [h.name for h in helpers]
    assert sorted(run.stderr.splitlines()) == [
        f"starting helper {h.name}: docker: Error response from daemon: network front not found"
        for h in helpers
    ]


def test_a_helper_is_started_with_the_services_aliases_too(tmp_path: Path) -> None:
    helper = Helper("swarmctl-vip.st_db.back.1a2b3c4d", "st_db", "back", "10.0.1.2", ("db", "x y"))
    run = run_with_stubs(tmp_path, script_for(replace(SERVICES, helpers=(helper,))))
    (start,) = run.calls_of("docker", "run")
    aliases = [pair[1] for pair in pairs(start) if pair[0] == "--network-alias"]
    assert aliases == ["st_db", "db", "x y"]


def test_a_running_helper_is_left_alone(tmp_path: Path) -> None:
    listed = "swarmctl-vip.web.front/running\n"
    run = run_with_stubs(tmp_path, script_for(SERVICES), {"ps": listed})
    assert run.calls_of("docker", "run") == []
    assert run.calls_of("docker", "rm") == []


def test_helpers_of_this_cluster_no_longer_wanted_are_removed(tmp_path: Path) -> None:
    listed = "swarmctl-vip.old.front/running\nswarmctl-vip.web.front/running\n"
    run = run_with_stubs(tmp_path, script_for(SERVICES), {"ps": listed})
    assert run.calls_of("docker", "rm") == [["docker", "rm", "-f", "swarmctl-vip.old.front"]]
    (listing,) = run.calls_of("docker", "ps")
    assert ["--filter", f"label=swarmctl.cluster.id={CLUSTER_ID}"] in pairs(listing)


def test_the_mesh_chains_are_hooked_into_nat_and_forward(tmp_path: Path) -> None:
    run = run_with_stubs(tmp_path, script_for(SERVICES))
    inserted = [" ".join(c[1:]) for c in run.calls_of("iptables") if "-I" in c]
    assert inserted == [
        "-t nat -I PREROUTING -m addrtype --dst-type LOCAL -j SWARMCTL-INGRESS",
        "-t nat -I PREROUTING -j SWARMCTL-VIP",
        "-t nat -I OUTPUT -m addrtype --dst-type LOCAL -j SWARMCTL-INGRESS",
        "-t nat -I OUTPUT -j SWARMCTL-VIP",
        "-t nat -I POSTROUTING -j SWARMCTL-SNAT",
        "-t filter -I FORWARD -j SWARMCTL-FORWARD",
    ]


def test_with_docker_user_the_forward_rule_goes_there(tmp_path: Path) -> None:
    run = run_with_stubs(tmp_path, script_for(SERVICES), {"docker-user": ""})
    assert ["iptables", "-t", "filter", "-I", "DOCKER-USER", "-j", "SWARMCTL-FORWARD"] in (
        run.calls
    )
    assert not [c for c in run.calls_of("iptables") if "FORWARD" in c and "-I" in c[:4]]


def test_stale_mesh_chains_are_flushed_and_deleted_and_others_kept(tmp_path: Path) -> None:
    nat = f"-P PREROUTING ACCEPT\n-N DOCKER\n-N SWI-0123456789ab\n-N {PORT_CHAIN}\n-N {VIP_CHAIN}\n"
    run = run_with_stubs(tmp_path, script_for(SERVICES), {"nat": nat})
    assert run.returncode == 0, run.stderr
    removed = [c[3:] for c in run.calls_of("iptables", "-t", "nat") if c[3] in ("-F", "-X")]
    assert removed == [["-F", "SWI-0123456789ab"], ["-X", "SWI-0123456789ab"]]


# -------------------------------------------------------------------- hostile values
# Validation refuses these long before the template sees them; the dataclasses are built
# directly here, so the template's quoting is all that stands between a value and the
# node's shell. `rm` and `touch` are stubbed, so an injected command is only logged.


def hostile(what: str, marker: Path) -> str:
    return f"{what}\n$(touch {marker}) `touch {marker}`; rm -rf / 'it''s' \"dq\" a  b\tc\n"


@dataclass(frozen=True)
class Hostile:
    helper: str
    service: str
    network: str
    image: str
    cluster_id: str
    marker: Path
    script: str
    run: StubRun


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory) -> Hostile:
    tmp = tmp_path_factory.mktemp("hostile")
    marker = tmp / "pwned"
    helper, service, network, image, cluster_id = (
        hostile(w, marker) for w in ("helper", "service", "network", "image", "cluster")
    )
    services = replace(
        SERVICES,
        cluster_id=cluster_id,
        helpers=(Helper(helper, service, network, "10.0.1.2"),),
        helper_image=image,
    )
    script = script_for(services)
    run = run_with_stubs(tmp, script)
    return Hostile(helper, service, network, image, cluster_id, marker, script, run)


def test_the_script_with_hostile_names_is_valid_shell(hostile_run: Hostile) -> None:
    assert sh_syntax_errors(hostile_run.script) == ""


def test_running_the_script_runs_nothing_hidden_in_hostile_names(hostile_run: Hostile) -> None:
    assert hostile_run.run.returncode == 0, hostile_run.run.stderr
    assert not hostile_run.marker.exists()
    assert hostile_run.run.calls_of("rm") == []
    assert hostile_run.run.calls_of("touch") == []


def test_hostile_names_reach_docker_intact_as_single_arguments(hostile_run: Hostile) -> None:
    h, run = hostile_run, hostile_run.run
    (start,) = run.calls_of("docker", "run")
    assert ["--name", h.helper] in pairs(start)
    assert ["--network", h.network] in pairs(start)
    assert ["--network-alias", h.service] in pairs(start)
    assert ["--label", f"swarmctl.cluster.id={h.cluster_id}"] in pairs(start)
    assert start[-3:] == [h.image, "sleep", "2147483647"]


def test_hostile_names_stay_out_of_the_iptables_rules(hostile_run: Hostile) -> None:
    restored = hostile_run.run.restored
    assert restored.splitlines() == restore_input(script_for(SERVICES))
    assert "touch" not in restored


def test_a_hostile_protocol_cannot_end_the_iptables_rules(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    escape = f"tcp\nRULES\n: > {marker}\ncat <<'RULES'\n#"
    port = IngressPort(escape, 30000, Destination(PORT_CHAIN, ("10.255.0.17:80",)))
    try:
        script = script_for(replace(SERVICES, ports=(port,)))
    except ValueError:
        return
    run_with_stubs(tmp_path, script)
    assert not marker.exists()


# ------------------------------------------------------------- failures and the pause image
BIND_ERROR = (
    "docker: Error response from daemon: network front not found\n\n"
    "Run 'docker run --help' for more information\n"
)


def test_a_helper_that_cannot_start_leaves_every_rule_written(tmp_path: Path) -> None:
    script = script_for(SERVICES)
    run = run_with_stubs(tmp_path, script, {"run-fails": BIND_ERROR})
    assert run.returncode == 3
    assert run.restored.splitlines() == restore_input(script)
    assert len([c for c in run.calls_of("iptables") if "-I" in c]) == 6
    assert run.stderr.splitlines() == [
        "starting helper swarmctl-vip.web.front: "
        "docker: Error response from daemon: network front not found"
    ]


def test_rules_that_fail_to_restore_are_named_and_the_helpers_still_start(tmp_path: Path) -> None:
    run = run_with_stubs(tmp_path, script_for(SERVICES), {"restore-fails": ""})
    assert run.returncode == 3
    assert run.stderr.splitlines() == [
        "writing the mesh and VIP rules: iptables-restore: line 3 failed"
    ]
    assert len(run.calls_of("docker", "run")) == 1


def test_without_an_image_of_their_own_helpers_run_the_imported_pause_image(
    tmp_path: Path,
) -> None:
    run = run_with_stubs(tmp_path, script_for(replace(SERVICES, helper_image="")))
    assert run.returncode == 0, run.stderr
    (imported,) = run.calls_of("docker", "import")
    assert imported == ["docker", "import", "--change", 'CMD ["/pause"]', "-", pause.IMAGE]
    arch = pause.docker_arch(platform.machine())
    assert (tmp_path / "answers" / "imported").read_bytes() == pause.archive(arch)
    (start,) = run.calls_of("docker", "run")
    assert start[-1] == pause.IMAGE


def test_a_node_that_has_the_pause_image_does_not_import_it_again(tmp_path: Path) -> None:
    run = run_with_stubs(tmp_path, script_for(replace(SERVICES, helper_image="")), {"image": ""})
    assert run.calls_of("docker", "import") == []
    assert run.calls_of("docker", "run")[0][-1] == pause.IMAGE


def test_a_script_without_helpers_carries_no_pause_image() -> None:
    assert "base64" not in script_for(replace(SERVICES, helpers=(), helper_image=""))
