"""docker CLI command lines for a host's engine (built here, run by the caller).

Every value is quoted with shlex; multi-step lines are joined with `&&` so that one SSH
round trip does a whole step, and distinct exit codes tell which part failed.
"""

import csv
import io
import posixpath
import shlex
from collections.abc import Sequence

from swarmctl.models import HealthCheck, MountSpec, PublishMode, Service, Task
from swarmctl.naming import (
    LABEL_CLUSTER,
    LABEL_NODE_ID,
    LABEL_SERVICE_ID,
    LABEL_SERVICE_NAME,
    LABEL_SLOT,
    LABEL_TASK_ID,
    container_name,
)
from swarmctl.spec import ImageRef

# Exit codes of run_task(): which step failed decides the task's state.
DAEMON_DOWN = 41  # the node's dockerd does not answer: REJECTED, the node is unwell
PULL_FAILED = 42  # PREPARING failed: REJECTED (the image is not there and cannot be pulled)
CREATE_FAILED = 43  # the container could not be made: REJECTED
START_FAILED = 44  # it was made but would not start: FAILED
TASK_FILES_FAILED = 45  # its secrets and configs could not be put in memory: REJECTED

TASK_FILES = "/run/swarmctl/secrets"  # a tmpfs: a directory per task, its secrets and configs


def remove_cluster_containers(cluster_id: str) -> str:
    """Remove every container this cluster started on the host."""
    select = shlex.join(["docker", "ps", "-aq", "--filter", f"label={LABEL_CLUSTER}={cluster_id}"])
    return f"{{ {select} | xargs -r docker rm -f; }} && {_sweep_task_files(minutes=0)}"


def task_container(service: Service, task: Task) -> str:
    return container_name(service.spec.name, task.slot_key, task.id)


def run_task(cluster_id: str, service: Service, task: Task, networks: Sequence[str]) -> str:
    """Prepare (image), create, attach and start one task's container; print its id.

    networks: Docker network names to attach, the first at creation.
    """
    spec = service.spec
    if networks and any(p.mode == PublishMode.HOST for p in spec.ports):
        # Docker publishes ports on bridge networks only, and an overlay is a macvlan one:
        # the default bridge carries them, as swarm's docker_gwbridge does.
        networks = ["bridge", *networks]
    create = [
        "docker",
        "create",
        "--name",
        task_container(service, task),
        "--restart",
        "no",
        "--stop-timeout",
        f"{spec.stop_grace_period:.0f}",
    ]
    labels = {
        LABEL_CLUSTER: cluster_id,
        LABEL_SERVICE_ID: service.id,
        LABEL_SERVICE_NAME: spec.name,
        LABEL_TASK_ID: task.id,
        LABEL_SLOT: str(task.slot),
        LABEL_NODE_ID: task.node_id,
    }
    for key, value in {**spec.container_labels, **labels}.items():
        create += ["--label", f"{key}={value}"]
    if spec.hostname:
        create += ["--hostname", spec.hostname]
    if spec.command:  # the image's entrypoint replaced, as swarm's ContainerSpec.Command
        create += ["--entrypoint", spec.command[0]]
    if networks:
        create += ["--network", networks[0]]
    for variable in spec.env:
        create += ["--env", variable]
    for port in spec.ports:
        if port.mode == PublishMode.HOST:
            published = f"{port.published}:" if port.published else ""
            create += ["--publish", f"{published}{port.target}/{port.protocol}"]
    for mount in spec.mounts:
        create += ["--mount", mount_option(mount, cluster_id)]
    for source, target in task_file_mounts(service, task):
        create += ["--mount", mount_option(MountSpec("bind", source, target, readonly=True), "")]
    if spec.workdir:
        create += ["--workdir", spec.workdir]
    if spec.user:
        create += ["--user", spec.user]
    if spec.stop_signal:
        create += ["--stop-signal", spec.stop_signal]
    if spec.health:
        create += _health(spec.health)
    if spec.limits.nano_cpus:
        create += ["--cpus", f"{spec.limits.nano_cpus / 1e9:g}"]
    if spec.limits.memory_bytes:
        create += ["--memory", str(spec.limits.memory_bytes)]
    command = shlex.join([*spec.command[1:], *spec.args])

    def line(argv: list[str]) -> str:  # the image is the script's "$img"
        return " ".join(filter(None, [shlex.join(argv), '"$img"', command]))

    # Every docker CLI call costs a process on a host that may be busy: the usual case,
    # an image already there and one network at most, takes two. The image is looked
    # for, and pulled, only when a first try without pulling fails (and that try's
    # error is met again, with its cause, by the second).
    img = f"img={shlex.quote(_pulled(spec.image))}"
    never = ["--pull", "never"]
    # A start that fails leaves the container made, with the reason in its state.
    name = shlex.quote(task_container(service, task))
    start_failed = (
        f"docker inspect --format '{{{{.State.Error}}}}' {name} >&2 2>/dev/null"
        f" && exit {START_FAILED}; exit {CREATE_FAILED}"
    )
    # The name is the task's: a container made by an earlier start of this task (one
    # whose command was interrupted) is started and taken over, never made twice.
    taken = f"id=$(docker start {name} 2>/dev/null)"
    prepare = _prepare_image(spec.image)
    if len(networks) <= 1:
        run = ["docker", "run", "-d", *create[2:]]
        steps = [
            img,
            f"id=$({line(run + never)} 2>/dev/null) || {{ {prepare};"
            f" id=$({line(run)}) || {taken} || {{ {start_failed}; }}; }}",
        ]
    else:  # a container is created with one network (API < 1.44): join the others first
        connect = [
            f'docker network connect {shlex.quote(n)} "$id" || exit {CREATE_FAILED}'
            for n in networks[1:]
        ]
        made = f"id=$({line(create + never)} 2>/dev/null) || {{ {prepare}; id=$({line(create)}); }}"
        steps = [
            img,
            f"if {made}; then",
            *connect,
            f'docker start "$id" >/dev/null 2>&1 || {{ {start_failed}; }}',
            f"else {taken} || exit {CREATE_FAILED}; fi",
        ]
    steps.append('echo "$id"')  # its record is read from the engine's API
    return "set -e\n" + "\n".join(steps)


def inspect_container(container: str) -> list[str]:
    return ["docker", "inspect", "--format", "{{json .}}", container]


def _pulled(image: str) -> str:
    """The reference a node pulls: a pinned image by its digest alone."""
    ref = ImageRef.parse(image)
    return ref.by_digest() if ref.digest else image


def _prepare_image(image: str) -> str:
    """Set "$img" to the image to run, pulling it only when the node lacks it.

    A pinned image runs by digest: one pulled from a registry is found by its digest,
    one copied from a peer by its local tag (docker load keeps no digest); a tag pulled
    long ago is not it. Only a node with neither asks the registry."""
    ref = ImageRef.parse(image)
    pulled = _pulled(image)
    have = f'img={shlex.quote(pulled)}; docker image inspect "$img" >/dev/null 2>&1'
    if ref.digest:
        have = (
            f"{{ {have} || {{ img={shlex.quote(ref.local_tag())};"
            f' docker image inspect "$img" >/dev/null 2>&1; }}; }}'
        )
    return (
        f"{have} || {{ img={shlex.quote(pulled)};"
        f" docker version --format '{{{{.Server.Version}}}}' >/dev/null 2>&1 || exit {DAEMON_DOWN};"
        f' docker pull -q "$img" >/dev/null || exit {PULL_FAILED}; }}'
    )


def _health(health: HealthCheck) -> list[str]:
    if health.disabled:
        return ["--no-healthcheck"]
    argv = ["--health-cmd", health.command] if health.command else []
    for option, seconds in (
        ("--health-interval", health.interval),
        ("--health-timeout", health.timeout),
        ("--health-start-period", health.start_period),
    ):
        if seconds is not None:
            argv += [option, f"{seconds:g}s"]
    if health.retries is not None:
        argv += ["--health-retries", str(health.retries)]
    return argv


def mount_option(mount: MountSpec, cluster_id: str) -> str:
    """The `--mount` value docker reads back into `mount`: CSV, quoted where a value holds
    a comma or a quote. A volume the mount creates is labelled as the cluster's."""
    fields = [f"type={mount.type}"]
    if mount.source:
        fields.append(f"source={mount.source}")
    fields.append(f"target={mount.target}")
    if mount.readonly:
        fields.append("readonly")
    if mount.type == "volume":
        if mount.volume_driver:
            fields.append(f"volume-driver={mount.volume_driver}")
        fields += [f"volume-opt={key}={value}" for key, value in mount.volume_opts.items()]
        labels = {**mount.volume_labels, LABEL_CLUSTER: cluster_id}
        fields += [f"volume-label={key}={value}" for key, value in labels.items()]
        if mount.volume_nocopy:
            fields.append("volume-nocopy")
    if mount.tmpfs_size:
        fields.append(f"tmpfs-size={mount.tmpfs_size}")
    if mount.tmpfs_mode is not None:
        fields.append(f"tmpfs-mode={mount.tmpfs_mode:o}")
    line = io.StringIO()
    csv.writer(line, lineterminator="").writerow(fields)
    return line.getvalue()


def task_files_dir(task_id: str) -> str:
    return f"{TASK_FILES}/{task_id}"


def task_file_mounts(service: Service, task: Task) -> list[tuple[str, str]]:
    """(file on the node, path in the container) of each secret and config of the task;
    the file names are those of secrets.archive's members."""
    directory = task_files_dir(task.id)
    mounts = [
        (f"{directory}/secret-{i}", posixpath.join("/run/secrets", ref.target))
        for i, ref in enumerate(service.spec.secrets)
    ]
    mounts += [
        (f"{directory}/config-{i}", ref.target) for i, ref in enumerate(service.spec.configs)
    ]
    return mounts


def write_task_files(task_id: str) -> str:
    """Unpack the tar archive on stdin (secrets.archive) into the task's own directory in
    memory, owners and modes as archived. The directory's filesystem must be a tmpfs: a
    node whose /run is on disk gets a tmpfs mounted there first; failing that, nothing is
    written (TASK_FILES_FAILED)."""
    base, directory = shlex.quote(TASK_FILES), shlex.quote(task_files_dir(task_id))
    return (
        f"mkdir -p -m 0700 {base} || exit {TASK_FILES_FAILED}\n"
        f'[ "$(stat -f -c %T {base})" = tmpfs ]'
        f" || mount -t tmpfs -o mode=0700,size=64m swarmctl-files {base}"
        f" || exit {TASK_FILES_FAILED}\n"
        f'[ "$(stat -f -c %T {base})" = tmpfs ] || exit {TASK_FILES_FAILED}\n'
        f"rm -rf {directory} && mkdir -m 0700 {directory}"
        f" && tar -x --same-owner --same-permissions --numeric-owner -C {directory}"
        f" || exit {TASK_FILES_FAILED}"
    )


def stop_tasks(task_ids: Sequence[str]) -> str:
    """Stop these tasks' containers as docker stop does, each with the signal and grace
    period it was made with (then SIGKILL), and remove them. A container that will not
    stop is still removed: the stop only gives it the chance to end cleanly."""
    ids = " ".join(shlex.quote(f"label={LABEL_TASK_ID}={task_id}") for task_id in task_ids)
    return (
        f'ids=$(for filter in {ids}; do docker ps -aq --filter "$filter"; done); '
        '{ [ -z "$ids" ] || { docker stop $ids >/dev/null 2>&1; docker rm -f $ids >/dev/null; }; }'
        f" && {_remove_task_files(task_ids)}"
    )


def remove_tasks(task_ids: Sequence[str]) -> str:
    """Remove the containers of these tasks, wherever they are in their life."""
    # One filter per call: several label filters in one `docker ps` must all match.
    ids = " ".join(shlex.quote(f"label={LABEL_TASK_ID}={task_id}") for task_id in task_ids)
    return (
        f'{{ for filter in {ids}; do docker ps -aq --filter "$filter"; done'
        " | xargs -r docker rm -f >/dev/null; }"
        f" && {_remove_task_files(task_ids)} && {_sweep_task_files()}"
    )


def _remove_task_files(task_ids: Sequence[str]) -> str:
    return shlex.join(["rm", "-rf", "--", *(task_files_dir(t) for t in task_ids)])


def _sweep_task_files(minutes: int = 10) -> str:
    """Remove task file directories whose container is gone (its removal interrupted)
    and older than `minutes`: a younger one may belong to a task being started (its image
    being pulled)."""
    older = ["-mmin", f"+{minutes}"] if minutes else []
    find = shlex.join(
        ["find", TASK_FILES, "-mindepth", "1", "-maxdepth", "1", "-type", "d", *older]
    )
    label = shlex.quote(f"label={LABEL_TASK_ID}=")
    return (
        f"{{ for d in $({find} 2>/dev/null); do"
        f' c=$(docker ps -aq --filter {label}"${{d##*/}}") && [ -z "$c" ] && rm -rf -- "$d";'
        " done; true; }"
    )


def logs(container: str, *, tail: str = "all", since: str | None = None, follow: bool = False):
    """A container's log lines, each led by docker's timestamp (for merging nodes' lines)."""
    argv = ["docker", "logs", "--timestamps", "--tail", tail]
    if since:
        argv += ["--since", since]
    if follow:
        argv.append("--follow")
    return [*argv, container]


def error_line(stderr: str) -> str:
    """Docker's own error in a failed command's stderr, not the help hint it ends with
    ("Run 'docker run --help' for more information"); "" if it said nothing."""
    lines = [
        line.strip()
        for line in stderr.splitlines()
        if line.strip() and not line.strip().startswith(("Run 'docker", "See 'docker"))
    ]
    return lines[-1] if lines else ""


def save_image(image: str) -> str:
    """A peer's copy of the image for a node that lacks it; a pinned image is saved under
    its local tag (tagged from its digest if need be) so the node finds it by that tag."""
    ref = ImageRef.parse(image)
    if not ref.digest:
        return shlex.join(["docker", "save", image])
    tag = ref.local_tag()
    return (
        f"{{ {shlex.join(['docker', 'image', 'inspect', tag])} >/dev/null 2>&1"
        f" || {shlex.join(['docker', 'tag', ref.by_digest(), tag])}; }}"
        f" && {shlex.join(['docker', 'save', tag])}"
    )


def load_image() -> str:
    return "docker load -q"
