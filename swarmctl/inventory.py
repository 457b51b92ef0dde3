"""Load and validate an inventory: Ansible's YAML or INI layout, group_vars/ and host_vars/.

Owns parsing, Ansible's variable precedence and the validation of every value that later
reaches SSH or a shell, with errors that name the file, host and key. It is pure: it never
connects to a host and knows nothing of clusters or state.
"""

import ast
import ipaddress
import json
import os
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swarmctl.errors import SwarmctlError, cut
from swarmctl.naming import check_label

ENV_VAR = "SWARMCTL_INVENTORY"
MANAGERS = "managers"

# Each field and the keys that set it, strongest first: at one level the short key wins.
FIELD_KEYS = {
    "address": ("address", "ansible_host", "ansible_ssh_host"),
    "user": ("user", "ansible_user", "ansible_ssh_user"),
    "port": ("port", "ansible_port", "ansible_ssh_port"),
    "key": ("key", "ansible_ssh_private_key_file", "ansible_private_key_file"),
    "labels": ("labels",),
    "iface": ("iface",),
    "known_hosts": ("known_hosts",),
    "netns": ("netns",),
    "role": ("role",),
}
PRIORITY_KEY = "ansible_group_priority"
KNOWN_KEYS = {key for keys in FIELD_KEYS.values() for key in keys} | {PRIORITY_KEY}

NAME_CHARS = "(letters, digits, '.', '_', '-')"
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_GROUP_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}")
_HOSTNAME_RE = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,251}[A-Za-z0-9_])?")
_USER_RE = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
_IFACE_RE = re.compile(r"[A-Za-z0-9_.-]{1,15}")
_SECTION_RE = re.compile(r"\[([^:\]\s]+)(?::(\w+))?\]\s*(?:[#;].*)?")
VARS_EXTENSIONS = ("", ".yml", ".yaml", ".json")  # as Ansible's host_group_vars plugin


@dataclass(frozen=True)
class InventoryHost:
    name: str
    address: str
    user: str = "root"
    port: int = 22
    key: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    iface: str | None = None
    known_hosts: str | None = None
    netns: str | None = None
    role: str = "worker"
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Inventory:
    path: Path
    hosts: dict[str, InventoryHost]
    warnings: tuple[str, ...]

    def get(self, name: str) -> InventoryHost:
        if name not in self.hosts:
            raise SwarmctlError(
                f"{self.path}: no host named {name!r} (hosts: {', '.join(self.hosts)})"
            )
        return self.hosts[name]


def inventory_path(option: str | None) -> Path:
    """The inventory to use: -i/--inventory, else $SWARMCTL_INVENTORY."""
    chosen = option or os.environ.get(ENV_VAR)
    if not chosen:
        raise SwarmctlError(f"no inventory: pass -i PATH or set {ENV_VAR}")
    return Path(chosen).expanduser()


def load_inventory(path: str | Path) -> Inventory:
    path = Path(path)
    text = _read(path)
    suffix = path.suffix.lower()
    if suffix in (".yml", ".yaml", ".json"):
        tree = _parse_yaml(path, _load_yaml(path, text))
    elif suffix in (".ini", ".cfg"):
        tree = _parse_ini(path, text)
    else:  # like Ansible, whose yaml plugin goes first and hands over what is no mapping
        try:
            data = _load_yaml(path, text)
        except SwarmctlError:
            data = None
        tree = _parse_yaml(path, data) if isinstance(data, dict) else _parse_ini(path, text)
    return _resolve(tree)


# ------------------------------------------------------------------------ reading files


def _read(path: Path) -> str:
    if path.is_dir():
        raise SwarmctlError(f"{path}: is a directory, not an inventory file")
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SwarmctlError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise SwarmctlError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise SwarmctlError(f"{path}: cannot read ({exc.strerror})") from None


def _load_yaml(path: Path, text: str) -> Any:
    import yaml  # here, not at the top: read-only commands resolve paths without parsing

    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else "?"
        raise SwarmctlError(f"{path}: YAML syntax error at line {line}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise SwarmctlError(f"{path}: YAML syntax error: {exc}") from None


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "text"}.get(type(value), type(value).__name__)


def _vars_files(folder: Path, name: str) -> list[Path]:
    """group_vars/<name>[.yml|.yaml|.json] or every such file under group_vars/<name>/."""
    for ext in VARS_EXTENSIONS:
        candidate = folder / f"{name}{ext}"
        if candidate.is_dir():
            return _dir_vars_files(candidate)
        if candidate.is_file():
            return [candidate]
    return []


def _dir_vars_files(folder: Path) -> list[Path]:
    found: list[Path] = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or entry.name.endswith("~"):
            continue
        if entry.is_dir() and not entry.suffix:
            found += _dir_vars_files(entry)
        elif entry.is_file() and entry.suffix in VARS_EXTENSIONS:
            found.append(entry)
    return found


def _file_vars(path: Path) -> dict[str, Any]:
    data = _load_yaml(path, _read(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SwarmctlError(f"{path}: expected a mapping of variables, got {_kind(data)}")
    return {str(key): value for key, value in data.items()}


# ---------------------------------------------------------------------------- parsing


@dataclass
class _Group:
    parents: set[str] = field(default_factory=set)
    vars: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Tree:
    """Groups and hosts as written, before precedence and validation."""

    path: Path
    groups: dict[str, _Group] = field(default_factory=dict)
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)  # inline vars
    member_of: dict[str, set[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.group("all")
        self.group("ungrouped").parents.add("all")

    def group(self, name: str) -> _Group:
        if not _GROUP_RE.fullmatch(name):
            raise SwarmctlError(f"{self.path}: group {name!r}: invalid name {NAME_CHARS}")
        return self.groups.setdefault(name, _Group())

    def add_host(self, group: str, pattern: str, variables: dict[str, Any]) -> None:
        name, _, port = pattern.partition(":")
        if not (port.isascii() and port.isdigit()):
            name = pattern
        else:  # `host:2222`, as Ansible reads it; a port= on the line still wins
            variables = {"ansible_port": port, **variables}
        if not _NAME_RE.fullmatch(name):
            raise SwarmctlError(f"{self.path}: host {name!r}: invalid name {NAME_CHARS}")
        self.group(group)
        self.hosts.setdefault(name, {}).update(variables)
        self.member_of.setdefault(name, set()).add(group)


def _mapping(path: Path, value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SwarmctlError(f"{path}: {what} must be a mapping, got {_kind(value)}")
    return {str(key): item for key, item in value.items()}


def _parse_yaml(path: Path, data: Any) -> _Tree:
    tree = _Tree(path)
    if data is not None and not isinstance(data, dict):
        raise SwarmctlError(
            f"{path}: expected a mapping of groups (like `all: {{hosts: ...}}`), got {_kind(data)}"
        )
    for name, entry in (data or {}).items():
        _yaml_group(tree, str(name), entry, parent=None)
    return tree


def _yaml_group(tree: _Tree, name: str, entry: Any, parent: str | None) -> None:
    group = tree.group(name)
    if parent:
        group.parents.add(parent)
    if entry is None:
        return
    if not isinstance(entry, dict):
        raise SwarmctlError(
            f"{tree.path}: group {name}: expected a mapping with hosts, vars or "
            f"children, got {_kind(entry)}"
        )
    for key, value in entry.items():
        if key == "vars":
            group.vars.update(_mapping(tree.path, value, f"group {name}: vars"))
        elif key == "hosts":
            for host, variables in _mapping(tree.path, value, f"group {name}: hosts").items():
                tree.add_host(name, host, _mapping(tree.path, variables, f"host {host}"))
        elif key == "children":
            for child, child_entry in _mapping(tree.path, value, f"group {name}: children").items():
                _yaml_group(tree, child, child_entry, parent=name)
        else:
            raise SwarmctlError(
                f"{tree.path}: group {name}: unexpected key {key!r} "
                "(expected hosts, vars or children)"
            )


def _parse_ini(path: Path, text: str) -> _Tree:
    tree = _Tree(path)
    group, kind = "ungrouped", "hosts"
    declared = {"all", "ungrouped"}
    referenced: dict[str, str] = {}  # group -> where it was named, until it is declared
    for number, raw in enumerate(text.splitlines(), 1):
        line, where = raw.strip(), f"{path}:{number}"
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            match = _SECTION_RE.fullmatch(line)
            if not match:
                raise SwarmctlError(f"{where}: invalid section header {line!r}")
            group, kind = match[1], match[2] or "hosts"
            if kind not in ("hosts", "vars", "children"):
                raise SwarmctlError(
                    f"{where}: unknown section type ':{kind}' (use :vars or :children)"
                )
            tree.group(group)
            if kind == "vars":
                referenced.setdefault(group, f"{where}: [{group}:vars] is for")
            else:
                declared.add(group)
        elif kind == "hosts":
            tree.add_host(group, *_ini_host(where, line))
        elif kind == "vars":
            key, sep, value = line.partition("=")
            if not sep or not key.strip():
                raise SwarmctlError(f"{where}: expected key=value in [{group}:vars], got {line!r}")
            tree.groups[group].vars[key.strip()] = _ini_value(value.strip())
        else:
            child = line.split("#")[0].strip()
            if not child or len(child.split()) > 1:
                raise SwarmctlError(
                    f"{where}: expected one group name per line in [{group}:children], got {line!r}"
                )
            tree.group(child).parents.add(group)
            referenced.setdefault(child, f"{where}: [{group}:children] names")
    for name, where in referenced.items():
        if name not in declared:
            raise SwarmctlError(f"{where} the group {name!r}, which is never defined")
    return tree


def _ini_host(where: str, line: str) -> tuple[str, dict[str, Any]]:
    try:
        pattern, *pairs = shlex.split(line, comments=True)
    except ValueError as exc:
        raise SwarmctlError(f"{where}: {str(exc).lower()} in {line!r}") from None
    variables: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SwarmctlError(f"{where}: expected key=value after the host name, got {pair!r}")
        variables[key] = _ini_value(value)
    return pattern, variables


def _ini_value(text: str) -> Any:
    """A Python literal becomes that value, anything else stays text (as Ansible's INI)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return text


# --------------------------------------------------------------- precedence and checks


def _resolve(tree: _Tree) -> Inventory:
    path, folder = tree.path, tree.path.parent
    for name, group in tree.groups.items():
        if name != "all" and not group.parents:
            group.parents.add("all")
    depth: dict[str, int] = {}
    for name in tree.groups:
        _depth(tree, name, depth, ())
    priority = {name: _priority(path, name, g.vars) for name, g in tree.groups.items()}

    group_files = {
        g: [(f, _file_vars(f)) for f in _vars_files(folder / "group_vars", g)] for g in tree.groups
    }

    hosts: dict[str, InventoryHost] = {}
    warnings: list[str] = []
    for name, inline in tree.hosts.items():
        groups = _ancestors(tree, tree.member_of[name])
        if groups - {"all", "ungrouped"}:
            groups.discard("ungrouped")
        else:
            groups.add("ungrouped")
        ordered = sorted(groups, key=lambda g: (depth[g], priority[g], g))  # `all` first
        # Ansible's order: inventory group vars, then group_vars/ files, then the host's own.
        levels = [(path, tree.groups[g].vars) for g in ordered]
        levels += [level for g in ordered for level in group_files[g]]
        levels.append((path, inline))
        levels += [(f, _file_vars(f)) for f in _vars_files(folder / "host_vars", name)]
        hosts[name], unknown = _host(name, levels, tuple(sorted(groups)))
        warnings += [
            f"{origin}: host {name}: unknown key {key!r} (ignored)"
            for key, origin in unknown.items()
        ]
    if not hosts:
        raise SwarmctlError(f"inventory {path}: no hosts")
    return Inventory(path=path, hosts=hosts, warnings=tuple(warnings))


def _depth(tree: _Tree, name: str, depth: dict[str, int], chain: tuple[str, ...]) -> int:
    """Longest path from `all`, which orders groups as Ansible does."""
    if name in chain:
        loop = " -> ".join((*chain[chain.index(name) :], name))
        raise SwarmctlError(f"{tree.path}: groups contain each other ({loop})")
    if name not in depth:
        parents = tree.groups[name].parents
        depth[name] = 1 + max((_depth(tree, p, depth, (*chain, name)) for p in parents), default=-1)
    return depth[name]


def _ancestors(tree: _Tree, groups: set[str]) -> set[str]:
    found, todo = set(), list(groups)
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo += tree.groups[name].parents
    return found


def _priority(path: Path, group: str, variables: dict[str, Any]) -> int:
    value = variables.pop(PRIORITY_KEY, 1)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise SwarmctlError(
            f"{path}: group {group}: {PRIORITY_KEY} {value!r} is not a number"
        ) from None


def _host(
    name: str, levels: list[tuple[Path, dict[str, Any]]], groups: tuple[str, ...]
) -> tuple[InventoryHost, dict[str, Path]]:
    chosen: dict[str, tuple[Any, Path]] = {}
    unknown: dict[str, Path] = {}
    for origin, variables in levels:
        for attr, keys in FIELD_KEYS.items():
            key = next((k for k in keys if k in variables), None)
            if key is not None:
                chosen[attr] = (variables[key], origin)
        unknown.update((key, origin) for key in variables if key not in KNOWN_KEYS)

    def value(field_name: str, check: Callable[[str, Any], Any], default: Any) -> Any:
        raw, origin = chosen.get(field_name, (None, None))
        return default if raw is None else check(f"{origin}: host {name}", raw)

    host = InventoryHost(
        name=name,
        address=value("address", _address, name),
        user=value("user", _matching("user", _USER_RE, "a valid user name"), "root"),
        port=value("port", _port, 22),
        key=value("key", _path("key"), None),
        labels=value("labels", _labels, {}),
        iface=value("iface", _matching("iface", _IFACE_RE, "a valid interface name"), None),
        known_hosts=value("known_hosts", _path("known_hosts"), None),
        netns=value("netns", _matching("netns", _NAME_RE, "a valid namespace name"), None),
        role=value("role", _role, "manager" if MANAGERS in groups else "worker"),
        groups=groups,
    )
    return host, unknown


def _text(where: str, key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise SwarmctlError(f"{where}: {key} must be text, not {_kind(value)}")
    return value


def _matching(key: str, pattern: re.Pattern[str], what: str) -> Callable[[str, Any], str]:
    def check(where: str, value: Any) -> str:
        if not pattern.fullmatch(_text(where, key, value)):
            raise SwarmctlError(f"{where}: {key} {value!r} is not {what}")
        return value

    return check


def _path(key: str) -> Callable[[str, Any], str]:
    def check(where: str, value: Any) -> str:
        if not _text(where, key, value).isprintable():
            raise SwarmctlError(f"{where}: {key} {value!r} is not a file path")
        return os.path.expanduser(value)

    return check


def _address(where: str, value: Any) -> str:
    text = _text(where, "address", value)
    ip, _, scope = text.partition("%")  # an IPv6 zone is an interface name
    try:
        ipaddress.ip_address(ip)
        if not scope or _IFACE_RE.fullmatch(scope):
            return text
    except ValueError:
        if _HOSTNAME_RE.fullmatch(text) and ".." not in text:
            return text
    shown = cut(value) if isinstance(value, str) else value
    raise SwarmctlError(f"{where}: address {shown!r} is not a hostname or IP address")


def _port(where: str, value: Any) -> int:
    if isinstance(value, str) and value.isascii() and value.isdigit():
        if len(value) > 5:  # int() of over 4,300 digits would raise a ValueError of its own
            raise SwarmctlError(f"{where}: port {cut(value)} is out of range (1-65535)")
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        shown = cut(value) if isinstance(value, str) else value
        raise SwarmctlError(f"{where}: port {shown!r} is not a number")
    if not 1 <= value <= 65535:
        shown = value if abs(value) < 10**9 else "number"
        raise SwarmctlError(f"{where}: port {shown} is out of range (1-65535)")
    return value


def _role(where: str, value: Any) -> str:
    if value not in ("manager", "worker"):
        raise SwarmctlError(f"{where}: role {value!r} is not manager or worker")
    return value


def _labels(where: str, value: Any) -> dict[str, str]:
    if isinstance(value, str):
        value = _labels_from_text(where, value.strip())
    if not isinstance(value, dict):
        raise SwarmctlError(
            f"{where}: labels must be a mapping or key=value,... text, not {_kind(value)}"
        )
    labels = {}
    for key, item in value.items():
        if isinstance(item, bool):
            item = str(item).lower()
        elif item is None or isinstance(item, int | float):
            item = "" if item is None else str(item)
        check_label(where, key, item)
        labels[key] = item
    return labels


def _labels_from_text(where: str, text: str) -> Any:
    if text.startswith("{"):
        try:
            return json.loads(text)
        except ValueError as exc:
            raise SwarmctlError(f"{where}: labels {text!r} is not a JSON object ({exc})") from None
    labels = {}
    for pair in filter(None, (part.strip() for part in text.split(","))):
        key, sep, item = pair.partition("=")
        if not sep:
            raise SwarmctlError(f"{where}: labels: {pair!r} is not key=value")
        labels[key.strip()] = item.strip()
    return labels
