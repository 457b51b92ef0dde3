"""How services and tasks are shown and derived, without hosts: `service inspect`'s JSON,
the PORTS column, `service ps` rows, its filters, the task state read from `docker
inspect`, each node's desired routing mesh, and published ports and virtual IPs.
"""

import ipaddress
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from swarmctl import observe
from swarmctl.cli.service import _filter, inspect_json, ports_text
from swarmctl.cli.taskview import current_state, ordered, print_tasks, task_name
from swarmctl.errors import SwarmctlError
from swarmctl.models import (
    Mode,
    MountSpec,
    Network,
    Node,
    PortSpec,
    PublishMode,
    Resources,
    RestartCondition,
    RestartPolicy,
    Role,
    Service,
    ServiceSpec,
    Task,
    TaskState,
)
from swarmctl.network import mesh
from swarmctl.network.endpoints import publish, vips
from swarmctl.runtime.containers import from_inspect

STAMP = "2024-05-01T12:00:00.000+00:00"
CLUSTER_ID = "clusterid0000000000000001"


def network(id: str, name: str, subnet: str, node_ranges: dict[str, str]) -> Network:
    gateway = str(ipaddress.IPv4Network(subnet).network_address + 1)
    return Network(id, name, subnet, gateway, 4096, STAMP, node_ranges=node_ranges)


FRONT = network(
    "frontnet0000000000000000a",
    "front",
    "10.0.1.0/24",
    {"n1": "10.0.1.16/28", "n2": "10.0.1.32/28"},
)
INGRESS = network(
    "ingressnet00000000000000i",
    "ingress",
    "10.255.0.0/24",
    {"n1": "10.255.0.16/28", "n2": "10.255.0.32/28"},
)
NETWORKS = [FRONT, INGRESS]


def node(id: str) -> Node:
    return Node(id, f"host-{id}", Role.WORKER, "192.168.56.10", STAMP, STAMP)


N1, N2, N3 = node("n1"), node("n2"), node("n3")  # n3 is in no network
NODES = {n.id: n for n in (N1, N2, N3)}


def service(name: str = "web", id: str = "websvc000000000000000000w", **spec: object) -> Service:
    fields: dict[str, Any] = {"published": {}, "vips": {}}
    for key in ("published", "vips", "version"):
        if key in spec:
            fields[key] = spec.pop(key)
    built = ServiceSpec(name, "nginx:1.25", **spec)  # type: ignore[arg-type]
    return Service(id, built, STAMP, STAMP, **fields)


FULL = service(
    args=("nginx", "-g", "daemon off;"),
    env=("A=1", "B=two words"),
    labels={"team": "web"},
    replicas=3,
    networks=("front",),
    ports=(PortSpec(80), PortSpec(443, 8443, "udp", PublishMode.HOST)),
    constraints=("node.labels.zone==a",),
    placement_prefs=("spread=node.labels.rack",),
    max_replicas_per_node=2,
    reservations=Resources(500_000_000, 2**27),
    limits=Resources(10**9, 2**28),
    restart=RestartPolicy(RestartCondition.ON_FAILURE, delay=5, max_attempts=3, window=60),
    mounts=(MountSpec("bind", "/srv/www", "/usr/share/nginx/html", readonly=True),),
    published={"80/tcp": 30000, "443/udp": 8443},
    vips={FRONT.id: "10.0.1.2"},
    version=7,
)


# ------------------------------------------------------------------------- inspect JSON


def test_inspect_json_has_swarms_top_level_keys() -> None:
    shown = inspect_json(FULL, NETWORKS)
    assert list(shown) == ["ID", "Version", "CreatedAt", "UpdatedAt", "Spec", "Endpoint"]
    assert (shown["ID"], shown["Version"], shown["CreatedAt"], shown["UpdatedAt"]) == (
        FULL.id,
        {"Index": 7},
        STAMP,
        STAMP,
    )


def test_inspect_json_is_plain_json() -> None:
    assert json.loads(json.dumps(inspect_json(FULL, NETWORKS))) == inspect_json(FULL, NETWORKS)


def test_inspect_json_spec_has_swarms_keys() -> None:
    spec = inspect_json(FULL, NETWORKS)["Spec"]
    assert set(spec) >= {
        "Name",
        "Labels",
        "TaskTemplate",
        "Mode",
        "UpdateConfig",
        "Networks",
        "EndpointSpec",
    }
    assert (spec["Name"], spec["Labels"]) == ("web", {"team": "web"})


def test_inspect_json_container_spec_holds_image_args_env_and_mounts() -> None:
    container = inspect_json(FULL, NETWORKS)["Spec"]["TaskTemplate"]["ContainerSpec"]
    assert container["Image"] == "nginx:1.25"
    assert container["Args"] == ["nginx", "-g", "daemon off;"]
    assert container["Env"] == ["A=1", "B=two words"]
    assert container["Mounts"] == [
        {
            "Type": "bind",
            "Source": "/srv/www",
            "Target": "/usr/share/nginx/html",
            "ReadOnly": True,
        }
    ]


def test_inspect_json_shows_a_stack_services_entrypoint_hostname_labels_and_aliases() -> None:
    spec = replace(
        FULL.spec,
        command=("/bin/sh", "-c"),
        hostname="web.local",
        container_labels={"com.docker.stack.namespace": "st"},
        network_aliases={"front": ("web-key",)},
    )
    shown = inspect_json(replace(FULL, spec=spec), NETWORKS)["Spec"]
    container = shown["TaskTemplate"]["ContainerSpec"]
    assert container["Command"] == ["/bin/sh", "-c"]
    assert container["Hostname"] == "web.local"
    assert container["Labels"] == {"com.docker.stack.namespace": "st"}
    assert shown["Networks"][0]["Aliases"] == ["web", "web-key"]
    plain = inspect_json(FULL, NETWORKS)["Spec"]["TaskTemplate"]["ContainerSpec"]
    assert not {"Command", "Hostname", "Labels"} & set(plain)


def test_inspect_json_resources_are_in_nano_cpus_and_bytes() -> None:
    resources = inspect_json(FULL, NETWORKS)["Spec"]["TaskTemplate"]["Resources"]
    assert resources == {
        "Limits": {"NanoCPUs": 10**9, "MemoryBytes": 2**28},
        "Reservations": {"NanoCPUs": 500_000_000, "MemoryBytes": 2**27},
    }


def test_inspect_json_restart_policy_gives_durations_in_nanoseconds() -> None:
    policy = inspect_json(FULL, NETWORKS)["Spec"]["TaskTemplate"]["RestartPolicy"]
    assert (policy["Condition"], policy["Delay"], policy["MaxAttempts"]) == (
        "on-failure",
        5 * 10**9,
        3,
    )
    assert policy["Window"] == 60 * 10**9


def test_inspect_json_placement_has_constraints_and_spread_preferences() -> None:
    placement = inspect_json(FULL, NETWORKS)["Spec"]["TaskTemplate"]["Placement"]
    assert placement["Constraints"] == ["node.labels.zone==a"]
    assert placement["Preferences"] == [{"Spread": {"SpreadDescriptor": "node.labels.rack"}}]
    assert placement["MaxReplicas"] == 2


def test_inspect_json_mode_is_replicated_with_replicas() -> None:
    assert inspect_json(FULL, NETWORKS)["Spec"]["Mode"] == {"Replicated": {"Replicas": 3}}


def test_inspect_json_mode_of_a_global_service_is_global() -> None:
    assert inspect_json(service(mode=Mode.GLOBAL), NETWORKS)["Spec"]["Mode"] == {"Global": {}}


def test_inspect_json_has_an_update_config() -> None:
    assert "Parallelism" in inspect_json(FULL, NETWORKS)["Spec"]["UpdateConfig"]


def test_inspect_json_networks_are_targets_by_id_with_ingress_for_mesh_ports() -> None:
    networks = inspect_json(FULL, NETWORKS)["Spec"]["Networks"]
    assert [n["Target"] for n in networks] == [FRONT.id, INGRESS.id]
    assert networks[0]["Aliases"] == ["web"]


def test_inspect_json_networks_leave_out_ingress_without_mesh_ports() -> None:
    host_only = service(networks=("front",), ports=(PortSpec(80, 8080, mode=PublishMode.HOST),))
    assert [n["Target"] for n in inspect_json(host_only, NETWORKS)["Spec"]["Networks"]] == [
        FRONT.id
    ]


def test_inspect_json_endpoint_spec_lists_ports_with_their_published_port() -> None:
    endpoint = inspect_json(FULL, NETWORKS)["Spec"]["EndpointSpec"]
    assert endpoint == {
        "Mode": "vip",
        "Ports": [
            {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 30000, "PublishMode": "ingress"},
            {"Protocol": "udp", "TargetPort": 443, "PublishedPort": 8443, "PublishMode": "host"},
        ],
    }


def test_inspect_json_endpoint_has_ports_and_virtual_ips_with_the_subnets_prefix() -> None:
    endpoint = inspect_json(FULL, NETWORKS)["Endpoint"]
    assert endpoint["Ports"] == inspect_json(FULL, NETWORKS)["Spec"]["EndpointSpec"]["Ports"]
    assert endpoint["VirtualIPs"] == [{"NetworkID": FRONT.id, "Addr": "10.0.1.2/24"}]


# ---------------------------------------------------------------------------- ports_text


def test_the_ports_column_shows_published_to_target_and_marks_host_mode() -> None:
    assert ports_text(FULL) == "*:30000->80/tcp, *:8443->443/udp (host)"


def test_the_ports_column_of_a_service_without_ports_is_empty() -> None:
    assert ports_text(service()) == ""


def test_the_ports_column_never_shows_none_for_a_host_port_the_engine_picks() -> None:
    engine_picks = service(ports=(PortSpec(80, mode=PublishMode.HOST),))
    assert "None" not in ports_text(engine_picks)


# ------------------------------------------------------------------------------ taskview


NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


class FrozenDatetime(datetime):
    @classmethod
    def now(cls, tz: Any = None) -> "FrozenDatetime":
        return cls.fromtimestamp(NOW.timestamp(), tz)


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """taskview words states relative to now; the stamps below are fixed, so now is too."""
    monkeypatch.setattr("swarmctl.clock.datetime", FrozenDatetime)


def ago(seconds: float) -> str:
    """A stamp `seconds` before the frozen now."""
    return (NOW - timedelta(seconds=seconds)).isoformat(timespec="milliseconds")


def task(
    id: str, slot: int, state: TaskState, since: float, node_id: str = "n1", **fields: object
) -> Task:
    return Task(
        id=id,
        service_id=FULL.id,
        slot=slot,
        created_at=ago(since + 5),
        node_id=node_id,
        state=state,
        timestamps={state.value: ago(since)},
        **fields,  # type: ignore[arg-type]
    )


CURRENT = task("cur000000000000000000001", 1, TaskState.RUNNING, 301)
OLDER = task(
    "old000000000000000000001",
    1,
    TaskState.FAILED,
    3600,
    "n2",
    desired_state=TaskState.SHUTDOWN,
    error="task: non-zero exit (1)",
)
OTHER_SLOT = task("two000000000000000000002", 2, TaskState.RUNNING, 30, "n2")


def test_the_current_state_is_worded_like_swarms() -> None:
    assert current_state(CURRENT) == "Running 5 minutes ago"
    assert current_state(OLDER) == "Failed About an hour ago"


def test_a_new_task_shows_as_pending() -> None:
    assert current_state(task("t", 1, TaskState.NEW, 10)).startswith("Pending 10 seconds")


def test_tasks_are_grouped_by_slot_newest_first_with_history_marked() -> None:
    rows = ordered([OLDER, OTHER_SLOT, CURRENT])
    assert [(t.id, history) for t, history in rows] == [
        (CURRENT.id, False),
        (OLDER.id, True),
        (OTHER_SLOT.id, False),
    ]


def test_a_task_is_named_after_its_service_and_slot_or_node() -> None:
    assert task_name(CURRENT, FULL) == "web.1"
    assert task_name(replace(CURRENT, slot=0), FULL) == "web.n1"
    assert task_name(CURRENT, None) == FULL.id[:12] + ".1"


def printed(capsys: pytest.CaptureFixture[str], tasks: list[Task], **options: Any) -> list[str]:
    print_tasks(tasks, {FULL.id: FULL}, NODES, **options)
    return capsys.readouterr().out.splitlines()


def test_service_ps_shows_history_rows_under_the_current_task(
    capsys: pytest.CaptureFixture[str],
) -> None:
    header, current, history, other = printed(capsys, [OLDER, OTHER_SLOT, CURRENT])
    assert header.split() == [
        "ID",
        "NAME",
        "IMAGE",
        "NODE",
        "DESIRED",
        "STATE",
        "CURRENT",
        "STATE",
        "ERROR",
    ]
    assert current.split("   ")[:2] == [CURRENT.id[:12], "web.1"]
    assert " \\_ web.1 " in history
    assert "   web.2 " in other


def test_service_ps_rows_show_image_node_desired_and_current_state(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, current, history, _ = printed(capsys, [OLDER, OTHER_SLOT, CURRENT])
    cells = [c.strip() for c in current.split("   ") if c.strip()]
    assert cells == [
        CURRENT.id[:12],
        "web.1",
        "nginx:1.25",
        "host-n1",
        "Running",
        "Running 5 minutes ago",
    ]
    assert "Shutdown" in history and "Failed About an hour ago" in history
    assert history.endswith('"task: non-zero exit (1)"')


def test_service_ps_truncates_long_errors_unless_asked_not_to(
    capsys: pytest.CaptureFixture[str],
) -> None:
    long = replace(OLDER, error="x" * 60)
    assert printed(capsys, [long])[1].endswith('"' + "x" * 39 + '…"')
    assert printed(capsys, [long], no_trunc=True)[1].endswith('"' + "x" * 60 + '"')


def test_service_ps_quiet_prints_full_task_ids_in_row_order(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ids = printed(capsys, [OLDER, OTHER_SLOT, CURRENT], quiet=True)
    assert ids == [CURRENT.id, OLDER.id, OTHER_SLOT.id]


def test_service_ps_json_prints_docker_rows_one_a_line(capsys: pytest.CaptureFixture[str]) -> None:
    current, history = [json.loads(line) for line in printed(capsys, [OLDER, CURRENT], fmt="json")]
    assert list(current) == [
        "CurrentState",
        "DesiredState",
        "Error",
        "ID",
        "Image",
        "Name",
        "Node",
        "Ports",
    ]
    assert current == {
        "CurrentState": "Running 5 minutes ago",
        "DesiredState": "Running",
        "Error": "",
        "ID": CURRENT.id[:12],
        "Image": "nginx:1.25",
        "Name": "web.1",
        "Node": "host-n1",
        "Ports": "*:8443->443/udp",
    }
    assert (history["Name"], history["Error"]) == (" \\_ web.1", '"task: non-zero exit (1)"')


def test_service_ps_takes_docker_templates(capsys: pytest.CaptureFixture[str]) -> None:
    assert printed(capsys, [OLDER, CURRENT], fmt="{{.Name}} {{.DesiredState}}") == [
        "web.1 Running",
        " \\_ web.1 Shutdown",
    ]
    header, row = printed(capsys, [CURRENT], fmt="table {{.ID}}\\t{{.CurrentState}}")
    assert header == "ID".ljust(12) + "   CURRENT STATE"
    assert row == CURRENT.id[:12] + "   Running 5 minutes ago"


# -------------------------------------------------------------------------------- _filter


def error_of(action: Callable[[], object]) -> str:
    with pytest.raises(SwarmctlError) as caught:
        action()
    return str(caught.value)


ALL = [CURRENT, OLDER, OTHER_SLOT]


def test_the_desired_state_filter_keeps_tasks_meant_to_run() -> None:
    assert _filter(ALL, ["desired-state=running"], NODES) == [CURRENT, OTHER_SLOT]
    assert _filter(ALL, ["desired-state=shutdown"], NODES) == [OLDER]


def test_the_accepted_desired_state_includes_running_tasks() -> None:
    assert _filter(ALL, ["desired-state=accepted"], NODES) == [CURRENT, OTHER_SLOT]


def test_the_node_filter_takes_a_hostname_or_a_node_id() -> None:
    assert _filter(ALL, ["node=host-n2"], NODES) == [OLDER, OTHER_SLOT]
    assert _filter(ALL, ["node=n1"], NODES) == [CURRENT]


def test_filters_combine() -> None:
    assert _filter(ALL, ["node=n2", "desired-state=running"], NODES) == [OTHER_SLOT]


def test_an_unknown_desired_state_is_refused_naming_the_choices() -> None:
    message = error_of(lambda: _filter(ALL, ["desired-state=gone"], NODES))
    assert "'desired-state=gone'" in message
    assert "running, shutdown or accepted" in message


@pytest.mark.parametrize("item", ["name=web", "desired-state", "bogus"])
def test_an_unknown_filter_is_refused_naming_the_known_ones(item: str) -> None:
    message = error_of(lambda: _filter(ALL, [item], NODES))
    assert repr(item) in message
    assert "desired-state" in message


# ------------------------------------------------------------------------- observe.observed


def observed(task: Task, record: dict[str, Any]) -> Task:
    """What the supervisor makes of a task given its container's record."""
    return observe.observed(task, from_inspect(record))


def inspected(
    status: str, exit: int = 0, oom: bool = False, health: str = "", **fields: Any
) -> dict[str, Any]:
    """A task container's full record, as `docker inspect` prints it."""
    state = {"Status": status, "ExitCode": exit, "OOMKilled": oom, "Error": ""}
    if health:
        state["Health"] = {"Status": health}
    return {
        "Id": "c0ffee",
        "Config": {"Labels": {"swarmctl.task.id": "t1"}},
        "State": state,
        "NetworkSettings": {
            "Networks": {"front": {"IPAddress": "10.0.1.18"}, "bridge": {"IPAddress": ""}}
        },
        **fields,
    }


PREPARING = Task(
    "t1",
    FULL.id,
    1,
    STAMP,
    node_id="n1",
    state=TaskState.PREPARING,
    timestamps={"preparing": STAMP},
)


def test_a_running_container_makes_the_task_running() -> None:
    seen = observed(PREPARING, inspected("running"))
    assert (seen.state, seen.message, seen.error, seen.exit_code) == (
        TaskState.RUNNING,
        "started",
        "",
        None,
    )
    assert {"starting", "running"} <= set(seen.timestamps)


def test_observing_records_the_container_and_its_network_addresses() -> None:
    seen = observed(PREPARING, inspected("running"))
    assert seen.container_id == "c0ffee"
    assert seen.addresses == {"front": "10.0.1.18"}


def test_a_task_already_running_keeps_its_timestamps() -> None:
    running = replace(PREPARING, state=TaskState.RUNNING, timestamps={"running": STAMP})
    assert observed(running, inspected("running")).timestamps == {"running": STAMP}


def test_a_container_that_exited_0_completes_the_task() -> None:
    seen = observed(PREPARING, inspected("exited", 0))
    assert (seen.state, seen.exit_code, seen.error) == (TaskState.COMPLETE, 0, "")


def test_a_container_that_exited_137_fails_the_task_with_the_code() -> None:
    seen = observed(PREPARING, inspected("exited", 137))
    assert (seen.state, seen.exit_code, seen.error) == (
        TaskState.FAILED,
        137,
        "task: non-zero exit (137)",
    )


def test_a_container_killed_for_memory_fails_the_task_saying_so() -> None:
    seen = observed(PREPARING, inspected("exited", 137, oom=True))
    assert (seen.state, seen.error) == (
        TaskState.FAILED,
        "task: container was killed: out of memory",
    )


def test_an_unhealthy_container_fails_the_task_even_while_it_runs() -> None:
    seen = observed(PREPARING, inspected("running", health="unhealthy"))
    assert (seen.state, seen.error) == (TaskState.FAILED, "task: dockerexec: unhealthy container")


def test_a_healthy_container_runs_one_still_starting_its_check_starts() -> None:
    assert observed(PREPARING, inspected("running", health="healthy")).state == TaskState.RUNNING
    assert observed(PREPARING, inspected("running", health="starting")).state == (
        TaskState.STARTING
    )


@pytest.mark.parametrize("status", ["created", "restarting"])
def test_a_container_not_yet_running_leaves_the_task_state_alone(status: str) -> None:
    seen = observed(PREPARING, inspected(status))
    assert (seen.state, seen.container_id) == (TaskState.PREPARING, "c0ffee")


def test_a_container_without_networks_has_no_addresses() -> None:
    no_networks = inspected("running", NetworkSettings={"Networks": None})
    assert observed(PREPARING, no_networks).addresses == {}


def test_a_task_joins_the_services_networks_and_ingress_for_mesh_ports() -> None:
    assert mesh.task_networks(FULL.spec) == ["front", "ingress"]
    host_only = service(networks=("front",), ports=(PortSpec(80, 8080, mode=PublishMode.HOST),))
    assert mesh.task_networks(host_only.spec) == ["front"]


# ------------------------------------------------------------------- mesh.node_services


def mesh_task(id: str, state: TaskState, desired: TaskState = TaskState.RUNNING) -> Task:
    number = int(id[-1])
    return Task(
        id,
        FULL.id,
        number,
        STAMP,
        node_id="n1",
        state=state,
        desired_state=desired,
        addresses={"front": f"10.0.1.{16 + number}", "ingress": f"10.255.0.{16 + number}"},
    )


MESH_TASKS = [
    mesh_task("t1", TaskState.RUNNING),
    mesh_task("t2", TaskState.ASSIGNED),
    mesh_task("t3", TaskState.RUNNING, desired=TaskState.SHUTDOWN),
    mesh_task("t4", TaskState.FAILED),
    mesh_task("t5", TaskState.RUNNING),
]


def services_on(target: Node, tasks: list[Task] = MESH_TASKS) -> mesh.NodeServices:
    return mesh.node_services(CLUSTER_ID, target, [FULL], tasks, NETWORKS, "busybox")


def test_helpers_go_only_to_nodes_that_have_the_network() -> None:
    assert [h.name for h in services_on(N1).helpers] == ["swarmctl-vip.web.front"]
    assert services_on(N3).helpers == ()


def test_a_helper_holds_the_virtual_ip_and_answers_the_service_name() -> None:
    (helper,) = services_on(N2).helpers
    assert (helper.service, helper.network, helper.address) == ("web", "front", "10.0.1.2")


def test_a_helper_answers_the_services_aliases_and_is_renamed_when_they_change() -> None:
    aliases = {"front": ("web-alias", "www")}
    spec = replace(FULL.spec, network_aliases=aliases)
    target = mesh.node_services(
        CLUSTER_ID, N2, [replace(FULL, spec=spec)], MESH_TASKS, NETWORKS, "busybox"
    )
    (helper,) = target.helpers
    assert (helper.service, helper.aliases) == ("web", ("web-alias", "www"))
    (plain,) = services_on(N2).helpers
    assert helper.name.startswith(plain.name + ".") and helper.name != plain.name


def test_mesh_targets_are_the_running_tasks_meant_to_run_only() -> None:
    (port,) = services_on(N1).ports
    assert port.destination.targets == ("10.255.0.17:80", "10.255.0.21:80")
    (vip,) = services_on(N1).vips
    assert vip.destination.targets == ("10.0.1.17", "10.0.1.21")


def test_an_ingress_port_answers_on_its_allocated_published_port() -> None:
    (port,) = services_on(N3).ports
    assert (port.protocol, port.published) == ("tcp", 30000)


def test_host_mode_ports_are_not_in_the_mesh() -> None:
    assert [p.published for p in services_on(N1).ports] == [30000]


def test_mesh_chains_are_stable_and_fit_iptables() -> None:
    first, again = services_on(N1), services_on(N2)
    assert first.ports[0].destination.chain == again.ports[0].destination.chain
    chains = [first.ports[0].destination.chain, first.vips[0].destination.chain]
    assert chains[0].startswith("SWI-") and chains[1].startswith("SWV-")
    assert max(len(c) for c in chains) <= 28


def test_a_service_with_no_running_task_has_rules_without_targets() -> None:
    services = services_on(N1, tasks=[])
    assert (services.ports[0].destination.targets, services.vips[0].destination.targets) == (
        (),
        (),
    )


def test_without_an_ingress_network_there_are_no_mesh_ports() -> None:
    alone = mesh.node_services(CLUSTER_ID, N1, [FULL], MESH_TASKS, [FRONT], "busybox")
    assert alone.ports == ()


def test_mesh_odds_give_each_of_n_targets_one_nth() -> None:
    assert [mesh.probability(i, 3) for i in range(2)] == ["0.33333", "0.50000"]
    assert mesh.probability(0, 2) == "0.50000"


# ------------------------------------------------------------------- publish and vips


def spec(*ports: PortSpec, name: str = "api", networks: tuple[str, ...] = ()) -> ServiceSpec:
    return ServiceSpec(name, "api:1", ports=ports, networks=networks)


def test_an_ingress_port_without_a_published_port_gets_one_from_30000() -> None:
    assert publish(spec(PortSpec(80)), [], {22}) == {"80/tcp": 30000}


def test_dynamic_ports_skip_those_other_services_publish() -> None:
    assert publish(spec(PortSpec(8080)), [FULL], {22}) == {"8080/tcp": 30001}


def test_dynamic_ports_are_per_protocol() -> None:
    assert publish(spec(PortSpec(53, protocol="udp")), [FULL], {22}) == {"53/udp": 30000}


def test_two_ports_of_one_spec_get_different_dynamic_ports() -> None:
    assert publish(spec(PortSpec(80), PortSpec(81)), [], {22}) == {
        "80/tcp": 30000,
        "81/tcp": 30001,
    }


def test_an_explicit_published_port_is_kept() -> None:
    assert publish(spec(PortSpec(80, 8080)), [FULL], {22}) == {"80/tcp": 8080}


def test_a_host_mode_port_without_a_published_port_is_left_to_the_engine() -> None:
    assert publish(spec(PortSpec(80, mode=PublishMode.HOST)), [], {22}) == {}


def test_a_port_another_service_publishes_is_refused_naming_that_service() -> None:
    message = error_of(lambda: publish(spec(PortSpec(80, 30000)), [FULL], {22}))
    assert message == "port 30000/tcp is already published by service web"


def test_a_mesh_port_on_another_services_host_port_is_refused() -> None:
    message = error_of(lambda: publish(spec(PortSpec(443, 8443, "udp")), [FULL], {22}))
    assert "already published by service web" in message


def test_the_same_number_over_another_protocol_is_free() -> None:
    assert publish(spec(PortSpec(80, 30000, "udp")), [FULL], {22}) == {"80/udp": 30000}


def test_the_ssh_port_is_refused_for_the_mesh() -> None:
    message = error_of(lambda: publish(spec(PortSpec(22, 2222)), [], {22, 2222}))
    assert "2222/tcp is the SSH port" in message


def test_the_ssh_port_number_over_udp_is_allowed() -> None:
    assert publish(spec(PortSpec(22, 22, "udp")), [], {22}) == {"22/udp": 22}


def test_dynamic_ports_skip_an_ssh_port_in_their_range() -> None:
    assert publish(spec(PortSpec(80)), [], {30000}) == {"80/tcp": 30001}


def test_two_services_may_publish_the_same_host_mode_port() -> None:
    host_8443 = spec(PortSpec(443, 8443, "udp", PublishMode.HOST))
    assert publish(host_8443, [FULL], {22}) == {"443/udp": 8443}


def test_a_service_gets_the_first_free_virtual_ip_of_each_network() -> None:
    assert vips(spec(networks=("front",)), {"front": FRONT}, []) == {FRONT.id: "10.0.1.2"}


def test_virtual_ips_other_services_hold_are_skipped() -> None:
    assert vips(spec(networks=("front",)), {"front": FRONT}, [FULL]) == {FRONT.id: "10.0.1.3"}


def test_a_service_on_no_network_has_no_virtual_ip() -> None:
    assert vips(spec(), {"front": FRONT}, [FULL]) == {}
