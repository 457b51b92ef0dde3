"""Which volumes are the cluster's, and who uses one, from plain data."""

from swarmctl import volumes
from swarmctl.commands import volume as commands
from swarmctl.models import MountSpec, Node, Role, Service, ServiceSpec, Task, TaskState

NOW = "2026-01-02T03:04:05.000+00:00"
W1, W2 = (Node(name, name, Role.WORKER, "10.0.0.1", NOW, NOW) for name in ("worker1", "worker2"))
DB = Service(
    "dbsvc", ServiceSpec("db", "postgres", mounts=(MountSpec("volume", "db_data", "/d"),)), NOW, NOW
)
WEB = Service(
    "websvc", ServiceSpec("web", "nginx", mounts=(MountSpec("bind", "/srv", "/d"),)), NOW, NOW
)


def task(service: Service, node: Node, **fields: object) -> Task:
    return Task(f"{service.id}-{node.id}", service.id, 1, NOW, node.id, **fields)  # type: ignore[arg-type]


def test_a_volume_a_task_of_a_service_has_on_the_node_is_in_use_by_that_service() -> None:
    tasks = [task(DB, W1), task(WEB, W2)]
    assert volumes.users("db_data", W1, [DB, WEB], tasks) == ["db"]
    assert volumes.users("db_data", W2, [DB, WEB], tasks) == []
    assert volumes.users("other", W1, [DB, WEB], tasks) == []


def test_a_volume_whose_task_ended_there_is_still_in_use_its_slot_comes_back() -> None:
    ended = task(DB, W1, state=TaskState.ORPHANED, desired_state=TaskState.SHUTDOWN)
    pending = Task("new", DB.id, 1, NOW, state=TaskState.PENDING)
    assert volumes.users("db_data", W1, [DB], [ended, pending]) == ["db"]


def test_the_clusters_volumes_are_its_labelled_ones_and_those_its_services_mount() -> None:
    mounted = volumes.mounted_names([DB, WEB])
    assert mounted == {"db_data"}
    assert volumes.ours({"Name": "x", "Labels": {"swarmctl.cluster.id": "c1"}}, "c1", mounted)
    assert not volumes.ours({"Name": "x", "Labels": {"swarmctl.cluster.id": "c2"}}, "c1", mounted)
    assert volumes.ours({"Name": "db_data", "Labels": None}, "c1", mounted)
    assert not volumes.ours({"Name": "cache", "Labels": None}, "c1", mounted)


def test_volume_create_labels_the_volume_as_the_clusters() -> None:
    assert commands.create("v", "c1", "local", {"type": "nfs", "o": "addr=1,rw"}) == [
        "docker", "volume", "create", "--driver", "local", "--opt", "type=nfs",
        "--opt", "o=addr=1,rw", "--label", "swarmctl.cluster.id=c1", "v",
    ]  # fmt: skip
