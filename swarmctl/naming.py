"""Names and identifiers: object IDs, container names and labels, interface names (pure)."""

import re
import string

from swarmctl.errors import SwarmctlError, cut

ID_LENGTH = 25
_ID_ALPHABET = string.ascii_lowercase + string.digits
# Service, network and node names end up in container names, interface names and shell
# commands: keep them to what Docker accepts for a container name, minus the dot.
NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_-]{0,62}")

LABEL_PREFIX = "swarmctl."
LABEL_CLUSTER = LABEL_PREFIX + "cluster.id"
LABEL_SERVICE_ID = LABEL_PREFIX + "service.id"
LABEL_SERVICE_NAME = LABEL_PREFIX + "service.name"
LABEL_TASK_ID = LABEL_PREFIX + "task.id"
LABEL_SLOT = LABEL_PREFIX + "task.slot"
LABEL_NODE_ID = LABEL_PREFIX + "node.id"


def new_id() -> str:
    """A 25-character lowercase alphanumeric ID, as swarm's."""
    import secrets  # here: it loads OpenSSL (~3 ms), which no read-only command needs

    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(ID_LENGTH))


def valid_name(name: str) -> bool:
    return bool(NAME_RE.fullmatch(name))


def container_name(service: str, slot_or_node: int | str, task_id: str) -> str:
    """`<service>.<slot>.<task id>`, as swarm names task containers."""
    return f"{service}.{slot_or_node}.{task_id}"


LABEL_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
LABEL_KEY_CHARS = "(letters, digits, '.', '_', '-')"


# Docker keeps labels in the container's config, read back whole by every `docker ps`
# and inspect; these limits keep them to names and short values (see the README's "Limits").
LABEL_KEY_MAX = 255
LABEL_VALUE_MAX = 4096


def check_label(where: str, key: object, value: object) -> None:
    """Labels reach Docker's command line and the state file: keys are names, values one line."""
    if not isinstance(key, str) or not LABEL_KEY_RE.fullmatch(key):
        shown = cut(key) if isinstance(key, str) else key
        raise SwarmctlError(f"{where}: label {shown!r}: invalid key {LABEL_KEY_CHARS}")
    if len(key) > LABEL_KEY_MAX:
        raise SwarmctlError(f"{where}: label {cut(key)}: key longer than {LABEL_KEY_MAX}")
    if not isinstance(value, str) or not value.isprintable():
        shown = cut(value) if isinstance(value, str) else value
        raise SwarmctlError(f"{where}: label {key}: value {shown!r} is not one line of text")
    if len(value) > LABEL_VALUE_MAX:
        raise SwarmctlError(
            f"{where}: label {key}: value of {len(value)} characters, "
            f"more than the limit of {LABEL_VALUE_MAX}"
        )


def parse_key_values(pairs: list[str] | None, option: str) -> dict[str, str]:
    """`--label k=v` options to a dict (a bare `k` means an empty value, as docker)."""
    result = {}
    for pair in pairs or []:
        key, _, value = pair.partition("=")
        check_label(option, key, value)
        result[key] = value
    return result
