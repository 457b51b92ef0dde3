"""Host steps: what each place plans (as command text), and the executor carrying a
batch of them out over in-memory hosts (transport/fake.py)."""

from dataclasses import dataclass, field, replace
from types import SimpleNamespace

from swarmctl import executor, provision, sightings
from swarmctl.commands import steps
from swarmctl.commands.render import render
from swarmctl.errors import SwarmctlError
from swarmctl.facts import parse_facts, plan_join
from swarmctl.hoststep import HostStep, Kind
from swarmctl.models import NodeState
from swarmctl.network import networking
from swarmctl.network.overlay import NodeOverlays
from swarmctl.transport.fake import Failure, FakeHost, FakeHosts
from swarmctl.transport.ssh import CommandFailed, HostUnreachable
from tests.unit.test_control_loop import CLUSTER, NAMES, make_store, nodes
from tests.unit.test_facts import DEBIAN_FULL, DEBIAN_NO_DOCKER

A, B = "a" * 25, "b" * 25
APT = (
    "sh",
    "-c",
    "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io",
)

# ------------------------------------------------------------------- planned steps


def test_removing_strays_is_one_quoted_step_per_node_with_a_30_second_timeout() -> None:
    assert steps.remove_strays("worker1", [A, B]) == HostStep(
        "worker1",
        Kind.REMOVE_CONTAINERS,
        "{ for filter in label=swarmctl.task.id=aaaaaaaaaaaaaaaaaaaaaaaaa "
        "label=swarmctl.task.id=bbbbbbbbbbbbbbbbbbbbbbbbb; "
        'do docker ps -aq --filter "$filter"; done | xargs -r docker rm -f >/dev/null; } '
        "&& rm -rf -- /run/swarmctl/secrets/aaaaaaaaaaaaaaaaaaaaaaaaa "
        "/run/swarmctl/secrets/bbbbbbbbbbbbbbbbbbbbbbbbb "
        "&& { for d in $(find /run/swarmctl/secrets -mindepth 1 -maxdepth 1 -type d -mmin +10 "
        '2>/dev/null); do c=$(docker ps -aq --filter label=swarmctl.task.id="${d##*/}") '
        '&& [ -z "$c" ] && rm -rf -- "$d"; done; true; }',
        30.0,
    )


def test_a_leaving_host_loses_the_clusters_containers_then_its_overlays() -> None:
    removal, overlays = steps.clean(CLUSTER.id, "worker1")
    assert removal == HostStep(
        "worker1",
        Kind.REMOVE_CONTAINERS,
        "{ docker ps -aq --filter label=swarmctl.cluster.id=ccccccccccccccccccccccccc "
        "| xargs -r docker rm -f; } && { for d in $(find /run/swarmctl/secrets -mindepth 1 "
        '-maxdepth 1 -type d 2>/dev/null); do c=$(docker ps -aq --filter label=swarmctl.task.id="'
        '${d##*/}") && [ -z "$c" ] && rm -rf -- "$d"; done; true; }',
        120.0,
    )
    nothing = NodeOverlays(CLUSTER.id, "worker1", (), (), ())
    assert overlays == HostStep(
        "worker1", Kind.CLEAN, render("overlay/converge.sh.j2", o=nothing), 120.0
    )
    assert "wanted_ids=''\n" in overlays.command


def test_a_leave_whose_containers_the_supervisor_is_removing_too_still_cleans_overlays() -> None:
    hosts = FakeHosts(["worker1"])
    busy = "Error response from daemon: removal of container 4f2 is already in progress"
    hosts["worker1"].failures.append(Failure("docker rm -f", 123, busy, None))
    cleanup = steps.clean(CLUSTER.id, "worker1")
    (result,) = executor.run_steps(hosts, cleanup).values()
    assert not isinstance(result, Exception)
    assert hosts["worker1"].commands == [cleanup[0].command, cleanup[1].command]


def test_a_host_without_docker_plans_installing_then_starting_it() -> None:
    plan = plan_join(parse_facts(DEBIAN_NO_DOCKER), "worker1")
    assert steps.provision("worker1", plan.install_docker, plan.start_docker) == [
        HostStep("worker1", Kind.INSTALL_DOCKER, APT, 900.0),
        HostStep("worker1", Kind.START_DOCKER, ("systemctl", "enable", "--now", "docker"), 60.0),
    ]


def test_a_host_with_docker_running_plans_no_step() -> None:
    plan = plan_join(parse_facts(DEBIAN_FULL), "worker1")
    assert steps.provision("worker1", plan.install_docker, plan.start_docker) == []


def test_the_mesh_is_planned_for_every_node_but_those_down_or_skipped() -> None:
    members = nodes(4)
    members[1] = replace(members[1], state=NodeState.DOWN)
    planned = networking.mesh_steps(CLUSTER, members, [], [], [], skip={"node3"})
    assert [(s.host, s.kind, s.timeout, s.check) for s in planned] == [
        ("manager1", Kind.MESH, 120.0, False),
        ("worker2", Kind.MESH, 120.0, False),
    ]


# ------------------------------------------------------------------ the executor


def test_each_hosts_steps_run_in_order_and_a_host_out_of_reach_fails_alone() -> None:
    hosts = FakeHosts(NAMES[:3])
    hosts["worker1"].reachable = False
    batch = [
        HostStep("manager1", Kind.CLEAN, "first", 5.0),
        HostStep("worker1", Kind.CLEAN, "first", 5.0),
        HostStep("manager1", Kind.CLEAN, "second", 5.0),
        HostStep("worker2", Kind.OVERLAY, ("echo", "it's"), 5.0),
    ]
    results = executor.run_steps(hosts, batch)
    assert list(results) == ["manager1", "worker1", "worker2"]
    assert results["manager1"].command == "second"
    assert isinstance(results["worker1"], HostUnreachable)
    assert hosts["manager1"].commands == ["first", "second"]
    assert hosts["worker2"].commands == ["echo 'it'\"'\"'s'"]
    assert hosts["worker1"].commands == []


def test_a_failed_step_ends_its_hosts_steps_unless_it_is_only_read() -> None:
    hosts = FakeHosts(NAMES[:2])
    hosts["manager1"].fail_on("install", exit_code=100, stderr="E: no network")
    hosts["worker1"].fail_on("mesh", exit_code=1, stderr="ingress rule failed")
    results = executor.run_steps(
        hosts,
        [
            HostStep("manager1", Kind.INSTALL_DOCKER, "install", 900.0),
            HostStep("manager1", Kind.START_DOCKER, "start", 60.0),
            HostStep("worker1", Kind.MESH, "mesh", 120.0, check=False),
        ],
    )
    assert isinstance(results["manager1"], CommandFailed)
    assert hosts["manager1"].commands == ["install"]
    assert (results["worker1"].exit_code, results["worker1"].stderr) == (1, "ingress rule failed")


def test_a_host_not_in_the_inventory_is_an_error_of_its_own() -> None:
    results = executor.run_steps(FakeHosts(["manager1"]), [steps.remove_strays("ghost", [A])])
    assert isinstance(results["ghost"], SwarmctlError)


def test_strays_are_removed_where_the_node_answers_and_warned_about_where_not(tmp_path) -> None:
    store = make_store(tmp_path / "state.json", nodes(2), [])
    hosts = FakeHosts(NAMES[:2])
    stray = hosts["manager1"].add(CLUSTER.id, A)
    other = hosts["worker1"].add(CLUSTER.id, B)
    hosts["worker1"].reachable = False
    warnings = sightings.remove_strays(
        store,
        hosts,
        {"node0": [stray.id], "node1": [other.id]},
        nodes(2),
        {"node0": [stray], "node1": [other]},
    )
    assert warnings == ["worker1: connection refused"]
    assert hosts["manager1"].commands == [steps.remove_strays("manager1", [A]).command]
    assert hosts["manager1"].task_ids() == []


# ------------------------------------------------------------------- provisioning


@dataclass
class BareHost(FakeHost):
    """A Debian host without Docker until a step installs it; root login."""

    host: SimpleNamespace = field(
        default_factory=lambda: SimpleNamespace(address="10.99.245.12", iface=None, user="root")
    )
    sudo: bool = False

    def _act(self, line: str) -> str:
        if line == steps.CHECK_LOGIN:
            return "0\n"
        if line == render("host/facts.sh.j2"):
            installed = any("apt-get install" in c for c in self.commands)
            return DEBIAN_FULL if installed else DEBIAN_NO_DOCKER
        return super()._act(line)


def test_provisioning_installs_and_starts_docker_through_the_executor_then_looks_again() -> None:
    hosts = FakeHosts([])
    hosts.hosts = {"worker1": BareHost("worker1"), "worker2": BareHost("worker2")}
    hosts["worker2"].fail_on("apt-get install", exit_code=100, stderr="E: no network")
    done = provision.provision(hosts, ["worker1", "worker2"])  # type: ignore[arg-type]
    facts = render("host/facts.sh.j2")
    install = (
        "sh -c 'apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
        "docker.io'"
    )
    assert hosts["worker1"].commands == [
        steps.CHECK_LOGIN,
        facts,
        install,
        "systemctl enable --now docker",
        facts,
    ]
    assert done["worker1"].facts.engine_version == "20.10.24+dfsg1"
    assert isinstance(done["worker2"], CommandFailed)
    assert hosts["worker2"].commands == [steps.CHECK_LOGIN, facts, install]


def test_a_dry_run_provisioning_only_looks() -> None:
    hosts = FakeHosts([])
    hosts.hosts = {"worker1": BareHost("worker1")}
    done = provision.provision(hosts, ["worker1"], dry_run=True)  # type: ignore[arg-type]
    assert hosts["worker1"].commands == [steps.CHECK_LOGIN, render("host/facts.sh.j2")]
    assert done["worker1"].plan.install_docker == list(APT)
    assert done["worker1"].facts.engine_version == ""
