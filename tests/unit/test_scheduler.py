from collections import Counter
from dataclasses import replace
from random import Random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarmctl.constraints import parse_constraint
from swarmctl.errors import SwarmctlError
from swarmctl.models import (
    Availability,
    MountSpec,
    Node,
    NodeFacts,
    NodeState,
    PortSpec,
    PublishMode,
    Resources,
    Role,
    Service,
    ServiceSpec,
    Task,
)
from swarmctl.scheduler import (
    Decision,
    NodeLoad,
    global_nodes,
    local_volume,
    node_passes,
    schedule,
    volume_home,
)

SERVICE = "svc"
GIB = 2**30
CPU = 10**9


def node(name: str, **fields: object) -> Node:
    defaults: dict[str, object] = {
        "id": name,
        "hostname": name,
        "role": Role.WORKER,
        "address": "10.0.0.1",
        "created_at": "",
        "updated_at": "",
    }
    return Node(**{**defaults, **fields})  # type: ignore[arg-type]


def load(
    name: str,
    tasks: int = 0,
    other: int = 0,
    reserved: Resources | None = None,
    host_ports: frozenset[tuple[int, str]] = frozenset(),
    **fields: object,
) -> NodeLoad:
    """A node with `tasks` tasks of the service under test and `other` of another one."""
    return NodeLoad(
        node(name, **fields),
        service_tasks={SERVICE: tasks, "other": other},
        reserved=reserved or Resources(),
        host_ports=host_ports,
    )


def service(**spec: object) -> Service:
    return Service(SERVICE, ServiceSpec("web", "nginx", **spec), "", "")  # type: ignore[arg-type]


def placements(decisions: list[Decision]) -> Counter[str | None]:
    return Counter(decision.node_id for decision in decisions)


def with_cpus(cpus: int) -> NodeFacts:
    return NodeFacts(cpus=cpus, memory_bytes=4 * GIB)


HOST_80 = PortSpec(80, 80, "tcp", PublishMode.HOST)

# ------------------------------------------------------------------------------ filters


@pytest.mark.parametrize("state", [NodeState.DOWN, NodeState.UNKNOWN])
def test_a_node_that_is_not_ready_is_not_available_for_new_tasks(state: NodeState) -> None:
    assert node_passes(service(), load("a", state=state)) == "not available for new tasks"


@pytest.mark.parametrize("availability", [Availability.PAUSE, Availability.DRAIN])
def test_a_paused_or_drained_node_is_not_available_for_new_tasks(
    availability: Availability,
) -> None:
    assert node_passes(service(), load("a", availability=availability)) == (
        "not available for new tasks"
    )


def test_a_ready_active_node_accepts_a_task() -> None:
    assert node_passes(service(), load("a")) == ""


def test_a_node_failing_a_constraint_does_not_satisfy_the_scheduling_constraints() -> None:
    spec = service(constraints=("node.labels.zone==a", "node.role==worker"))
    assert node_passes(spec, load("a", labels={"zone": "b"})) == (
        "scheduling constraints not satisfied"
    )


def test_a_node_meeting_every_constraint_accepts_a_task() -> None:
    spec = service(constraints=("node.labels.zone==a", "node.role==worker"))
    assert node_passes(spec, load("a", labels={"zone": "a"})) == ""


def test_a_node_without_room_for_the_reservation_has_insufficient_resources() -> None:
    spec = service(reservations=Resources(nano_cpus=CPU))
    full = load("a", reserved=Resources(nano_cpus=2 * CPU), facts=with_cpus(2))
    assert node_passes(spec, full) == "insufficient resources"


def test_a_reservation_that_fills_the_node_exactly_fits() -> None:
    spec = service(reservations=Resources(nano_cpus=CPU, memory_bytes=GIB))
    room = load("a", reserved=Resources(CPU, 3 * GIB), facts=with_cpus(2))
    assert node_passes(spec, room) == ""


def test_memory_counts_as_well_as_cpus() -> None:
    spec = service(reservations=Resources(memory_bytes=2 * GIB))
    assert node_passes(spec, load("a", reserved=Resources(0, 3 * GIB), facts=with_cpus(2))) == (
        "insufficient resources"
    )


def test_a_node_with_unknown_resources_refuses_a_task_with_reservations() -> None:
    spec = service(reservations=Resources(memory_bytes=1))
    assert node_passes(spec, load("a")) == "insufficient resources"


def test_a_node_with_unknown_resources_accepts_a_task_without_reservations() -> None:
    assert node_passes(service(), load("a", reserved=Resources(CPU, GIB))) == ""


def test_a_taken_host_mode_port_is_in_use() -> None:
    spec = service(ports=(HOST_80,))
    assert node_passes(spec, load("a", host_ports=frozenset({(80, "tcp")}))) == (
        "has port 80/tcp in use"
    )


def test_a_host_port_taken_for_another_protocol_is_free() -> None:
    spec = service(ports=(HOST_80,))
    assert node_passes(spec, load("a", host_ports=frozenset({(80, "udp")}))) == ""


def test_ingress_ports_never_conflict_on_a_node() -> None:
    spec = service(ports=(PortSpec(80, 80),))
    assert node_passes(spec, load("a", host_ports=frozenset({(80, "tcp")}))) == ""


def test_a_host_mode_port_without_a_published_port_never_conflicts() -> None:
    spec = service(ports=(PortSpec(80, None, "tcp", PublishMode.HOST),))
    assert node_passes(spec, load("a", host_ports=frozenset({(80, "tcp")}))) == ""


def test_a_node_with_max_replicas_of_the_service_has_reached_the_limit() -> None:
    assert node_passes(service(max_replicas_per_node=2), load("a", tasks=2)) == (
        "max replicas per node reached"
    )


def test_tasks_of_other_services_do_not_count_towards_max_replicas() -> None:
    assert node_passes(service(max_replicas_per_node=2), load("a", tasks=1, other=5)) == ""


def test_a_node_is_refused_for_the_first_filter_it_fails() -> None:
    spec = service(constraints=("node.labels.zone==a",), max_replicas_per_node=1)
    assert node_passes(spec, load("a", tasks=1, state=NodeState.DOWN)) == (
        "not available for new tasks"
    )


# ---------------------------------------------------------------------------- spreading


def test_five_tasks_on_three_equal_nodes_go_two_two_one() -> None:
    decisions = schedule(service(), 5, [load("a"), load("b"), load("c")])
    assert sorted(placements(decisions).values()) == [1, 2, 2]


def test_each_task_goes_to_the_node_with_fewest_tasks_of_the_service() -> None:
    decisions = schedule(service(), 3, [load("a", tasks=2), load("b", tasks=0)])
    assert [d.node_id for d in decisions] == ["b", "b", "a"]


def test_ties_are_broken_by_fewest_tasks_overall() -> None:
    decisions = schedule(service(), 1, [load("a", other=3), load("b", other=1)])
    assert decisions == [Decision("b")]


def test_remaining_ties_are_broken_by_hostname() -> None:
    decisions = schedule(service(), 1, [load("z", id="1"), load("m", id="2")])
    assert decisions == [Decision("2")]


def test_no_tasks_to_place_gives_no_decisions() -> None:
    assert schedule(service(), 0, [load("a")]) == []


def test_a_placed_host_port_makes_the_node_refuse_the_next_task() -> None:
    decisions = schedule(service(ports=(HOST_80,)), 3, [load("a"), load("b")])
    assert decisions == [
        Decision("a"),
        Decision("b"),
        Decision(None, "no suitable node (2 nodes have port 80/tcp in use)"),
    ]


def test_placed_reservations_fill_a_node_then_the_others_take_the_tasks() -> None:
    spec = service(reservations=Resources(nano_cpus=CPU))
    decisions = schedule(spec, 4, [load("a", facts=with_cpus(1)), load("b", facts=with_cpus(8))])
    assert [d.node_id for d in decisions] == ["a", "b", "b", "b"]


def test_max_replicas_per_node_stops_placements_on_a_node() -> None:
    decisions = schedule(service(max_replicas_per_node=1), 3, [load("a"), load("b")])
    assert decisions[2] == Decision(
        None, "no suitable node (max replicas per node reached on 2 nodes)"
    )


def test_the_explanation_counts_nodes_per_filter_in_pipeline_order() -> None:
    spec = service(
        constraints=("node.labels.zone==a",),
        reservations=Resources(nano_cpus=CPU),
        ports=(HOST_80,),
        max_replicas_per_node=1,
    )
    zone_a = {"labels": {"zone": "a"}, "facts": with_cpus(4)}
    nodes = [
        load("maxed", tasks=1, **zone_a),
        load("port", host_ports=frozenset({(80, "tcp")}), **zone_a),
        load("full", reserved=Resources(nano_cpus=4 * CPU), **zone_a),
        load("zone-b", labels={"zone": "b"}, facts=with_cpus(4)),
        load("down", state=NodeState.DOWN, **zone_a),
        load("drained", availability=Availability.DRAIN, **zone_a),
    ]
    assert schedule(spec, 1, nodes) == [
        Decision(
            None,
            "no suitable node (2 nodes not available for new tasks; "
            "scheduling constraints not satisfied on 1 node; insufficient resources on 1 node; "
            "1 node has port 80/tcp in use; max replicas per node reached on 1 node)",
        )
    ]


def test_every_unplaced_task_gets_the_explanation() -> None:
    decisions = schedule(service(), 2, [load("a", availability=Availability.PAUSE)])
    assert (
        decisions == [Decision(None, "no suitable node (1 node not available for new tasks)")] * 2
    )


def test_with_no_nodes_the_explanation_says_so() -> None:
    assert schedule(service(), 1, []) == [
        Decision(None, "no suitable node (no nodes in the cluster)")
    ]


def test_an_invalid_constraint_in_the_spec_is_an_error() -> None:
    with pytest.raises(SwarmctlError, match="constraint 'zone=a'"):
        schedule(service(constraints=("zone=a",)), 1, [load("a")])


def test_an_invalid_placement_preference_in_the_spec_is_an_error() -> None:
    with pytest.raises(SwarmctlError, match="placement preference 'zone'"):
        schedule(service(placement_prefs=("zone",)), 1, [load("a")])


def test_the_same_input_gives_the_same_decisions() -> None:
    nodes = [load(name, other=i % 2) for i, name in enumerate("edcba")]
    assert schedule(service(), 7, nodes) == schedule(service(), 7, nodes)


def test_the_order_of_the_nodes_does_not_change_the_decisions() -> None:
    nodes = [load(name, other=i % 2) for i, name in enumerate("edcba")]
    assert schedule(service(), 7, nodes) == schedule(service(), 7, nodes[::-1])


# -------------------------------------------------------------------------- preferences

ZONE = ("spread=node.labels.zone",)


def zoned(name: str, zone: str | None, tasks: int = 0) -> NodeLoad:
    return load(name, tasks, labels={} if zone is None else {"zone": zone})


def test_a_spread_preference_balances_zones_rather_than_nodes() -> None:
    nodes = [zoned("a1", "a"), zoned("a2", "a"), zoned("b1", "b")]
    decisions = schedule(service(placement_prefs=ZONE), 4, nodes)
    assert placements(decisions) == {"a1": 1, "a2": 1, "b1": 2}


def test_nodes_without_the_label_form_a_group_of_their_own() -> None:
    nodes = [zoned("a1", "a"), zoned("a2", "a"), zoned("x1", None), zoned("x2", None)]
    decisions = schedule(service(placement_prefs=ZONE), 2, nodes)
    assert placements(decisions) == {"a1": 1, "x1": 1}


def test_the_zone_with_fewest_tasks_of_the_service_gets_the_next_task() -> None:
    nodes = [zoned("a1", "a", tasks=1), zoned("a2", "a", tasks=1), zoned("b1", "b", tasks=1)]
    assert schedule(service(placement_prefs=ZONE), 1, nodes) == [Decision("b1")]


def test_tasks_on_nodes_that_take_no_new_task_still_count_for_their_zone() -> None:
    drained = load("a1", tasks=3, labels={"zone": "a"}, availability=Availability.DRAIN)
    nodes = [drained, zoned("a2", "a"), zoned("b1", "b")]
    decisions = schedule(service(placement_prefs=ZONE), 3, nodes)
    assert [d.node_id for d in decisions] == ["b1", "b1", "b1"]


def test_a_zone_whose_nodes_are_all_refused_gets_no_task() -> None:
    nodes = [zoned("a1", "a"), load("b1", labels={"zone": "b"}, state=NodeState.DOWN)]
    decisions = schedule(service(placement_prefs=ZONE), 2, nodes)
    assert [d.node_id for d in decisions] == ["a1", "a1"]


def test_several_preferences_spread_as_a_hierarchy() -> None:
    def racked(name: str, zone: str, rack: str) -> NodeLoad:
        return load(name, labels={"zone": zone, "rack": rack})

    nodes = [racked("a1", "a", "r1"), racked("a2", "a", "r1"), racked("a3", "a", "r2")]
    nodes += [racked("b1", "b", "r1")]
    prefs = (*ZONE, "spread=node.labels.rack")
    decisions = schedule(service(placement_prefs=prefs), 4, nodes)
    # Zone a gets two tasks, one on each of its racks; zone b gets the other two.
    assert placements(decisions) == {"a1": 1, "a3": 1, "b1": 2}


# ------------------------------------------------------------------------ global services


def test_global_nodes_names_every_node_with_its_reason_or_nothing() -> None:
    nodes = [load("a"), load("b", availability=Availability.DRAIN)]
    assert global_nodes(service(), nodes) == {"a": "", "b": "not available for new tasks"}


def test_a_global_task_is_not_refused_for_the_room_its_own_task_takes() -> None:
    spec = service(reservations=Resources(nano_cpus=2 * CPU))
    full = load("a", tasks=1, reserved=Resources(nano_cpus=2 * CPU), facts=with_cpus(2))
    assert global_nodes(spec, [full]) == {"a": ""}


def test_a_global_task_is_not_refused_for_the_port_its_own_task_takes() -> None:
    spec = service(ports=(HOST_80,))
    own = load("a", tasks=1, host_ports=frozenset({(80, "tcp")}))
    assert global_nodes(spec, [own]) == {"a": ""}


def test_a_global_task_is_refused_a_port_another_service_takes() -> None:
    spec = service(ports=(HOST_80,))
    taken = load("a", host_ports=frozenset({(80, "tcp")}))
    assert global_nodes(spec, [taken]) == {"a": "has port 80/tcp in use"}


def test_global_nodes_checks_constraints() -> None:
    spec = service(constraints=("node.role==manager",))
    assert global_nodes(spec, [load("a")]) == {"a": "scheduling constraints not satisfied"}


# ---------------------------------------------------------------------- volume affinity

DB_DATA = MountSpec("volume", "db_data", "/data")


@pytest.mark.parametrize(
    ("mount", "pins"),
    [
        (DB_DATA, "db_data"),
        (replace(DB_DATA, volume_driver="local"), "db_data"),
        (replace(DB_DATA, volume_opts={"type": "tmpfs", "device": "tmpfs"}), "db_data"),
        (replace(DB_DATA, volume_opts={"type": "nfs", "o": "addr=10.0.0.9"}), ""),
        (replace(DB_DATA, volume_driver="local", volume_opts={"type": "NFS4"}), ""),
        (replace(DB_DATA, volume_opts={"type": "cifs"}), ""),
        (replace(DB_DATA, volume_driver="rexray/ebs"), ""),
        (MountSpec("volume", "", "/data"), ""),  # anonymous: new with every task
        (MountSpec("bind", "/srv/db", "/data"), ""),
        (MountSpec("tmpfs", "", "/data"), ""),
    ],
)
def test_only_a_named_volume_that_keeps_its_data_on_the_node_pins_its_tasks(
    mount: MountSpec, pins: str
) -> None:
    assert local_volume(ServiceSpec("db", "postgres", mounts=(mount,))) == pins


def test_a_task_with_a_local_volume_goes_back_to_its_node_even_if_others_are_emptier() -> None:
    db = service(mounts=(DB_DATA,))
    decisions = schedule(db, 1, [load("worker1", tasks=2, other=5), load("worker2")], ["worker1"])
    assert decisions == [Decision("worker1")]


@pytest.mark.parametrize(
    "home",
    [
        load("worker1", state=NodeState.DOWN),
        load("worker1", availability=Availability.PAUSE),
        load("worker1", reserved=Resources(CPU), facts=with_cpus(1)),
    ],
)
def test_a_task_whose_node_cannot_take_it_stays_pending_pinned_by_its_volume(
    home: NodeLoad,
) -> None:
    db = service(mounts=(DB_DATA,), reservations=Resources(CPU))
    decisions = schedule(db, 1, [home, load("worker2", facts=with_cpus(4))], ["worker1"])
    assert decisions == [Decision(None, "pinned to worker1 by volume db_data")]


def test_a_task_whose_node_left_the_cluster_is_pinned_to_its_id() -> None:
    db = service(mounts=(DB_DATA,))
    assert schedule(db, 1, [load("worker2")], ["gone1"]) == [
        Decision(None, "pinned to gone1 by volume db_data")
    ]


def test_a_task_with_a_shared_volume_goes_anywhere() -> None:
    nfs = service(mounts=(replace(DB_DATA, volume_opts={"type": "nfs"}),))
    down = load("worker1", state=NodeState.DOWN)
    assert schedule(nfs, 1, [down, load("worker2")], ["worker1"]) == [Decision("worker2")]


def test_free_tasks_spread_around_the_pinned_ones() -> None:
    db = service(mounts=(DB_DATA,))
    decisions = schedule(db, 3, [load("a"), load("b")], ["", "a", ""])
    assert [d.node_id for d in decisions] == ["b", "a", "a"]


def ran(id: str, node_id: str, created_at: str, running: bool = True) -> Task:
    states = {"assigned": created_at, **({"running": created_at} if running else {})}
    return Task(id, SERVICE, 1, created_at, node_id, timestamps=states)


def test_a_slots_home_is_the_node_of_its_latest_task_that_ran() -> None:
    history = [
        ran("t1", "worker1", "2026-01-01T00:00:01"),
        ran("t2", "worker2", "2026-01-01T00:00:02"),
        ran("t3", "worker3", "2026-01-01T00:00:03", running=False),  # never ran: no data
        Task("t4", SERVICE, 1, "2026-01-01T00:00:04"),  # pending
    ]
    assert volume_home(history) == "worker2"
    assert volume_home(reversed(history)) == "worker2"
    assert volume_home(history[2:]) == ""


# ----------------------------------------------------------------------------- properties

CONSTRAINTS = [
    "node.labels.zone==a",
    "node.labels.zone!=b",
    "node.labels.rack==r1",
    "node.role==worker",
    "node.role!=worker",
    "node.hostname!=n1",
]
PREFS = ["spread=node.labels.zone", "spread=node.labels.rack"]


@st.composite
def node_loads(draw: st.DrawFn, max_size: int = 10) -> list[NodeLoad]:
    loads = []
    for i in range(draw(st.integers(0, max_size))):
        labels = draw(
            st.fixed_dictionaries(
                {}, optional={"zone": st.sampled_from("abc"), "rack": st.sampled_from(["r1", "r2"])}
            )
        )
        the_node = node(
            f"n{i}",
            role=draw(st.sampled_from(Role)),
            state=draw(st.sampled_from(NodeState)),
            availability=draw(st.sampled_from(Availability)),
            labels=labels,
            facts=NodeFacts(
                cpus=draw(st.integers(0, 4)), memory_bytes=draw(st.integers(0, 8)) * GIB
            ),
        )
        loads.append(
            NodeLoad(
                the_node,
                service_tasks={SERVICE: draw(st.integers(0, 3)), "other": draw(st.integers(0, 3))},
                reserved=Resources(draw(st.integers(0, 2)) * CPU, draw(st.integers(0, 2)) * GIB),
                host_ports=draw(st.sets(st.sampled_from([(80, "tcp"), (53, "udp")]))),
            )
        )
    return loads


@st.composite
def services(draw: st.DrawFn) -> Service:
    ports = [HOST_80, PortSpec(53, 53, "udp", PublishMode.HOST), PortSpec(443, 443)]
    return service(
        constraints=tuple(draw(st.lists(st.sampled_from(CONSTRAINTS), max_size=2))),
        placement_prefs=tuple(draw(st.lists(st.sampled_from(PREFS), max_size=2, unique=True))),
        ports=tuple(draw(st.lists(st.sampled_from(ports), max_size=2, unique=True))),
        max_replicas_per_node=draw(st.integers(0, 4)),
        reservations=Resources(
            draw(st.sampled_from([0, CPU // 2, CPU])), draw(st.sampled_from([0, GIB]))
        ),
    )


def with_task(spec: Service, before: NodeLoad) -> NodeLoad:
    """The load after one more task of `spec`, worked out here apart from the scheduler."""
    ports = {
        (p.published, p.protocol)
        for p in spec.spec.ports
        if p.mode == PublishMode.HOST and p.published
    }
    return NodeLoad(
        before.node,
        {**before.service_tasks, spec.id: before.service_tasks.get(spec.id, 0) + 1},
        Resources(
            before.reserved.nano_cpus + spec.spec.reservations.nano_cpus,
            before.reserved.memory_bytes + spec.spec.reservations.memory_bytes,
        ),
        before.host_ports | ports,
    )


@given(services(), node_loads(), st.integers(0, 30))
def test_there_is_one_decision_per_task(spec: Service, loads: list[NodeLoad], count: int) -> None:
    assert len(schedule(spec, count, loads)) == count


@given(services(), node_loads(), st.integers(0, 30))
def test_no_task_is_placed_on_a_down_paused_or_drained_node(
    spec: Service, loads: list[NodeLoad], count: int
) -> None:
    available = {
        lo.node.id
        for lo in loads
        if lo.node.state == NodeState.READY and lo.node.availability == Availability.ACTIVE
    }
    placed = {d.node_id for d in schedule(spec, count, loads)} - {None}
    assert placed <= available


@given(services(), node_loads(), st.integers(0, 30))
def test_a_placed_task_satisfies_every_constraint(
    spec: Service, loads: list[NodeLoad], count: int
) -> None:
    nodes = {lo.node.id: lo.node for lo in loads}
    for decision in schedule(spec, count, loads):
        if decision.node_id is not None:
            node_ = nodes[decision.node_id]
            assert all(parse_constraint(c).holds(node_) for c in spec.spec.constraints)


@given(services(), node_loads(), st.integers(0, 30))
def test_every_placement_passes_the_filters_given_the_placements_before_it(
    spec: Service, loads: list[NodeLoad], count: int
) -> None:
    current = {lo.node.id: lo for lo in loads}
    for decision in schedule(spec, count, loads):
        if decision.node_id is None:
            assert all(node_passes(spec, lo) for lo in current.values())
            continue
        assert node_passes(spec, current[decision.node_id]) == ""
        current[decision.node_id] = with_task(spec, current[decision.node_id])


@given(services(), node_loads(), st.integers(0, 30))
def test_without_preferences_each_task_goes_to_the_best_node_that_passes(
    spec: Service, loads: list[NodeLoad], count: int
) -> None:
    spec = replace(spec, spec=replace(spec.spec, placement_prefs=()))
    current = {lo.node.id: lo for lo in loads}

    def rank(lo: NodeLoad) -> tuple[int, int, str]:
        return (lo.service_tasks.get(SERVICE, 0), lo.total_tasks, lo.node.hostname)

    for decision in schedule(spec, count, loads):
        passing = [lo for lo in current.values() if not node_passes(spec, lo)]
        best = min(passing, key=rank).node.id if passing else None
        assert decision.node_id == best
        if best is not None:
            current[best] = with_task(spec, current[best])


@given(services(), node_loads(), st.integers(0, 30), st.randoms())
def test_the_decisions_do_not_depend_on_the_order_of_the_nodes(
    spec: Service, loads: list[NodeLoad], count: int, random: Random
) -> None:
    shuffled = list(loads)
    random.shuffle(shuffled)
    assert schedule(spec, count, shuffled) == schedule(spec, count, loads)


@given(
    st.lists(st.tuples(st.booleans(), st.integers(0, 5)), min_size=1, max_size=12),
    st.integers(0, 3),
    st.integers(0, 60),
)
def test_with_nothing_constraining_balanced_counts_stay_within_one(
    nodes: list[tuple[bool, int]], base: int, count: int
) -> None:
    # Every node starts with `base` tasks of the service, some with one more: balanced.
    loads = [
        load(f"n{i}", tasks=base + extra, other=other) for i, (extra, other) in enumerate(nodes)
    ]
    tasks = {lo.node.id: lo.service_tasks[SERVICE] for lo in loads}
    for decision in schedule(service(), count, loads):
        assert decision.node_id is not None
        tasks[decision.node_id] += 1
    assert max(tasks.values()) - min(tasks.values()) <= 1


@st.composite
def homes(draw: st.DrawFn, loads: list[NodeLoad], count: int) -> list[str]:
    ids = [lo.node.id for lo in loads] + ["gone"]
    return draw(st.lists(st.sampled_from(["", *ids]), min_size=count, max_size=count))


@given(services(), node_loads(), st.integers(0, 12), st.data())
def test_a_pinned_task_runs_on_its_home_or_nowhere_and_free_tasks_lose_no_placement(
    spec: Service, loads: list[NodeLoad], count: int, data: st.DataObject
) -> None:
    db = replace(spec, spec=replace(spec.spec, mounts=(DB_DATA,)))
    pins = data.draw(homes(loads, count))
    names = {lo.node.id: lo.node.hostname for lo in loads}
    decisions = schedule(db, count, loads, pins)
    assert len(decisions) == count
    for home, decision in zip(pins, decisions, strict=True):
        if home:
            assert decision.node_id in (home, None)
            if decision.node_id is None:
                assert decision.reason == f"pinned to {names.get(home, home)} by volume db_data"
    # Without the volume, the same homes mean nothing: the plain spread.
    assert schedule(spec, count, loads, pins) == schedule(spec, count, loads)
