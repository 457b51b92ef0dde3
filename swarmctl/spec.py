"""`swarmctl service create` options, as docker's CLI spells them, to a validated ServiceSpec.

Owns the grammar of each option (ports, mounts, durations, sizes, CPUs, env, user) and the
checks between options, with one-line errors naming the option and the value. Pure: it does
not look at the cluster, so whether a network exists or a port is free is the caller's job.
"""

import csv
import math
import posixpath
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction

from swarmctl.constraints import parse_constraint, parse_preference
from swarmctl.errors import SwarmctlError, cut
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
    ServiceSpec,
    UpdateOrder,
    UpdatePolicy,
)
from swarmctl.naming import check_label, parse_key_values, valid_name

NAME_HELP = "use letters, digits, '_' and '-' (at most 63, starting with a letter or digit)"
PUBLISH_HELP = "expected [PUBLISHED:]TARGET[/PROTOCOL] or published=…,target=…"
VOLUME_NAME_HELP = "must be a name of 2 or more letters, digits, '_', '.' and '-'"
PATH_HELP = "an absolute path of letters, digits and '/_.-@%+~'"
PROTOCOLS = ("tcp", "udp", "sctp")
MIN_MEMORY = 6 * 2**20  # dockerd refuses smaller memory limits and reservations
_INT64_MAX = 2**63 - 1

_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_PATH_PART = r"[a-zA-Z0-9]+(?:(?:[_.]|__|-+)[a-zA-Z0-9]+)*"
_IMAGE_RE = re.compile(
    rf"(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_PATH_PART}(?:/{_PATH_PART})*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?"
)
SHA256_RE = re.compile(r"sha256:[0-9a-f]{64}")
DOCKER_HUB = "docker.io"
_NUMBER = r"(?:[0-9]{1,30}(?:\.[0-9]{0,30})?|\.[0-9]{1,30})"
_DURATION_UNITS = {
    "ns": Fraction(1, 10**9),
    "us": Fraction(1, 10**6),
    "µs": Fraction(1, 10**6),
    "μs": Fraction(1, 10**6),
    "ms": Fraction(1, 1000),
    "s": Fraction(1),
    "m": Fraction(60),
    "h": Fraction(3600),
}
_DURATION_PART_RE = re.compile(rf"({_NUMBER})(ns|us|µs|μs|ms|s|m|h)")
_DURATION_RE = re.compile(rf"(?:{_DURATION_PART_RE.pattern})+")
# docker's signal names (with or without SIG, real-time ones as SIGRTMIN+N) or numbers
_SIGNAL_RE = re.compile(r"(?:SIG)?[A-Z][A-Z0-9]{1,9}(?:[+-][0-9]{1,2})?|[1-9]|[1-5][0-9]|6[0-4]")
_BYTES_RE = re.compile(rf"(?P<number>{_NUMBER})(?:(?P<unit>[kmgt])(?:i?b)?|b)?", re.IGNORECASE)
_CPUS_RE = re.compile(_NUMBER)
_PORT_RE = re.compile(r"[0-9]{1,10}")
_SHORT_PUBLISH_RE = re.compile(
    r"(?:(?P<published>[0-9]{1,10}):)?(?P<target>[0-9]{1,10})(?:/(?P<protocol>[A-Za-z]+))?"
)
_ABSOLUTE_PATH_RE = re.compile(r"/[A-Za-z0-9/_.@%+~-]*")
# Docker's rule for volume names: at least two characters.
_VOLUME_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]+")
_ENV_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_USER_RE = re.compile(r"[A-Za-z0-9_.-]+(?::[A-Za-z0-9_.-]+)?")
MOUNT_OPTIONS = (
    "type",
    "source",
    "target",
    "readonly",
    "volume-driver",
    "volume-opt",
    "volume-label",
    "volume-nocopy",
    "tmpfs-size",
    "tmpfs-mode",
)
_MOUNT_KEYS = {
    **{key: key for key in MOUNT_OPTIONS},
    "src": "source",
    "destination": "target",
    "dst": "target",
    "ro": "readonly",
}
_MOUNT_OPTION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_DRIVER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]*")
_OCTAL_RE = re.compile(r"[0-7]{1,4}")
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}

Invalid = Callable[[str], SwarmctlError]


@dataclass(frozen=True)
class ImageRef:
    """An image reference as docker reads it: `[REGISTRY[:PORT]/]NAME[:TAG][@DIGEST]`.

    The first path part is a registry only when it has a '.' or a ':' or is `localhost`;
    otherwise the name is Docker Hub's, where a one-part name is under `library/`.
    """

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str) -> "ImageRef":
        def invalid(why: str) -> SwarmctlError:
            return SwarmctlError(f"image {_show(text)}: invalid reference format ({why})")

        if not text:
            raise invalid("empty")
        match = _IMAGE_RE.fullmatch(text)
        if match is None:
            raise invalid("expected [REGISTRY[:PORT]/]NAME[:TAG][@DIGEST]")
        domain, path = match["domain"], match["path"]
        if domain and not ("." in domain or ":" in domain or domain == "localhost"):
            domain, path = None, f"{domain}/{path}"  # `user/app`: Docker Hub's
        if path != path.lower():
            raise invalid("repository name must be lowercase")
        if len(domain or "") + len(path) > 255:
            raise invalid("repository name longer than 255 characters")
        digest = match["digest"]
        if digest and digest.startswith("sha256:") and not SHA256_RE.fullmatch(digest):
            raise invalid("a sha256 digest is 64 lowercase hex digits")
        if domain in (None, DOCKER_HUB, "index.docker.io"):
            domain = DOCKER_HUB
            path = path if "/" in path else f"library/{path}"
        return cls(domain, path, match["tag"], digest)

    @property
    def name(self) -> str:
        """The repository as docker shows it: `nginx`, `user/app`, `reg:5000/app`."""
        if self.domain != DOCKER_HUB:
            return f"{self.domain}/{self.path}"
        return self.path.removeprefix("library/")

    def shown(self) -> str:
        """The whole reference as `service inspect` shows it: `nginx:latest@sha256:…`."""
        return self.brief() + (f"@{self.digest}" if self.digest and self.tag else "")

    def brief(self) -> str:
        """As `service ls`/`ps` show it, as docker's CLI does: a tagged reference without
        its digest (`nginx:latest`), any other as it is (`nginx`, `nginx@sha256:…`)."""
        if self.tag:
            return f"{self.name}:{self.tag}"
        return self.name + (f"@{self.digest}" if self.digest else "")

    def pinned(self, digest: str) -> "ImageRef":
        return replace(self, tag=self.tag or "latest", digest=digest)

    def by_digest(self) -> str:
        """What a node pulls and runs: the name at the digest (the tag would be ignored)."""
        assert self.digest, "only a pinned reference has a digest"
        return f"{self.name}@{self.digest}"

    def local_tag(self) -> str:
        """The tag an image copied from a peer gets: `docker load` keeps no digest, so
        the pinned digest is kept in the tag (`nginx:sha256-<hex>`)."""
        assert self.digest, "only a pinned reference has a digest"
        return f"{self.name}:{self.digest.replace(':', '-')}"


def default_name(image: str) -> str:
    """A service's name when none is given: registry:port/path/NAME:tag@digest."""
    return image.split("@")[0].rsplit("/", 1)[-1].split(":")[0]


def build_spec(
    *,
    name: str,
    image: str,
    args: Sequence[str] = (),
    replicas: int | None = None,
    mode: str = "replicated",
    networks: Sequence[str] = (),
    publish: Sequence[str] = (),
    env: Sequence[str] = (),
    labels: Sequence[str] = (),
    constraints: Sequence[str] = (),
    placement_prefs: Sequence[str] = (),
    replicas_max_per_node: int = 0,
    reserve_cpu: str | None = None,
    reserve_memory: str | None = None,
    limit_cpu: str | None = None,
    limit_memory: str | None = None,
    restart_condition: str = "any",
    restart_delay: str | None = None,
    restart_max_attempts: int = 0,
    restart_window: str | None = None,
    mounts: Sequence[str] = (),
    secrets: Sequence[str] = (),
    configs: Sequence[str] = (),
    workdir: str = "",
    user: str = "",
    health_cmd: str | None = None,
    health_interval: str | None = None,
    health_retries: int | None = None,
    health_timeout: str | None = None,
    health_start_period: str | None = None,
    no_healthcheck: bool = False,
    stop_grace_period: str | None = None,
    stop_signal: str = "",
    update: "PolicyOptions | None" = None,
    rollback: "PolicyOptions | None" = None,
) -> ServiceSpec:
    """Validate every option, then return the spec; the first bad option raises SwarmctlError."""
    if not valid_name(name):
        raise SwarmctlError(f"service name {_show(name)}: {NAME_HELP}")
    ImageRef.parse(image)
    service_mode = _mode(mode)
    reservations = _resources("--reserve", reserve_cpu, reserve_memory)
    limits = _resources("--limit", limit_cpu, limit_memory)
    _check_within_limits("cpu", reserve_cpu, reservations.nano_cpus, limit_cpu, limits.nano_cpus)
    _check_within_limits(
        "memory", reserve_memory, reservations.memory_bytes, limit_memory, limits.memory_bytes
    )
    secret_refs, config_refs = _file_refs("secret", secrets), _file_refs("config", configs)
    check_mount_points(secret_refs, config_refs)
    return ServiceSpec(
        name=name,
        image=image,
        args=_args(args),
        env=parse_env(env),
        labels=parse_key_values(list(labels), "--label"),
        mode=service_mode,
        replicas=_replicas(service_mode, replicas),
        networks=_networks(networks),
        ports=_ports(publish),
        constraints=_constraints(constraints),
        placement_prefs=_preferences(placement_prefs),
        max_replicas_per_node=_max_per_node(service_mode, replicas_max_per_node),
        reservations=reservations,
        limits=limits,
        restart=_restart_policy(
            restart_condition, restart_delay, restart_max_attempts, restart_window
        ),
        mounts=_mounts(mounts),
        secrets=secret_refs,
        configs=config_refs,
        workdir=_workdir(workdir),
        user=_user(user),
        health=_health(
            health_cmd,
            health_interval,
            health_retries,
            health_timeout,
            health_start_period,
            no_healthcheck,
        ),
        stop_grace_period=_stop_grace_period(stop_grace_period, 10.0),
        stop_signal=_stop_signal(stop_signal),
        update=(update or PolicyOptions()).apply("--update", UpdatePolicy()),
        rollback=(rollback or PolicyOptions()).apply("--rollback", UpdatePolicy()),
    )


@dataclass(frozen=True)
class PolicyOptions:
    """The `--update-*` (or `--rollback-*`) options as given; None: left as it was."""

    parallelism: int | None = None
    delay: str | None = None
    monitor: str | None = None
    failure_action: str | None = None
    max_failure_ratio: str | None = None
    order: str | None = None

    def apply(self, prefix: str, policy: UpdatePolicy) -> UpdatePolicy:
        actions = ("pause", "continue") if prefix == "--rollback" else tuple(FailureAction)
        if self.parallelism is not None and self.parallelism < 0:
            raise SwarmctlError(f"{prefix}-parallelism {self.parallelism}: must be 0 or more")
        if self.failure_action is not None and self.failure_action not in actions:
            raise SwarmctlError(
                f"{prefix}-failure-action {_show(self.failure_action)}: use {' or '.join(actions)}"
            )
        if self.order is not None and self.order not in tuple(UpdateOrder):
            raise SwarmctlError(
                f"{prefix}-order {_show(self.order)}: use stop-first or start-first"
            )
        ratio = policy.max_failure_ratio
        if self.max_failure_ratio is not None:
            option = f"{prefix}-max-failure-ratio {_show(self.max_failure_ratio)}"
            if not _CPUS_RE.fullmatch(self.max_failure_ratio):
                raise SwarmctlError(f"{option}: expected a number from 0 to 1")
            ratio = float(_decimal(self.max_failure_ratio))
            if ratio > 1:
                raise SwarmctlError(f"{option}: expected a number from 0 to 1")
        return UpdatePolicy(
            parallelism=policy.parallelism if self.parallelism is None else self.parallelism,
            delay=policy.delay
            if self.delay is None
            else parse_duration(self.delay, f"{prefix}-delay"),
            monitor=policy.monitor
            if self.monitor is None
            else parse_duration(self.monitor, f"{prefix}-monitor"),
            failure_action=FailureAction(self.failure_action or policy.failure_action),
            max_failure_ratio=ratio,
            order=UpdateOrder(self.order or policy.order),
        )


@dataclass(frozen=True)
class Changes:
    """`service update`'s options as given; None or empty: that part is left as it was."""

    image: str | None = None
    args: Sequence[str] | None = None
    replicas: int | None = None
    env_add: Sequence[str] = ()
    env_rm: Sequence[str] = ()
    label_add: Sequence[str] = ()
    label_rm: Sequence[str] = ()
    publish_add: Sequence[str] = ()
    publish_rm: Sequence[str] = ()
    constraint_add: Sequence[str] = ()
    constraint_rm: Sequence[str] = ()
    mount_add: Sequence[str] = ()
    mount_rm: Sequence[str] = ()
    secret_add: Sequence[str] = ()
    secret_rm: Sequence[str] = ()
    config_add: Sequence[str] = ()
    config_rm: Sequence[str] = ()
    network_add: Sequence[str] = ()
    network_rm: Sequence[str] = ()
    reserve_cpu: str | None = None
    reserve_memory: str | None = None
    limit_cpu: str | None = None
    limit_memory: str | None = None
    restart_condition: str | None = None
    restart_delay: str | None = None
    restart_max_attempts: int | None = None
    restart_window: str | None = None
    health_cmd: str | None = None
    health_interval: str | None = None
    health_retries: int | None = None
    health_timeout: str | None = None
    health_start_period: str | None = None
    no_healthcheck: bool = False
    stop_grace_period: str | None = None
    stop_signal: str | None = None
    update: PolicyOptions = PolicyOptions()
    rollback: PolicyOptions = PolicyOptions()


def updated_spec(spec: ServiceSpec, c: Changes) -> ServiceSpec:
    """The spec with `service update`'s changes, each validated as `service create` does."""
    if c.image is not None:
        ImageRef.parse(c.image)
    if c.replicas is not None and spec.mode is Mode.GLOBAL:
        raise SwarmctlError("--replicas is only for replicated services")
    if c.replicas is not None:
        check_replicas(f"--replicas {c.replicas}", c.replicas)
    for key in c.env_rm:
        _check_one_line("--env-rm", key)
    added_env = parse_env(c.env_add)
    env_keys = {item.partition("=")[0] for item in added_env} | set(c.env_rm)
    env = tuple(e for e in spec.env if e.partition("=")[0] not in env_keys) + added_env
    labels = {k: v for k, v in spec.labels.items() if k not in c.label_rm}
    labels |= parse_key_values(list(c.label_add), "--label-add")
    removed = [_unpublish(text) for text in c.publish_rm]
    added = _ports(c.publish_add)
    ports = tuple(
        p
        for p in spec.ports
        if not any(_same_port(p, r) for r in removed) and not any(_same_port(p, a) for a in added)
    )
    added_mounts = _mounts(c.mount_add)
    gone = set(c.mount_rm) | {m.target for m in added_mounts}
    mounts = tuple(m for m in spec.mounts if m.target not in gone) + added_mounts
    _networks(c.network_add)
    networks = tuple(n for n in spec.networks if n not in c.network_rm)
    networks += tuple(n for n in c.network_add if n not in networks)
    constraints = tuple(x for x in spec.constraints if x not in c.constraint_rm)
    constraints += tuple(x for x in _constraints(c.constraint_add) if x not in constraints)
    reservations = _update_resources(
        "--reserve", spec.reservations, c.reserve_cpu, c.reserve_memory
    )
    limits = _update_resources("--limit", spec.limits, c.limit_cpu, c.limit_memory)
    secrets = _update_file_refs("secret", spec.secrets, c.secret_add, c.secret_rm)
    configs = _update_file_refs("config", spec.configs, c.config_add, c.config_rm)
    check_mount_points(secrets, configs)
    if limits.nano_cpus and reservations.nano_cpus > limits.nano_cpus:
        raise SwarmctlError("--reserve-cpu is more than --limit-cpu")
    if limits.memory_bytes and reservations.memory_bytes > limits.memory_bytes:
        raise SwarmctlError("--reserve-memory is more than --limit-memory")
    return replace(
        spec,
        image=spec.image if c.image is None else c.image,
        args=spec.args if c.args is None else _args(c.args),
        replicas=spec.replicas if c.replicas is None else c.replicas,
        env=env,
        labels=labels,
        ports=ports + added,
        constraints=constraints,
        mounts=mounts,
        secrets=secrets,
        configs=configs,
        networks=networks,
        reservations=reservations,
        limits=limits,
        restart=_update_restart(spec.restart, c),
        health=_update_health(spec.health, c),
        stop_grace_period=_stop_grace_period(c.stop_grace_period, spec.stop_grace_period),
        stop_signal=spec.stop_signal if c.stop_signal is None else _stop_signal(c.stop_signal),
        update=c.update.apply("--update", spec.update),
        rollback=c.rollback.apply("--rollback", spec.rollback),
    )


def _unpublish(text: str) -> PortSpec:
    """--publish-rm TARGET[/PROTOCOL], or a whole published port as --publish gives it."""
    if re.fullmatch(r"[0-9]{1,10}(?:/[A-Za-z]+)?", text):
        target, _, protocol = text.partition("/")
        return PortSpec(target=int(target), protocol=(protocol or "tcp").lower())
    return parse_publish(text)


def _same_port(port: PortSpec, other: PortSpec) -> bool:
    return port.target == other.target and port.protocol == other.protocol


def _update_resources(prefix: str, before: Resources, cpus: str | None, memory: str | None):
    given = _resources(prefix, cpus, memory)
    return Resources(
        nano_cpus=before.nano_cpus if cpus is None else given.nano_cpus,
        memory_bytes=before.memory_bytes if memory is None else given.memory_bytes,
    )


def _update_restart(before: RestartPolicy, c: Changes) -> RestartPolicy:
    given = _restart_policy(
        c.restart_condition or before.condition.value,
        c.restart_delay,
        before.max_attempts if c.restart_max_attempts is None else c.restart_max_attempts,
        c.restart_window,
    )
    return replace(
        given,
        delay=before.delay if c.restart_delay is None else given.delay,
        window=before.window if c.restart_window is None else given.window,
    )


def _update_health(before: HealthCheck | None, c: Changes) -> HealthCheck | None:
    given = _health(
        c.health_cmd,
        c.health_interval,
        c.health_retries,
        c.health_timeout,
        c.health_start_period,
        c.no_healthcheck,
    )
    if given is None or given.disabled or before is None or before.disabled:
        return before if given is None else given
    return HealthCheck(
        command=given.command or before.command,
        interval=before.interval if given.interval is None else given.interval,
        retries=before.retries if given.retries is None else given.retries,
        timeout=before.timeout if given.timeout is None else given.timeout,
        start_period=before.start_period if given.start_period is None else given.start_period,
    )


# ------------------------------------------------------------------------- parsers


def parse_publish(text: str) -> PortSpec:
    """`80`, `8080:80`, `8080:80/udp` or `published=8080,target=80,protocol=tcp,mode=host`."""
    _check_one_line("--publish", text)

    def invalid(why: str) -> SwarmctlError:
        return SwarmctlError(f"--publish {_show(text)}: {why}")

    if "=" in text:
        return _parse_long_publish(text, invalid)
    match = _SHORT_PUBLISH_RE.fullmatch(text)
    if match is None:
        raise invalid(PUBLISH_HELP)
    published = match["published"]
    return PortSpec(
        target=_port(match["target"], invalid),
        published=_port(published, invalid) if published else None,
        protocol=_protocol(match["protocol"] or "tcp", invalid),
    )


def _parse_long_publish(text: str, invalid: Invalid) -> PortSpec:
    fields: dict[str, str] = {}
    for field in text.split(","):
        key, sep, value = field.partition("=")
        if not sep:
            raise invalid(PUBLISH_HELP)
        if key not in ("published", "target", "protocol", "mode"):
            raise invalid(f"unknown key '{key}' (use published, target, protocol, mode)")
        if key in fields:
            raise invalid(f"{key} is given twice")
        fields[key] = value
    if "target" not in fields:
        raise invalid("expected target=…")
    mode = fields.get("mode", "ingress").lower()
    if mode not in tuple(PublishMode):
        raise invalid(f"mode {fields['mode']} is not ingress or host")
    published = fields.get("published")
    return PortSpec(
        target=_port(fields["target"], invalid),
        published=None if published is None else _port(published, invalid),
        protocol=_protocol(fields.get("protocol", "tcp"), invalid),
        mode=PublishMode(mode),
    )


def _port(text: str, invalid: Invalid) -> int:
    if not _PORT_RE.fullmatch(text):
        raise invalid(f"port '{text}' is not a number")
    if not 1 <= int(text) <= 65535:
        raise invalid(f"port {text} is not in 1..65535")
    return int(text)


def _protocol(text: str, invalid: Invalid) -> str:
    if text.lower() not in PROTOCOLS:
        raise invalid(f"protocol {text} is not tcp, udp or sctp")
    return text.lower()


def parse_mount(text: str) -> MountSpec:
    """docker's `--mount`: comma-separated fields, quoted as CSV where a value holds a comma
    (`"volume-opt=o=addr=10.0.0.1,rw"`), with docker's keys, aliases and checks."""
    _check_one_line("--mount", text)

    def invalid(why: str) -> SwarmctlError:
        return SwarmctlError(f"--mount {_show(text)}: {why}")

    try:
        (row,) = csv.reader([text], strict=True)
    except csv.Error as exc:
        raise invalid(f"not a comma-separated list ({exc})") from None
    fields: dict[str, str] = {}
    options: dict[str, dict[str, str]] = {"volume-opt": {}, "volume-label": {}}
    for item in row:
        name, sep, value = item.partition("=")
        key = _MOUNT_KEYS.get(name.lower())
        if key is None:
            raise invalid(f"unknown key '{name}' (use {', '.join(MOUNT_OPTIONS)})")
        if key in options:
            option, has, option_value = value.partition("=")
            if not _MOUNT_OPTION_RE.fullmatch(option):
                raise invalid(f"{key} '{value}': expected KEY=VALUE")
            options[key][option] = option_value if has else ""
            continue
        if key in fields:
            raise invalid(f"{key} is given twice")
        if not sep and key not in ("readonly", "volume-nocopy"):
            raise invalid(f"expected {name}=…")
        fields[key] = value if sep else "true"
    kind = fields.get("type", "volume").lower()
    if kind not in ("bind", "volume", "tmpfs"):
        raise invalid(f"type {fields['type']} is not bind, volume or tmpfs")
    for key in fields.keys() | {k for k, v in options.items() if v}:
        if key.startswith(("volume-", "tmpfs-")) and not key.startswith(kind + "-"):
            raise invalid(f"{key} is only for type={key.split('-')[0]}")
    target = fields.get("target")
    if target is None:
        raise invalid("expected target=…")
    if not _ABSOLUTE_PATH_RE.fullmatch(target):
        raise invalid(f"target '{target}' must be {PATH_HELP}")
    if target.rstrip("/") == "":
        raise invalid("target / is the container's root")
    source = fields.get("source", "")
    if kind == "bind" and not source:
        raise invalid("a bind mount needs source=<absolute path>")
    if kind == "bind" and not _ABSOLUTE_PATH_RE.fullmatch(source):
        raise invalid(f"source '{source}' must be {PATH_HELP}")
    if kind == "volume" and source and not _VOLUME_NAME_RE.fullmatch(source):
        raise invalid(f"volume source '{source}' {VOLUME_NAME_HELP} (type=bind mounts a host path)")
    if kind == "tmpfs" and "source" in fields:
        raise invalid("a tmpfs mount takes no source (it is made in memory)")
    driver = fields.get("volume-driver", "")
    if driver and not _DRIVER_RE.fullmatch(driver):
        raise invalid(f"volume-driver '{driver}': expected a driver name like local")
    for label, label_value in options["volume-label"].items():
        check_label(f"--mount {_show(text)}", label, label_value)
    return MountSpec(
        type=kind,
        source=source,
        target=target,
        readonly=_mount_bool(fields, "readonly", invalid),
        volume_driver=driver,
        volume_opts=options["volume-opt"],
        volume_labels=options["volume-label"],
        volume_nocopy=_mount_bool(fields, "volume-nocopy", invalid),
        tmpfs_size=_tmpfs_size(fields.get("tmpfs-size"), invalid),
        tmpfs_mode=_tmpfs_mode(fields.get("tmpfs-mode"), invalid),
    )


FILE_NAME_RE = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9_.-]{0,62}[a-zA-Z0-9])?")
FILE_NAME_HELP = (
    "use letters, digits, '_', '.' and '-' (at most 64, starting and ending with a letter or digit)"
)
_FILE_REF_KEYS = {
    "source": "source",
    "src": "source",
    "target": "target",
    "uid": "uid",
    "gid": "gid",
    "mode": "mode",
}


def check_file_name(kind: str, name: str) -> None:
    """A secret's or config's name: docker's rule."""
    if not FILE_NAME_RE.fullmatch(name):
        raise SwarmctlError(f"{kind} name {_show(name)}: {FILE_NAME_HELP}")


def parse_file_ref(kind: str, text: str) -> FileRef:
    """docker's `--secret` / `--config`: NAME, or source=NAME[,target=…,uid=…,gid=…,mode=0400].

    A secret's relative target is a file under /run/secrets; a config's target is a path
    (relative: from /), by default /NAME, as docker places them."""
    option = f"--{kind}"
    _check_one_line(option, text)

    def invalid(why: str) -> SwarmctlError:
        return SwarmctlError(f"{option} {_show(text)}: {why}")

    try:
        (row,) = csv.reader([text], strict=True)
    except csv.Error as exc:
        raise invalid(f"not a comma-separated list ({exc})") from None
    fields: dict[str, str] = {}
    if len(row) == 1 and "=" not in row[0]:
        fields["source"] = row[0]
    else:
        for item in row:
            name, sep, value = item.partition("=")
            key = _FILE_REF_KEYS.get(name.lower())
            if key is None or not sep:
                raise invalid("expected KEY=VALUE with a key of source, target, uid, gid, mode")
            if key in fields:
                raise invalid(f"{key} is given twice")
            fields[key] = value
    source = fields.get("source", "")
    if not FILE_NAME_RE.fullmatch(source):
        raise invalid(f"{kind} name {_show(source)}: {FILE_NAME_HELP}")
    mode_text = fields.get("mode", "0444")
    if not re.fullmatch(r"0?[0-7]{1,3}", mode_text):
        raise invalid(f"mode {_show(mode_text)}: expected octal permission bits, e.g. 0400")
    ref = FileRef(
        source,
        fields.get("target", source if kind == "secret" else f"/{source}"),
        fields.get("uid", "0"),
        fields.get("gid", "0"),
        int(mode_text, 8),
    )
    try:
        return check_file_ref(kind, ref)
    except SwarmctlError as exc:
        raise invalid(str(exc)) from None


def check_file_ref(kind: str, ref: FileRef) -> FileRef:
    """A secret or config reference as docker would mount it, from the CLI or a Compose
    file: a config's relative target is from /, a target has no '.' or '..' parts, uid and
    gid are numeric IDs."""
    target = ref.target
    if kind == "config" and not target.startswith("/"):
        target = f"/{target}"
    parts = target.strip("/").split("/")
    if not target.strip("/") or any(p in ("", ".", "..") for p in parts):
        raise SwarmctlError(
            f"target {_show(target)}: expected a file path without '.' or '..' parts"
        )
    ids = {}
    for key, value in (("uid", ref.uid), ("gid", ref.gid)):
        if not value.isdecimal() or int(value) > 2**32 - 2:
            raise SwarmctlError(f"{key} {_show(value)}: expected a numeric ID")
        ids[key] = str(int(value))
    return replace(ref, target=target, uid=ids["uid"], gid=ids["gid"])


def mount_point(kind: str, ref: FileRef) -> str:
    """Where the task sees the file: a secret's relative target is under /run/secrets."""
    return posixpath.join("/run/secrets", ref.target) if kind == "secret" else ref.target


def check_mount_points(secrets: Sequence[FileRef], configs: Sequence[FileRef]) -> None:
    """Two files at one path would give docker a duplicate mount point: every task of the
    service rejected."""
    seen: dict[str, str] = {}
    for kind, refs in (("secret", secrets), ("config", configs)):
        for ref in refs:
            path = mount_point(kind, ref)
            if path in seen:
                raise SwarmctlError(
                    f"{kind} {ref.source}: {path} is already the file of {seen[path]}"
                )
            seen[path] = f"{kind} {ref.source}"


def _file_refs(kind: str, texts: Sequence[str]) -> tuple[FileRef, ...]:
    return tuple(parse_file_ref(kind, text) for text in texts)


def _update_file_refs(
    kind: str, before: tuple[FileRef, ...], add: Sequence[str], remove: Sequence[str]
) -> tuple[FileRef, ...]:
    """`--{kind}-rm NAME` drops the references to that secret or config; `--{kind}-add`
    replaces one at the same target."""
    for name in remove:
        check_file_name(kind, name)
    added = _file_refs(kind, add)
    gone = {t.target for t in added}
    kept = tuple(r for r in before if r.source not in remove and r.target not in gone)
    return kept + added


def parse_volume(name: str, driver: str, options: Sequence[str]) -> dict[str, str]:
    """`volume create NAME --driver D --opt K=V…`, checked as a volume mount's parts are;
    the driver's options as a dict."""
    for text in (name, driver, *options):
        _check_one_line("volume create", text)
    if not _VOLUME_NAME_RE.fullmatch(name):
        raise SwarmctlError(f"volume name {_show(name)}: {VOLUME_NAME_HELP}")
    if not _DRIVER_RE.fullmatch(driver):
        raise SwarmctlError(f"--driver {_show(driver)}: expected a driver name like local")
    parsed: dict[str, str] = {}
    for text in options:
        key, sep, value = text.partition("=")
        if not sep or not _MOUNT_OPTION_RE.fullmatch(key):
            raise SwarmctlError(f"--opt {_show(text)}: expected KEY=VALUE")
        parsed[key] = value
    return parsed


def _mount_bool(fields: dict[str, str], key: str, invalid: Invalid) -> bool:
    value = _BOOLEANS.get(fields.get(key, "false").lower())
    if value is None:
        raise invalid(f"{key}={fields[key]}: expected true or false")
    return value


def _tmpfs_size(text: str | None, invalid: Invalid) -> int:
    if text is None:
        return 0
    try:
        return parse_bytes(text, "tmpfs-size")
    except SwarmctlError:
        raise invalid(f"tmpfs-size '{text}': expected a size like 64m or 1g") from None


def _tmpfs_mode(text: str | None, invalid: Invalid) -> int | None:
    if text is None:
        return None
    if not _OCTAL_RE.fullmatch(text):
        raise invalid(f"tmpfs-mode '{text}': expected permission bits in octal, like 1770")
    return int(text, 8)


def _stop_grace_period(text: str | None, before: float) -> float:
    """Whole seconds, as docker's --stop-timeout takes them (a fraction is rounded up)."""
    if text is None:
        return before
    return float(math.ceil(parse_duration(text, "--stop-grace-period")))


def _stop_signal(text: str) -> str:
    """A signal as docker names them (SIGTERM, TERM, SIGRTMIN+3) or its number."""
    _check_one_line("--stop-signal", text)
    if text and not _SIGNAL_RE.fullmatch(text):
        raise SwarmctlError(
            f"--stop-signal {_show(text)}: expected a signal name like SIGTERM or SIGUSR1, "
            "or a number from 1 to 64"
        )
    return text


def parse_duration(text: str, option: str) -> float:
    """Go's duration syntax (`5s`, `1m30s`, `500ms`, `2h`, `0`) in seconds; never negative."""
    _check_one_line(option, text)
    body = text[1:] if text.startswith(("+", "-")) else text
    if body == "0":
        return 0.0
    if not _DURATION_RE.fullmatch(body):
        raise SwarmctlError(f"{option} {_show(text)}: expected a duration like 5s, 1m30s or 500ms")
    seconds = sum(
        (
            _decimal(number) * _DURATION_UNITS[unit]
            for number, unit in _DURATION_PART_RE.findall(body)
        ),
        Fraction(0),
    )
    if text.startswith("-") and seconds:
        raise SwarmctlError(f"{option} {text}: must be 0 or more")
    if seconds * 10**9 > _INT64_MAX:
        raise SwarmctlError(f"{option} {text}: too long")
    return float(seconds)


def parse_bytes(text: str, option: str) -> int:
    """docker's sizes: `1024`, `512M`, `1g`, `1.5GiB`, `100kb` (binary units, any case)."""
    _check_one_line(option, text)
    match = _BYTES_RE.fullmatch(text)
    if match is None:
        raise SwarmctlError(f"{option} {_show(text)}: expected a size like 512M, 1g or 1.5GiB")
    power = "kmgt".index(match["unit"].lower()) + 1 if match["unit"] else 0
    size = int(_decimal(match["number"]) * 1024**power)
    if size > _INT64_MAX:
        raise SwarmctlError(f"{option} {text}: too large")
    return size


def parse_cpus(text: str, option: str) -> int:
    """A number of CPUs (`0.5`, `2`) in nano CPUs, as Docker counts them; more than 0."""
    _check_one_line(option, text)
    if not _CPUS_RE.fullmatch(text):
        raise SwarmctlError(f"{option} {_show(text)}: expected a number of CPUs like 0.5 or 2")
    nano = _decimal(text) * 10**9
    if nano.denominator != 1:
        raise SwarmctlError(f"{option} {text}: too precise (at most 9 decimals)")
    if nano <= 0:
        raise SwarmctlError(f"{option} {text}: must be more than 0")
    if nano > _INT64_MAX:
        raise SwarmctlError(f"{option} {text}: too large")
    return int(nano)


def parse_env(items: Sequence[str]) -> tuple[str, ...]:
    """`KEY=VALUE` items, kept as given; a bare `KEY` is refused (there is no client env)."""
    for item in items:
        _check_one_line("--env", item)
        key, sep, _ = item.partition("=")
        if not sep:
            raise SwarmctlError(f"--env {_show(item)}: expected KEY=VALUE")
        if not _ENV_KEY_RE.fullmatch(key):
            raise SwarmctlError(
                f"--env {_show(item)}: key '{key}' must be letters, digits and '_',"
                " not starting with a digit"
            )
    return tuple(items)


# ---------------------------------------------------------------- build_spec's parts


def _mode(mode: str) -> Mode:
    if mode not in tuple(Mode):
        raise SwarmctlError(f"--mode {_show(mode)}: use replicated or global")
    return Mode(mode)


def _replicas(mode: Mode, replicas: int | None) -> int:
    if mode is Mode.GLOBAL:
        if replicas is not None:
            raise SwarmctlError("--replicas is only for replicated services")
        return 0
    if replicas is None:
        return 1
    check_replicas(f"--replicas {replicas}", replicas)
    return replicas


# Documented in the README's "Limits": every task is a record and a container, so a typo
# like web=1000000 must be refused before it is written, not after the state has grown.
MAX_REPLICAS = 10_000
MAX_TASKS_PER_NODE = 1_024


def check_replicas(where: str, replicas: int, nodes: int | None = None) -> None:
    """Refuse a replica count below 0, past MAX_REPLICAS, or past what `nodes` could hold."""
    if replicas < 0:
        raise SwarmctlError(f"{where}: must be 0 or more")
    if replicas > MAX_REPLICAS:
        raise SwarmctlError(f"{where}: more than the limit of {MAX_REPLICAS} replicas per service")
    if nodes is not None and replicas > nodes * MAX_TASKS_PER_NODE:
        raise SwarmctlError(
            f"{where}: more than {nodes} node(s) can hold ({MAX_TASKS_PER_NODE} tasks per node)"
        )


def _max_per_node(mode: Mode, max_per_node: int) -> int:
    if max_per_node < 0:
        raise SwarmctlError(f"--replicas-max-per-node {max_per_node}: must be 0 or more")
    if max_per_node and mode is Mode.GLOBAL:
        raise SwarmctlError("--replicas-max-per-node is only for replicated services")
    return max_per_node


def _args(args: Sequence[str]) -> tuple[str, ...]:
    for arg in args:
        _check_one_line("argument", arg)
    return tuple(args)


def _health(
    command: str | None,
    interval: str | None,
    retries: int | None,
    timeout: str | None = None,
    start_period: str | None = None,
    disabled: bool = False,
) -> HealthCheck | None:
    """docker's health options: any of them set the check's values, the others stay the
    image's; --no-healthcheck turns even the image's off."""
    given = {
        "--health-cmd": command,
        "--health-interval": interval,
        "--health-retries": retries,
        "--health-timeout": timeout,
        "--health-start-period": start_period,
    }
    if disabled:
        if any(v is not None for v in given.values()):
            named = next(k for k, v in given.items() if v is not None)
            raise SwarmctlError(f"--no-healthcheck conflicts with {named}")
        return HealthCheck(disabled=True)
    if all(v is None for v in given.values()):
        return None
    if command is not None:
        _check_one_line("--health-cmd", command)
        if not command.strip():
            raise SwarmctlError("--health-cmd '': give a command")
    if retries is not None and retries < 1:
        raise SwarmctlError(f"--health-retries {retries}: must be 1 or more")
    return HealthCheck(
        command=command or "",
        interval=_health_duration("--health-interval", interval),
        retries=retries,
        timeout=_health_duration("--health-timeout", timeout),
        start_period=_health_duration("--health-start-period", start_period, at_least=0),
    )


def _health_duration(option: str, text: str | None, at_least: float = 0.1) -> float | None:
    if text is None:
        return None
    seconds = parse_duration(text, option)
    if seconds < at_least:
        raise SwarmctlError(f"{option} {text}: at least 100ms")
    return seconds


def _networks(networks: Sequence[str]) -> tuple[str, ...]:
    for index, network in enumerate(networks):
        if not valid_name(network):
            raise SwarmctlError(f"--network {_show(network)}: {NAME_HELP}")
        if network in networks[:index]:
            raise SwarmctlError(f"--network '{network}': given twice")
    return tuple(networks)


def _ports(publish: Sequence[str]) -> tuple[PortSpec, ...]:
    ports: list[PortSpec] = []
    published_by: dict[tuple[int, str], str] = {}
    for text in publish:
        port = parse_publish(text)
        if port.published is not None:
            key = (port.published, port.protocol)
            if key in published_by:
                raise SwarmctlError(
                    f"--publish '{text}': port {port.published}/{port.protocol}"
                    f" is already published by '{published_by[key]}'"
                )
            published_by[key] = text
        ports.append(port)
    return tuple(ports)


def _constraints(constraints: Sequence[str]) -> tuple[str, ...]:
    for text in constraints:
        _check_one_line("--constraint", text)
        parse_constraint(text)
    return tuple(constraints)


def _preferences(preferences: Sequence[str]) -> tuple[str, ...]:
    for text in preferences:
        _check_one_line("--placement-pref", text)
        parse_preference(text)
    return tuple(preferences)


def _resources(prefix: str, cpus: str | None, memory: str | None) -> Resources:
    nano_cpus = 0 if cpus is None else parse_cpus(cpus, f"{prefix}-cpu")
    memory_bytes = 0 if memory is None else parse_bytes(memory, f"{prefix}-memory")
    if 0 < memory_bytes < MIN_MEMORY:
        raise SwarmctlError(f"{prefix}-memory {memory}: Docker needs at least 6MiB")
    return Resources(nano_cpus=nano_cpus, memory_bytes=memory_bytes)


def _check_within_limits(
    resource: str, reserve_text: str | None, reserved: int, limit_text: str | None, limit: int
) -> None:
    if limit and reserved > limit:
        raise SwarmctlError(
            f"--reserve-{resource} {reserve_text} is more than --limit-{resource} {limit_text}"
        )


def _restart_policy(
    condition: str, delay: str | None, max_attempts: int, window: str | None
) -> RestartPolicy:
    if condition not in tuple(RestartCondition):
        raise SwarmctlError(f"--restart-condition {_show(condition)}: use none, on-failure or any")
    if max_attempts < 0:
        raise SwarmctlError(f"--restart-max-attempts {max_attempts}: must be 0 or more")
    return RestartPolicy(
        condition=RestartCondition(condition),
        delay=None if delay is None else parse_duration(delay, "--restart-delay"),
        max_attempts=max_attempts,
        window=0.0 if window is None else parse_duration(window, "--restart-window"),
    )


def _mounts(mounts: Sequence[str]) -> tuple[MountSpec, ...]:
    specs: list[MountSpec] = []
    for text in mounts:
        mount = parse_mount(text)
        if any(mount.target == other.target for other in specs):
            raise SwarmctlError(f"--mount '{text}': target {mount.target} is already mounted")
        specs.append(mount)
    return tuple(specs)


def _workdir(workdir: str) -> str:
    if workdir and not _ABSOLUTE_PATH_RE.fullmatch(workdir):
        raise SwarmctlError(f"--workdir {_show(workdir)}: expected {PATH_HELP}")
    return workdir


def _user(user: str) -> str:
    if user and not _USER_RE.fullmatch(user):
        raise SwarmctlError(
            f"--user {_show(user)}: expected NAME, UID, NAME:GROUP or UID:GID"
            " (letters, digits, '_', '.', '-')"
        )
    return user


# ------------------------------------------------------------------------- helpers


def _check_one_line(option: str, text: str) -> None:
    """Values reach remote command lines: no newline, NUL or other control character (tab aside)."""
    if not text.replace("\t", " ").isprintable():
        raise SwarmctlError(f"{option} {_show(text)}: must be one line of printable text")


def _show(text: str) -> str:
    """The value quoted for a message, escaped when it would break the message's one line."""
    text = cut(text)
    return f"'{text}'" if text.isprintable() else repr(text)


def _decimal(text: str) -> Fraction:
    whole, _, fraction = text.partition(".")
    return Fraction(int(whole or "0")) + Fraction(int(fraction or "0"), 10 ** len(fraction))
