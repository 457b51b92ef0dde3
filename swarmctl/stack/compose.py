"""Compose files to a Stack, as `docker stack deploy -c` reads them: YAML, `${VAR}`
interpolation, several files merged, the Compose specification's JSON schema, then
ServiceSpecs through spec.py's parsers and checks.

Pure but for reading the files (the Compose files, `.env`, env_file, secret and config
files are checked to exist). Does not look at the cluster: whether a name is taken by
another stack is the deploy's job. Keys swarm ignores or swarmctl does not support are
returned in Stack.ignored, never dropped silently.

The schema is compose-spec/compose-spec's schema/compose-spec.json of October 2021
(Apache-2.0, see compose-spec.NOTICE), shipped beside this module.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import ipaddress
import json
import os
import re
import shlex
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import jsonschema
import yaml
from dotenv import dotenv_values

from swarmctl.errors import SwarmctlError, cut
from swarmctl.models import FileRef, MountSpec, ServiceSpec
from swarmctl.naming import check_label, valid_name
from swarmctl.spec import (
    NAME_HELP,
    PolicyOptions,
    build_spec,
    check_file_ref,
    check_mount_points,
    parse_bytes,
    parse_cpus,
    parse_duration,
    parse_env,
    parse_mount,
    parse_publish,
)
from swarmctl.stack.model import (
    IMAGE_LABEL,
    NAMESPACE_LABEL,
    Stack,
    StackFileObject,
    StackNetwork,
    StackVolume,
)

SCHEMA = "compose-spec.json"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
MERGED = "the merged files"
DEFAULT_NETWORK = "default"
# docker's rule for secret, config and volume names (letters, digits, '_', '.', '-')
_OBJECT_NAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,62}[A-Za-z0-9])?")
_HOSTNAME_RE = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
_ALIAS_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?")
ALIAS_HELP = "expected a DNS name (letters, digits, '_', '.', '-')"
_TARGET_RE = re.compile(r"[A-Za-z0-9/_.@%+~-]+")

# The keys of a service, of its `deploy:` and of its parts that become a ServiceSpec;
# any other is listed in Stack.ignored.
SERVICE_KEYS = frozenset(
    {
        *("image", "command", "entrypoint", "environment", "env_file", "ports", "networks"),
        *("volumes", "secrets", "configs", "healthcheck", "labels", "user", "working_dir"),
        *("hostname", "stop_grace_period", "stop_signal", "deploy"),
    }
)
DEPLOY_KEYS = frozenset(
    {
        *("mode", "replicas", "placement", "resources", "restart_policy", "update_config"),
        *("rollback_config", "endpoint_mode", "labels"),
    }
)
RESOURCE_KEYS = frozenset({"cpus", "memory"})
SUBNET = frozenset({"subnet"})
ALIASES = frozenset({"aliases"})
MOUNT_KEYS = frozenset({"type", "source", "target", "read_only", "volume", "tmpfs", "bind"})


class ComposeError(SwarmctlError):
    """A Compose file that cannot be deployed: one line naming the file, the key and why."""


def load(paths: Sequence[Path], stack: str, environ: Mapping[str, str]) -> Stack:
    """The stack the files describe, read in order, later files overriding earlier ones.

    Variables come from `environ`, then from a `.env` file beside the first file; relative
    paths (env_file, bind mounts, secret and config files) are the first file's, as docker's.
    """
    if not valid_name(stack):
        raise ComposeError(f"stack name {_show(stack)}: {NAME_HELP}")
    if not paths:
        raise ComposeError("no Compose file given (-c FILE)")
    base = Path(paths[0]).absolute().parent
    variables = {**_dotenv(base / ".env"), **environ}
    documents: list[tuple[str, dict[str, Any]]] = []
    for path in paths:
        source = str(path)
        document = _interpolate(_read(Path(path)), variables, source)
        _validate(document, source)
        documents.append((source, _extended(document, Path(path), variables)))
    # Each file valid, the merge is too: it only adds, replaces or appends valid values.
    merged = functools.reduce(lambda a, b: _merge(a, b, ()), (d for _, d in documents), {})
    return _Translator(stack, base, merged, documents, variables).stack(
        files=tuple(str(Path(p).absolute()) for p in paths),
        digest=hashlib.sha256(
            json.dumps(merged, sort_keys=True, separators=(",", ":"), default=str).encode()
        ).hexdigest(),
    )


# --------------------------------------------------------------------------- reading


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError):
        raise ComposeError(f"{path}: {_not_a_file(path)}") from None
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or exc
        raise ComposeError(f"{path}: cannot be read ({why})") from None
    try:
        document = yaml.load(text, Loader=_Loader)  # a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ComposeError(f"{path}: {where}{exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ComposeError(f"{path}: not YAML ({_one_line(str(exc))})") from None
    if not isinstance(document, dict):
        raise ComposeError(f"{path}: expected a mapping of services, networks, … at the top")
    _check_keys(document, str(path), ())
    return document


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader without YAML 1.1's base-60 numbers: `- 80:80` is the string
    "80:80" as Go's YAML reads it for docker, not the number 4880."""

    yaml_implicit_resolvers: ClassVar[dict[str, list]] = {
        first: [(tag, rx) for tag, rx in resolvers if tag not in (_INT, _FLOAT)]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


_Loader.add_implicit_resolver(
    _INT,
    re.compile(r"^[-+]?(?:0b[0-1_]+|0[0-7_]+|0|[1-9][0-9_]*|0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"),
)
_Loader.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def _check_keys(value: Any, source: str, path: tuple) -> None:
    """JSON's rule, which the schema and the digest need: every key is a string."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                where = _dotted(path) or "top level"
                raise ComposeError(f"{source}: {where}: key {key!r} is not a string")
            _check_keys(item, source, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_keys(item, source, (*path, index))


def _not_a_file(path: Path | str) -> str:
    return "is a directory, not a file" if Path(path).is_dir() else "no such file"


def _dotenv(path: Path) -> dict[str, str]:
    """A `.env` file's variables (python-dotenv's syntax); a key without `=` is skipped."""
    if not path.is_file():
        return {}
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


# ---------------------------------------------------------------------- interpolation

# docker's template grammar: $$, $VAR, ${VAR}, ${VAR:-default}, ${VAR-default},
# ${VAR:?error}, ${VAR?error}. A default is taken as written, as docker stack deploy's
# (docker compose would interpolate a $VAR in it).
_VARIABLE_RE = re.compile(
    r"\$(?:(?P<escaped>\$)|(?P<named>[_A-Za-z][_A-Za-z0-9]*)"
    r"|\{(?P<braced>[_A-Za-z][_A-Za-z0-9]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|(?P<invalid>))"
)


def _interpolate(value: Any, variables: Mapping[str, str], source: str, path: tuple = ()) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, variables, source, (*path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, variables, source, (*path, i)) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value
    where = f"{source}: {_dotted(path)}"
    text = _substitute(value, variables, where)
    cast = _cast_for(path)
    return text if cast is None else cast(text, where)


def _substitute(text: str, variables: Mapping[str, str], where: str) -> str:
    def one(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["named"] or match["braced"]
        if name is None:
            raise ComposeError(
                f"{where}: invalid interpolation in {_show(text)} (write a literal $ as $$)"
            )
        op, value = match["op"], variables.get(name)
        missing = value is None or (op is not None and op.startswith(":") and value == "")
        if op in (":-", "-"):
            return match["arg"] if missing else value or ""
        if op in (":?", "?") and missing:
            state = "unset or empty" if op == ":?" else "unset"
            raise ComposeError(f"{where}: variable {name} is {state}: {match['arg'] or 'required'}")
        return value or ""

    return _VARIABLE_RE.sub(one, text)


def _to_int(text: str, where: str) -> int | str:
    return int(text) if re.fullmatch(r"[+-]?[0-9]+", text.strip()) else text


def _to_float(text: str, where: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


_TRUE = {"y", "yes", "true", "on"}
_FALSE = {"n", "no", "false", "off"}


def _to_bool(text: str, where: str) -> bool | str:
    lowered = text.strip().lower()
    return True if lowered in _TRUE else False if lowered in _FALSE else text


# Where a string is cast after interpolation, as docker's loader does, so `replicas: ${N}`
# validates: "*" is any mapping key, "[]" any list item. A string that is not a number
# (or boolean) is left to fail the schema with its key named.
_CASTS: tuple[tuple[tuple[str, ...], Callable[[str, str], Any]], ...] = tuple(
    (tuple(pattern.split(".")), cast)
    for pattern, cast in (
        ("services.*.configs.[].mode", _to_int),
        ("services.*.secrets.[].mode", _to_int),
        ("services.*.healthcheck.retries", _to_int),
        ("services.*.healthcheck.disable", _to_bool),
        ("services.*.deploy.replicas", _to_int),
        ("services.*.deploy.update_config.parallelism", _to_int),
        ("services.*.deploy.update_config.max_failure_ratio", _to_float),
        ("services.*.deploy.rollback_config.parallelism", _to_int),
        ("services.*.deploy.rollback_config.max_failure_ratio", _to_float),
        ("services.*.deploy.restart_policy.max_attempts", _to_int),
        ("services.*.deploy.placement.max_replicas_per_node", _to_int),
        ("services.*.ports.[].target", _to_int),
        ("services.*.ports.[].published", _to_int),
        ("services.*.volumes.[].read_only", _to_bool),
        ("services.*.volumes.[].volume.nocopy", _to_bool),
        ("networks.*.external", _to_bool),
        ("networks.*.attachable", _to_bool),
        ("networks.*.internal", _to_bool),
        ("volumes.*.external", _to_bool),
        ("secrets.*.external", _to_bool),
        ("configs.*.external", _to_bool),
    )
)


def _cast_for(path: tuple) -> Callable[[str, str], Any] | None:
    for pattern, cast in _CASTS:
        if len(pattern) == len(path) and all(
            p == "[]" if isinstance(k, int) else p in ("*", k)
            for p, k in zip(pattern, path, strict=True)
        ):
            return cast
    return None


# ------------------------------------------------------------------------ validation


@functools.cache
def _validator() -> Any:
    schema = json.loads(resources.files("swarmctl.stack").joinpath(SCHEMA).read_text())
    # The draft its $schema names, which spells that draft's URI in a way jsonschema does
    # not know.
    return jsonschema.Draft201909Validator(schema)


def _validate(document: dict[str, Any], source: str) -> None:
    error = jsonschema.exceptions.best_match(_validator().iter_errors(document))
    if error is not None:
        raise ComposeError(f"{source}: {_schema_error(error)}")


def _schema_error(error: jsonschema.ValidationError) -> str:
    path = _dotted(tuple(error.absolute_path))
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = error.schema.get("properties", {})
        patterns = error.schema.get("patternProperties", {})
        unknown = [
            key
            for key in error.instance
            if key not in allowed and not any(re.search(p, key) for p in patterns)
        ]
        if unknown:
            key = unknown[0]
            if not patterns or "^x-" in patterns:
                return f"{_dotted((*error.absolute_path, key))}: unknown key"
            return f"{path or 'top level'}: {_show(key)} is not a valid name"
    if error.validator == "type":
        wanted = error.validator_value
        wanted = " or ".join(wanted) if isinstance(wanted, list) else wanted
        return f"{path}: {_shown(error.instance)} is not of type {wanted}"
    return f"{path or 'top level'}: {cut(_one_line(error.message), 120)}"


# ---------------------------------------------------------------------------- merging


# Docker's rules (Compose specification, "Merge"): mappings merge key by key, the later
# file winning; sequences append, except command, entrypoint and healthcheck.test, which
# the later file replaces, and ports, volumes, secrets and configs, in which an entry
# replaces the earlier one with the same key: its published port, target, or source
# (docker stack deploy's key for secrets and configs; docker compose's is the target).
# environment, labels and a service's networks merge as mappings whether written as
# lists or mappings.
def _merge(base: Any, override: Any, path: tuple) -> Any:
    key = path[2:] if len(path) >= 3 and path[0] == "services" else ()
    if key in (("environment",), ("labels",), ("deploy", "labels")):
        return {**_as_mapping(base), **_as_mapping(override)}
    if key == ("networks",):
        return {**_network_mapping(base), **_network_mapping(override)}
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for name, value in override.items():
            merged[name] = _merge(base[name], value, (*path, name)) if name in base else value
        return merged
    if isinstance(base, list) and isinstance(override, list):
        if key in (("command",), ("entrypoint",), ("healthcheck", "test")):
            return override
        unique = _UNIQUE_KEYS.get(key[0]) if len(key) == 1 else None
        if unique is not None:
            by_key = {unique(item): item for item in base}
            by_key.update({unique(item): item for item in override})
            return list(by_key.values())
        return base + [item for item in override if item not in base]
    return override


def _extended(document: dict[str, Any], path: Path, variables: Mapping[str, str]) -> dict:
    """The document with each service's `extends` resolved as docker compose resolves it:
    the base service (`service: NAME`, or a bare NAME, of this file, or of `file:`, a
    path from this file's directory) with its own `extends` resolved first, the
    extending service merged over it by the rules of a later file. Relative paths in a
    service taken from another directory's file are made absolute (they are its file's)."""
    services = document.get("services") or {}
    if not any(isinstance(body, dict) and "extends" in body for body in services.values()):
        return document
    path = Path(os.path.normpath(path.absolute()))
    files = {path: document}

    def resolve(file: Path, name: str, chain: tuple[tuple[Path, str], ...]) -> dict[str, Any]:
        if (file, name) in chain:
            cycle = " -> ".join(n for _, n in (*chain, (file, name)))
            raise ComposeError(f"{chain[0][0]}: services.{chain[0][1]}.extends: a loop ({cycle})")
        if file not in files:
            source = str(file)
            files[file] = _interpolate(_read(file), variables, source)
            _validate(files[file], source)
        bodies = files[file].get("services") or {}
        if name not in bodies:
            at = f"{chain[-1][0]}: services.{chain[-1][1]}.extends"
            raise ComposeError(f"{at}: no service {_show(name)} in {file}")
        body = dict(bodies[name] or {})
        if file.parent != path.parent:
            body = _rebased(body, file.parent)
        if "extends" not in body:
            return body
        extends = body.pop("extends")
        ref = {"service": extends} if isinstance(extends, str) else extends
        base_file = Path(os.path.normpath(file.parent / ref["file"])) if "file" in ref else file
        base = resolve(base_file, ref["service"], (*chain, (file, name)))
        return _merge(base, body, ("services", name))

    resolved = {name: resolve(path, name, ()) for name in services}
    return {**document, "services": resolved}


def _rebased(body: dict[str, Any], directory: Path) -> dict[str, Any]:
    """A service's env_file paths and bind mount sources, made absolute from `directory`."""

    def absolute(text: str) -> str:
        return text if text.startswith(("/", "~")) else os.path.normpath(directory / text)

    body = dict(body)
    env_files = body.get("env_file")
    if env_files:
        listed = [env_files] if isinstance(env_files, str) else env_files
        body["env_file"] = [absolute(f) for f in listed]
    volumes = []
    for volume in body.get("volumes") or []:
        if isinstance(volume, str) and volume.startswith("."):
            source, sep, rest = volume.partition(":")
            volume = f"{absolute(source)}{sep}{rest}"
        elif isinstance(volume, dict) and volume.get("type") == "bind" and volume.get("source"):
            volume = {**volume, "source": absolute(volume["source"])}
        volumes.append(volume)
    if volumes:
        body["volumes"] = volumes
    return body


def _as_mapping(value: Any) -> dict[str, Any]:
    """A list-or-dict (`["K=V", "K"]` or `{K: V}`) as a mapping; a bare `K` maps to None."""
    if isinstance(value, dict):
        return dict(value)
    pairs = (item.partition("=") for item in value or ())
    return {key: (item if sep else None) for key, sep, item in pairs}


def _network_mapping(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else dict.fromkeys(value or ())


def _port_key(item: Any) -> tuple:
    if isinstance(item, dict):
        published = item.get("published")
        return (item.get("host_ip"), published, item.get("target"), item.get("protocol", "tcp"))
    text, _, protocol = str(item).partition("/")
    *host, target = text.split(":")
    return (":".join(host[:-1]) or None, host[-1] if host else None, target, protocol or "tcp")


def _volume_key(item: Any) -> Any:
    if isinstance(item, dict):
        return item.get("target")
    parts = str(item).split(":")
    return parts[0] if len(parts) == 1 else parts[1]


def _file_key(item: Any) -> Any:
    return item.get("source") if isinstance(item, dict) else item


_UNIQUE_KEYS: dict[str, Callable[[Any], Any]] = {
    "ports": _port_key,
    "volumes": _volume_key,
    "secrets": _file_key,
    "configs": _file_key,
}


# ------------------------------------------------------------------------ translation


class _Translator:
    def __init__(
        self,
        stack: str,
        base: Path,
        document: dict[str, Any],
        files: list[tuple[str, dict[str, Any]]],
        variables: Mapping[str, str],
    ) -> None:
        self.stack_name = stack
        self.base = base
        self.document = document
        self.files = files
        self.variables = variables
        self.ignored: dict[str, None] = {}
        self.used_networks: dict[str, None] = {}

    def stack(self, files: tuple[str, ...], digest: str) -> Stack:
        for key in ("networks", "volumes", "secrets", "configs"):
            for name in self.document.get(key) or {}:
                self._check_key(key, name)
        secrets = self._file_objects("secrets")
        configs = self._file_objects("configs")
        volumes = self._volumes()
        services = tuple(
            self._service(key, body or {})
            for key, body in (self.document.get("services") or {}).items()
        )
        return Stack(
            name=self.stack_name,
            services=services,
            networks=self._networks(),
            volumes=volumes,
            secrets=secrets,
            configs=configs,
            files=files,
            digest=digest,
            ignored=tuple(self.ignored),
        )

    # ------------------------------------------------------------ top-level objects

    def _source(self, *path: str) -> str:
        """The file that last set this key, for messages; the merged files if none did."""
        for source, document in reversed(self.files):
            value: Any = document
            for key in path:
                value = value.get(key) if isinstance(value, dict) else None
            if value is not None:
                return source
        return MERGED

    def _fail(self, path: tuple, why: str) -> ComposeError:
        return ComposeError(f"{self._source(*map(str, path[:2]))}: {_dotted(path)}: {why}")

    @contextmanager
    def _at(self, *path: Any) -> Iterator[None]:
        """Name the file and key in an error from spec.py's parsers."""
        try:
            yield
        except ComposeError:
            raise
        except SwarmctlError as exc:
            raise self._fail(path, str(exc)) from None

    def _ignore(self, *path: Any) -> None:
        self.ignored[_dotted(path)] = None

    def _ignore_others(self, body: dict[str, Any], known: frozenset[str], *path: Any) -> None:
        for key in body:
            if key not in known and not key.startswith("x-"):
                self._ignore(*path, key)

    def _check_key(self, kind: str, key: str) -> None:
        body = (self.document.get(kind) or {}).get(key) or {}
        name = self._object_name(kind, key, body)
        good = valid_name(name) if kind == "networks" else _OBJECT_NAME_RE.fullmatch(name)
        if not good:
            help_text = NAME_HELP if kind == "networks" else "use letters, digits, '_', '.', '-'"
            raise self._fail((kind, key), f"name {_show(name)}: {help_text}")

    def _object_name(self, kind: str, key: str, body: dict[str, Any]) -> str:
        """As docker names them: an external object's own name, `name:`, or `<stack>_<key>`."""
        external = body.get("external")
        if isinstance(external, dict) and external.get("name"):
            return external["name"]
        if body.get("name"):
            return body["name"]
        return key if external else f"{self.stack_name}_{key}"

    def _labels(self, value: Any, *path: Any) -> dict[str, str]:
        labels = {k: _text(v) for k, v in _as_mapping(value).items()}
        with self._at(*path):
            for key, text in labels.items():
                check_label("label", key, text)
        return labels

    def _stack_labels(self, value: Any, *path: Any) -> dict[str, str]:
        return {**self._labels(value, *path), NAMESPACE_LABEL: self.stack_name}

    def _file_objects(self, kind: str) -> tuple[StackFileObject, ...]:
        objects = []
        for key, body in (self.document.get(kind) or {}).items():
            body = body or {}
            name = self._object_name(kind, key, body)
            self._ignore_others(body, frozenset({"name", "file", "external", "labels"}), kind, key)
            if body.get("external"):
                objects.append(StackFileObject(name=name, external=True))
                continue
            if not body.get("file"):
                raise self._fail((kind, key), "needs file: (or external: true)")
            path = self._host_path(body["file"])
            if not Path(path).is_file():
                raise self._fail((kind, key, "file"), f"{path}: {_not_a_file(path)}")
            labels = self._stack_labels(body.get("labels"), kind, key, "labels")
            objects.append(StackFileObject(name=name, file=path, labels=labels))
        return tuple(objects)

    def _volumes(self) -> tuple[StackVolume, ...]:
        volumes = []
        for key, body in (self.document.get("volumes") or {}).items():
            body = body or {}
            name = self._object_name("volumes", key, body)
            if body.get("external"):
                volumes.append(StackVolume(name=name, external=True))
                continue
            volumes.append(
                StackVolume(
                    name=name,
                    driver=body.get("driver", ""),
                    driver_opts={k: _text(v) for k, v in (body.get("driver_opts") or {}).items()},
                    labels=self._stack_labels(body.get("labels"), "volumes", key, "labels"),
                )
            )
        return tuple(volumes)

    def _networks(self) -> tuple[StackNetwork, ...]:
        """The networks services use (docker creates no other), in the order first used."""
        declared = self.document.get("networks") or {}
        networks = []
        for key in self.used_networks:
            body = declared.get(key) or {}
            name = self._object_name("networks", key, body)
            if body.get("external"):
                networks.append(StackNetwork(name=name, external=True))
                continue
            self._ignore_others(
                body,
                frozenset({"name", "driver", "attachable", "labels", "ipam", "external"}),
                "networks",
                key,
            )
            ipam = body.get("ipam") or {}
            self._ignore_others(ipam, frozenset({"config"}), "networks", key, "ipam")
            pools = ipam.get("config") or [{}]
            self._ignore_others(pools[0], SUBNET, "networks", key, "ipam", "config", 0)
            for index in range(1, len(pools)):
                self._ignore("networks", key, "ipam", "config", index)
            subnet = pools[0].get("subnet", "")
            try:
                ipaddress.ip_network(subnet or "0.0.0.0/0")
            except ValueError as exc:
                where = ("networks", key, "ipam", "config", 0, "subnet")
                raise self._fail(where, f"{_show(subnet)}: {exc}") from None
            networks.append(
                StackNetwork(
                    name=name,
                    driver=body.get("driver", "overlay"),
                    attachable=bool(body.get("attachable", False)),
                    subnet=subnet,
                    labels=self._stack_labels(body.get("labels"), "networks", key, "labels"),
                )
            )
        for key in declared:
            if key not in self.used_networks:
                self._ignore("networks", key)  # no service uses it: docker creates none
        return tuple(networks)

    def _host_path(self, text: str) -> str:
        """A path on the control node (env_file, secret and config files) or of a bind
        mount: `~` is the user's home, a relative path the first file's directory's."""
        return os.path.normpath(self.base / os.path.expanduser(text))

    # ---------------------------------------------------------------------- services

    def _service(self, key: str, body: dict[str, Any]) -> ServiceSpec:
        path = ("services", key)
        name = f"{self.stack_name}_{key}"
        if not valid_name(name):
            raise self._fail(path, f"service name {_show(name)}: {NAME_HELP}")
        if not body.get("image"):
            raise self._fail(path, "no image: (swarm runs images; build: is not supported)")
        self._ignore_others(body, SERVICE_KEYS, *path)
        deploy = body.get("deploy") or {}
        self._ignore_others(deploy, DEPLOY_KEYS, *path, "deploy")
        mode = deploy.get("mode", "replicated")
        placement = deploy.get("placement") or {}
        preferences = placement.get("preferences") or []
        resources_ = deploy.get("resources") or {}
        limits = self._resources(resources_, "limits", path)
        reservations = self._resources(resources_, "reservations", path)
        restart = deploy.get("restart_policy") or {}
        health = self._health(body.get("healthcheck"), path)
        if deploy.get("endpoint_mode", "vip") != "vip":
            self._ignore(*path, "deploy", "endpoint_mode")
        aliases = self._service_networks(key, body.get("networks"), path)
        service_labels = {
            **self._stack_labels(deploy.get("labels"), *path, "deploy", "labels"),
            IMAGE_LABEL: _text(body["image"]),
        }
        with self._at(*path):
            spec = build_spec(
                name=name,
                image=body["image"],
                args=self._words(body.get("command"), *path, "command"),
                replicas=deploy.get("replicas", 1 if mode == "replicated" else None),
                mode=mode,
                networks=list(aliases),
                publish=self._ports(body.get("ports") or [], path),
                env=self._environment(body, path),
                labels=[f"{k}={v}" for k, v in service_labels.items()],
                constraints=placement.get("constraints") or (),
                placement_prefs=[f"spread={p['spread']}" for p in preferences if "spread" in p],
                replicas_max_per_node=placement.get("max_replicas_per_node", 0),
                reserve_cpu=reservations.get("cpus"),
                reserve_memory=reservations.get("memory"),
                limit_cpu=limits.get("cpus"),
                limit_memory=limits.get("memory"),
                restart_condition=restart.get("condition", "any"),
                restart_delay=self._duration(restart, "delay", *path, "deploy", "restart_policy"),
                restart_max_attempts=restart.get("max_attempts", 0),
                restart_window=self._duration(restart, "window", *path, "deploy", "restart_policy"),
                workdir=body.get("working_dir", ""),
                user=_text(body.get("user", "")),
                stop_grace_period=self._duration(body, "stop_grace_period", *path),
                stop_signal=body.get("stop_signal", ""),
                update=self._policy(deploy, "update_config", path),
                rollback=self._policy(deploy, "rollback_config", path),
                **health,
            )
        secret_refs = self._file_refs("secrets", body.get("secrets") or [], path)
        config_refs = self._file_refs("configs", body.get("configs") or [], path)
        with self._at(*path):
            check_mount_points(secret_refs, config_refs)
        return replace(
            spec,
            command=self._words(body.get("entrypoint"), *path, "entrypoint"),
            mounts=self._mounts(body.get("volumes") or [], path),
            secrets=secret_refs,
            configs=config_refs,
            hostname=self._hostname(body.get("hostname", ""), path),
            container_labels=self._stack_labels(body.get("labels"), *path, "labels"),
            network_aliases=aliases,
        )

    def _words(self, value: Any, *path: Any) -> tuple[str, ...]:
        """A command as a list, or a string split as a shell would (docker's rule)."""
        if value is None:
            return ()
        if isinstance(value, str):
            try:
                return tuple(shlex.split(value))
            except ValueError as exc:
                raise self._fail(path, f"{_show(value)}: {exc}") from None
        return tuple(value)

    def _duration(self, body: dict[str, Any], key: str, *path: Any) -> str | None:
        """A Go duration, checked here so an error names the key (build_spec reads it)."""
        if body.get(key) is None:
            return None
        with self._at(*path, key):
            parse_duration(body[key], key)
        return body[key]

    def _resources(self, resources_: dict[str, Any], kind: str, path: tuple) -> dict[str, str]:
        given = resources_.get(kind) or {}
        self._ignore_others(given, RESOURCE_KEYS, *path, "deploy", "resources", kind)
        result = {}
        for key, parse in (("cpus", parse_cpus), ("memory", parse_bytes)):
            if given.get(key) is not None:
                result[key] = _text(given[key])
                with self._at(*path, "deploy", "resources", kind, key):
                    parse(result[key], key)
        return result

    def _policy(self, deploy: dict[str, Any], key: str, path: tuple) -> PolicyOptions:
        given = deploy.get(key) or {}
        ratio = given.get("max_failure_ratio")
        return PolicyOptions(
            parallelism=given.get("parallelism"),
            delay=self._duration(given, "delay", *path, "deploy", key),
            monitor=self._duration(given, "monitor", *path, "deploy", key),
            failure_action=given.get("failure_action"),
            max_failure_ratio=None if ratio is None else _text(ratio),
            order=given.get("order"),
        )

    def _health(self, check: dict[str, Any] | None, path: tuple) -> dict[str, Any]:
        """build_spec's health options: `test` is CMD (run through the container's shell,
        as --health-cmd is), CMD-SHELL, NONE or a string; the rest are as docker's."""
        if check is None:
            return {}
        where = (*path, "healthcheck")
        test = check.get("test")
        if check.get("disable") or test in (["NONE"], "NONE"):
            return {"no_healthcheck": True}
        command = None
        if isinstance(test, str):
            command = test
        elif test:
            kind, *words = test
            if kind == "CMD":
                command = shlex.join(words)
            elif kind == "CMD-SHELL" and len(words) == 1:
                command = words[0]
            else:
                expected = "expected [CMD, …], [CMD-SHELL, command] or [NONE]"
                raise self._fail((*where, "test"), expected)
        retries = check.get("retries")
        return {
            "health_cmd": command,
            "health_interval": self._duration(check, "interval", *where),
            "health_timeout": self._duration(check, "timeout", *where),
            "health_start_period": self._duration(check, "start_period", *where),
            "health_retries": None if retries is None else int(retries),
        }

    def _environment(self, body: dict[str, Any], path: tuple) -> list[str]:
        """env_file values, overridden by `environment`; a bare KEY takes the variable's
        value from the deploying environment, and is left out (listed as ignored) if unset."""
        variables: dict[str, Any] = {}
        env_files = body.get("env_file") or []
        for index, file in enumerate([env_files] if isinstance(env_files, str) else env_files):
            host_path = self._host_path(file)
            if not Path(host_path).is_file():
                raise self._fail(
                    (*path, "env_file", index), f"{host_path}: {_not_a_file(host_path)}"
                )
            variables.update(dotenv_values(host_path))
        variables.update(_as_mapping(body.get("environment")))
        env = []
        for key, value in variables.items():
            if value is None:
                value = self.variables.get(key)
                if value is None:
                    self._ignore(*path, "environment", key)
                    continue
            item = f"{key}={_text(value)}"
            with self._at(*path, "environment", key):
                parse_env([item])
            env.append(item)
        return env

    def _ports(self, ports: list[Any], path: tuple) -> list[str]:
        """`--publish` texts; a host IP is not supported (listed as ignored)."""
        texts = []
        for index, port in enumerate(ports):
            where = (*path, "ports", index)
            if isinstance(port, dict):
                if port.get("host_ip"):
                    self._ignore(*where, "host_ip")
                keys = ("target", "published", "protocol", "mode")
                text = ",".join(f"{k}={port[k]}" for k in keys if k in port)
            else:
                text = str(port)
                parts = text.split(":")
                if len(parts) == 3:
                    self._ignore(*where)  # HOST_IP:PUBLISHED:TARGET
                    text = ":".join(parts[1:])
                if "-" in text:
                    raise self._fail(where, f"{_show(str(port))}: port ranges are not supported")
            with self._at(*where):
                parse_publish(text)
            texts.append(text)
        return texts

    def _service_networks(
        self, service: str, value: Any, path: tuple
    ) -> dict[str, tuple[str, ...]]:
        """Each network's name and the service's aliases on it: as docker's, the service
        key (`db`) and the file's `aliases:`."""
        wanted = _network_mapping(value) or {DEFAULT_NETWORK: None}
        declared = self.document.get("networks") or {}
        networks = {}
        for key, options in wanted.items():
            where = (*path, "networks", key)
            if key not in declared and key != DEFAULT_NETWORK:
                raise self._fail(where, _undefined("networks", key))
            options = options or {}
            self._ignore_others(options, ALIASES, *where)
            aliases = (service, *(a for a in options.get("aliases") or () if a != service))
            for alias in aliases:
                if not _ALIAS_RE.fullmatch(alias):
                    raise self._fail((*where, "aliases"), f"{_show(alias)}: {ALIAS_HELP}")
            self.used_networks[key] = None
            networks[self._object_name("networks", key, declared.get(key) or {})] = aliases
        return networks

    def _mounts(self, volumes: list[Any], path: tuple) -> tuple[MountSpec, ...]:
        mounts: list[MountSpec] = []
        for index, volume in enumerate(volumes):
            where = (*path, "volumes", index)
            fields = self._mount_fields(volume, where)
            line = io.StringIO()
            csv.writer(line, lineterminator="").writerow(f"{k}={v}" for k, v in fields)
            with self._at(*where):
                mount = parse_mount(line.getvalue())
            if any(m.target == mount.target for m in mounts):
                raise self._fail(where, f"target {mount.target} is already mounted")
            mounts.append(mount)
        return tuple(mounts)

    def _mount_fields(self, volume: Any, where: tuple) -> list[tuple[str, Any]]:
        """`--mount` fields from short (`SOURCE:TARGET[:MODE]`) or long syntax; a named
        volume takes the driver, options and labels of its top-level definition."""
        if isinstance(volume, str):
            parts = volume.split(":")
            if len(parts) > 3:
                raise self._fail(where, f"{_show(volume)}: expected [SOURCE:]TARGET[:MODE]")
            source, target = ("", parts[0]) if len(parts) == 1 else (parts[0], parts[1])
            options = parts[2].split(",") if len(parts) == 3 else []
            kind = "bind" if source.startswith(("/", ".", "~")) else "volume"
            volume = {"type": kind, "source": source, "target": target}
            for option in options:
                if option in ("ro", "rw"):
                    volume["read_only"] = option == "ro"
                elif option == "nocopy" and kind == "volume":
                    volume["volume"] = {"nocopy": True}
                else:
                    self._ignore(*where, option)  # SELinux labels, propagation
        self._ignore_others(volume, MOUNT_KEYS, *where)
        self._ignore_others(volume.get("bind") or {}, frozenset(), *where, "bind")
        kind, source = volume["type"], volume.get("source", "")
        if kind not in ("volume", "bind", "tmpfs"):
            raise self._fail((*where, "type"), f"{_show(kind)}: expected volume, bind or tmpfs")
        fields: list[tuple[str, Any]] = [("type", kind)]
        if kind == "bind" and source:
            fields.append(("source", self._host_path(source)))
        elif kind == "volume" and source:
            declared = self.document.get("volumes") or {}
            if source not in declared:
                raise self._fail(where, _undefined("volumes", source))
            body = declared[source] or {}
            fields.append(("source", self._object_name("volumes", source, body)))
            if not body.get("external"):
                if body.get("driver"):
                    fields.append(("volume-driver", body["driver"]))
                opts = body.get("driver_opts") or {}
                fields += [("volume-opt", f"{k}={_text(v)}") for k, v in opts.items()]
                labels = self._stack_labels(body.get("labels"), "volumes", source, "labels")
                fields += [("volume-label", f"{k}={v}") for k, v in labels.items()]
        fields.append(("target", volume.get("target", "")))
        if volume.get("read_only"):
            fields.append(("readonly", "true"))
        if (volume.get("volume") or {}).get("nocopy"):
            fields.append(("volume-nocopy", "true"))
        size = (volume.get("tmpfs") or {}).get("size")
        if size is not None:
            fields.append(("tmpfs-size", size))
        return fields

    def _file_refs(self, kind: str, entries: list[Any], path: tuple) -> tuple[FileRef, ...]:
        """A secret's default target is its name (under /run/secrets), a config's /<name>."""
        declared = self.document.get(kind) or {}
        refs = []
        for index, entry in enumerate(entries):
            where = (*path, kind, index)
            entry = {"source": entry} if isinstance(entry, str) else entry
            source = entry.get("source")
            if not source:
                raise self._fail(where, "no source: (the name of a top-level one)")
            if source not in declared:
                raise self._fail(where, _undefined(kind, source))
            target = entry.get("target") or (source if kind == "secrets" else f"/{source}")
            if not _TARGET_RE.fullmatch(target) or ".." in target.split("/"):
                raise self._fail((*where, "target"), f"{_show(target)} is not a file path")
            mode = entry.get("mode", 0o444)
            if not isinstance(mode, int) or not 0 <= mode <= 0o7777:
                raise self._fail((*where, "mode"), f"{mode!r}: expected permission bits like 0440")
            ref = FileRef(
                source=self._object_name(kind, source, declared[source] or {}),
                target=target,
                uid=_text(entry.get("uid", "0")),
                gid=_text(entry.get("gid", "0")),
                mode=mode,
            )
            with self._at(*where):
                refs.append(check_file_ref(kind.removesuffix("s"), ref))
        return tuple(refs)

    def _hostname(self, hostname: str, path: tuple) -> str:
        if hostname and not _HOSTNAME_RE.fullmatch(hostname):
            raise self._fail(
                (*path, "hostname"),
                f"{_show(hostname)}: expected a host name (letters, digits, '-', '.');"
                " templates such as {{.Task.Slot}} are not supported",
            )
        return hostname


# --------------------------------------------------------------------------- helpers


def _dotted(path: Sequence[Any]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def _undefined(kind: str, name: str) -> str:
    return f"{kind[:-1]} {_show(name)} is not defined in the top-level {kind}"


def _text(value: Any) -> str:
    """A scalar as Compose writes it into a string: booleans lowercase, null empty."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _shown(value: Any) -> str:
    """A value from the file: a string quoted, anything else as JSON (3.8, [1], null)."""
    return _show(value) if isinstance(value, str) else cut(json.dumps(value, default=str))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _show(text: str) -> str:
    text = cut(text)
    return f"'{text}'" if text.isprintable() else repr(text)
