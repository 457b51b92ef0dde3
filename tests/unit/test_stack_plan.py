"""The stack deploy's plan (plain data in, plan out) and the spec history it rolls back to."""

from dataclasses import replace
from pathlib import Path

import pytest

from swarmctl import services
from swarmctl.errors import SwarmctlError
from swarmctl.models import (
    Cluster,
    FileRef,
    Network,
    Node,
    PortSpec,
    Role,
    Service,
    ServiceSpec,
    UpdatePolicy,
)
from swarmctl.pinning import ResolveImage
from swarmctl.stack import deploy
from swarmctl.stack.model import NAMESPACE_LABEL, Stack, StackFileObject, StackNetwork
from swarmctl.stack.plan import diff, plan
from swarmctl.state import StateStore
from swarmctl.state.repo import Repo

PINNED = "nginx:latest@sha256:" + "a" * 64


def spec(stack: str, key: str, **fields) -> ServiceSpec:
    labels = {NAMESPACE_LABEL: stack} if stack else {}
    fields.setdefault("networks", (f"{stack}_default",) if stack else ())
    return ServiceSpec(
        name=f"{stack}_{key}" if stack else key, image="nginx", labels=labels, **fields
    )


def service(s: ServiceSpec, version: int = 1) -> Service:
    return Service(id=f"id-{s.name}", spec=s, created_at="t", updated_at="t", version=version)


def network(name: str, stack: str = "") -> Network:
    labels = {NAMESPACE_LABEL: stack} if stack else {}
    return Network(name, name, "10.0.1.0/24", "10.0.1.1", 4097, "t", labels=labels)


def web(*specs: ServiceSpec) -> Stack:
    default = StackNetwork("web_default")
    return Stack("web", specs or (spec("web", "front"), spec("web", "app")), (default,))


def deployed(stack: Stack, **changed) -> tuple[list[Service], list[Network]]:
    return [service(s, **changed) for s in stack.services], [network("web_default", "web")]


def test_a_new_stack_creates_its_network_then_every_service() -> None:
    planned = plan([], [], web(), prune=False)
    assert [n.name for n in planned.networks] == ["web_default"]
    assert [s.name for s in planned.create] == ["web_front", "web_app"]
    assert not planned.update and not planned.remove and not planned.empty


def test_an_unchanged_file_plans_nothing_even_with_its_images_pinned() -> None:
    found, networks = deployed(web())
    found = [replace(s, spec=replace(s.spec, image=PINNED)) for s in found]
    planned = plan(found, networks, web(), prune=True)
    assert planned.empty
    assert [s.spec.name for s in planned.unchanged] == ["web_front", "web_app"]


def test_a_changed_service_is_updated_with_a_field_by_field_diff_and_keeps_its_pin() -> None:
    found, networks = deployed(web())
    found[1] = replace(found[1], spec=replace(found[1].spec, image=PINNED))
    app = spec(
        "web",
        "app",
        replicas=3,
        update=UpdatePolicy(parallelism=2),
        ports=(PortSpec(80, 8080),),
        env=("A=1",),
    )
    app = replace(app, labels={**app.labels, "tier": "back"})
    planned = plan(found, networks, web(spec("web", "front"), app), prune=False)
    (update,) = planned.update
    assert update.spec.image == PINNED  # the tag the file names is the one pinned
    assert update.changes == (
        "env: [] -> [A=1]",
        "labels.tier: (none) -> back",
        "replicas: 1 -> 3",
        "ports: [] -> [{target=80, published=8080}]",
        "update.parallelism: 1 -> 2",
    )
    assert [s.spec.name for s in planned.unchanged] == ["web_front"]


def test_diff_names_nested_fields_dotted_and_list_items_by_index() -> None:
    before = spec("web", "app", ports=(PortSpec(80, 8080),))
    after = replace(before, image="nginx:1.27", ports=(PortSpec(80, 9090),))
    assert diff(before, after) == ["image: nginx -> nginx:1.27", "ports[0].published: 8080 -> 9090"]


def test_prune_removes_only_this_stacks_services_no_longer_in_the_file() -> None:
    found, networks = deployed(web())
    others = [service(spec("api", "front")), service(spec("", "plain"))]
    smaller = web(spec("web", "front"))
    assert not plan(found + others, networks, smaller, prune=False).remove
    planned = plan(found + others, networks, smaller, prune=True)
    assert [s.spec.name for s in planned.remove] == ["web_app"]


@pytest.mark.parametrize(
    ("found", "error"),
    [
        ([service(spec("", "web_front"))], "service web_front already exists outside any stack"),
        (
            [service(replace(spec("web", "front"), labels={NAMESPACE_LABEL: "api"}))],
            "service web_front already exists in stack api",
        ),
    ],
)
def test_a_name_taken_outside_the_stack_is_refused_in_one_line(found, error) -> None:
    with pytest.raises(SwarmctlError, match=f"^stack web: {error}$"):
        plan(found, [network("web_default", "web")], web(), prune=False)


def test_a_network_of_the_same_name_outside_the_stack_is_refused() -> None:
    with pytest.raises(SwarmctlError, match=r"^stack web: network web_default already exists"):
        plan([], [network("web_default")], web(), prune=False)


def test_an_external_network_must_exist_and_is_never_created() -> None:
    stack = replace(web(), networks=(StackNetwork("shared", external=True),))
    stack = replace(stack, services=(spec("web", "front", networks=("shared",)),))
    with pytest.raises(SwarmctlError, match="network shared is external but does not exist"):
        plan([], [], stack, prune=False)
    planned = plan([], [network("shared")], stack, prune=False)
    assert not planned.networks and len(planned.create) == 1


def test_a_service_on_an_undeclared_network_is_refused() -> None:
    stack = web(spec("web", "front", networks=("elsewhere",)))
    with pytest.raises(SwarmctlError, match=r"^stack web: service web_front: network elsewhere"):
        plan([], [], stack, prune=False)


# ------------------------------------------------------------------ spec history


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    store = StateStore(tmp_path / "state.json")
    store.create()
    with store.transaction() as db:
        repo = Repo(db)
        repo.set_cluster(Cluster("c", "t"))
        repo.nodes.put(Node("n1", "manager1", Role.MANAGER, "10.0.0.1", "t", "t"))
    return store


def test_a_service_keeps_its_last_ten_specs_and_rolls_back_to_any_of_them(store) -> None:
    with store.transaction() as db:
        repo = Repo(db)
        current, _ = services.record_create(repo, spec("", "app"), ())
        for n in range(2, 13):
            current, kind, _ = services.record_update(
                repo, current, replace(current.spec, image=f"app:{n}"), ()
            )
            assert kind == services.Kind.UPDATING
    assert current.version == 12
    assert [h.version for h in current.history] == list(range(3, 12))
    with store.transaction() as db:
        back = services.record_rollback(Repo(db), current, 4)
    assert back.spec.image == "app:4" and back.version == 13
    assert back.update_status.state.value == "rollback_started"
    with store.transaction() as db, pytest.raises(SwarmctlError, match="no version 2 kept"):
        services.record_rollback(Repo(db), back, 2)
    with store.read() as db:  # the history survives the state file
        assert Repo(db).services.get("app").history == back.history


def test_stack_rollback_returns_each_service_to_the_version_of_the_last_different_deploy(
    store,
) -> None:
    stack = web(spec("web", "app", networks=()))
    with store.transaction() as db:
        repo = Repo(db)
        app, _ = services.record_create(repo, stack.services[0], ())
        deploy._note(repo, stack, "")
        deploy._note(repo, stack, "")  # unchanged: counted on deploy 1
        services.record_update(repo, app, replace(app.spec, image="app:2"), ())
        deploy._note(repo, replace(stack, digest="2"), "")
    done, warnings = deploy.rollback(store, "web")
    (rolling,) = done.rolling
    assert rolling.spec.image == "nginx" and rolling.version == 3 and not warnings
    with store.read() as db:
        recorded = [
            (d.number, d.services, d.note, d.again) for d in deploy.deploys(Repo(db), "web")
        ]
    assert recorded == [
        (1, {"web_app": 1}, "", 1),
        (2, {"web_app": 2}, "", 0),
        (3, {"web_app": 3}, "rollback to deploy 1", 0),
    ]
    with pytest.raises(SwarmctlError, match=r"^stack web: no deploy 7 kept \(kept: 1, 2, 3\)$"):
        deploy.rollback(store, "web", to=7)


def test_a_dry_run_checks_ports_as_the_deploy_would_and_writes_nothing(store) -> None:
    with store.transaction() as db:
        services.record_create(Repo(db), spec("", "plain", ports=(PortSpec(80, 8080),)), ())
    before = store.path.read_bytes()
    front = spec("web", "front", networks=(), ports=(PortSpec(80, 8080),))
    with pytest.raises(
        SwarmctlError,
        match=r"^stack web: service web_front: port 8080/tcp is already published by service "
        r"plain$",
    ):
        deploy.preview(store, replace(web(front), networks=()), False, ())
    planned = deploy.preview(store, web(), False, ())
    assert [s.name for s in planned.plan.create] == ["web_front", "web_app"]
    assert store.path.read_bytes() == before


def test_a_stacks_secret_is_stored_and_a_new_value_rolls_its_users(
    store, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("SWARMCTL_SECRETS_PASSPHRASE", "a passphrase")
    file = tmp_path / "key.txt"
    file.write_text("one")
    app = spec("web", "app", networks=(), secrets=(FileRef("web_key", "key"),))
    stack = Stack("web", (app,), secrets=(StackFileObject("web_key", file=str(file)),))
    never = ResolveImage.NEVER
    planned = deploy.preview(store, stack, False, ())
    assert planned.files == ["Creating secret web_key"]
    done, _ = deploy.record(store, None, stack, False, (), never)
    assert done.files == ["Creating secret web_key"] and len(done.created) == 1
    assert deploy.record(store, None, stack, False, (), never)[0].files == []

    file.write_text("hunter2-second")
    assert deploy.preview(store, stack, False, ()).files == [
        "Updating secret web_key (rolls web_app)"
    ]
    done, _ = deploy.record(store, None, stack, False, (), never)
    (rolling,) = done.rolling
    assert rolling.spec.name == "web_app" and rolling.update_status.state.in_progress
    with store.read() as db:
        (stored,) = Repo(db).secrets.all()
    assert stored.version == 2 and stored.labels == {NAMESPACE_LABEL: "web"}
    assert b"hunter2" not in store.path.read_bytes()  # encrypted at rest


def test_an_external_secret_that_does_not_exist_deploys_nothing(store) -> None:
    app = spec("web", "app", networks=(), secrets=(FileRef("shared", "key"),))
    stack = Stack("web", (app,), secrets=(StackFileObject("shared", external=True),))
    before = store.path.read_bytes()
    with pytest.raises(SwarmctlError, match=r"^stack web: secret shared is external but"):
        deploy.record(store, None, stack, False, (), ResolveImage.NEVER)
    assert store.path.read_bytes() == before
