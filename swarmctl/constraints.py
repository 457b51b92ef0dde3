"""Placement constraints and preferences: swarm's syntax, parsed and checked against a node.

Owns `node.<attribute> == | != value` and `spread=node.labels.<key>`, their validation
(errors name the constraint) and whether one node satisfies a constraint. It does not
choose nodes: that is the scheduler's job.
"""

import re
from dataclasses import dataclass

from swarmctl.errors import SwarmctlError
from swarmctl.models import Node, Role

LABEL_PREFIX = "node.labels."
ATTRIBUTES = ("node.id", "node.hostname", "node.role", "node.platform.os", "node.platform.arch")
_ATTRIBUTE_HELP = f"use {', '.join(ATTRIBUTES)} or {LABEL_PREFIX}<key>"
# The first operator splits; the non-greedy key makes "a==b!=c" split at "==".
_CONSTRAINT_RE = re.compile(r"\s*(?P<key>.*?)\s*(?P<op>==|!=)\s*(?P<value>.*?)\s*", re.DOTALL)
_SPREAD_RE = re.compile(r"\s*spread\s*=\s*(?P<key>\S+)\s*")


@dataclass(frozen=True)
class Constraint:
    """One parsed constraint: `attribute` is one of ATTRIBUTES or "node.labels"."""

    text: str
    attribute: str
    label: str  # the label key when attribute is "node.labels", else ""
    equal: bool  # `==` (True) or `!=` (False)
    value: str

    def holds(self, node: Node) -> bool:
        # Swarm compares values case-insensitively; a missing label reads as "", which
        # no value equals (values are never empty), so `!=` of a missing label holds.
        return (_attribute_of(node, self.attribute, self.label).casefold() == self.value) == (
            self.equal
        )


def _attribute_of(node: Node, attribute: str, label: str) -> str:
    match attribute:
        case "node.id":
            return node.id
        case "node.hostname":
            return node.hostname
        case "node.role":
            return node.role.value
        case "node.platform.os":
            return node.facts.os
        case "node.platform.arch":
            return node.facts.arch
        case _:
            return node.labels.get(label, "")


def parse_constraint(text: str) -> Constraint:
    """Parse `node.<attribute>==value` or `!=value`; a SwarmctlError names a bad one."""
    match = _CONSTRAINT_RE.fullmatch(text)
    if match is None:
        raise _invalid(text, "expected `==` or `!=`")
    key, operator, value = match["key"], match["op"], match["value"]
    if not key:
        raise _invalid(text, f"expected an attribute before `{operator}`")
    if not value:
        raise _invalid(text, f"expected a value after `{operator}`")
    if "=" in value:
        raise _invalid(text, "expected one `==` or `!=`")
    # Attribute names are case-insensitive, as in swarm; label keys are not.
    attribute, label = key.lower(), ""
    if attribute.startswith(LABEL_PREFIX):
        attribute, label = LABEL_PREFIX[:-1], key[len(LABEL_PREFIX) :]
        if not label or any(c.isspace() for c in label):
            raise _invalid(text, f"expected {LABEL_PREFIX}<key>")
    elif attribute not in ATTRIBUTES:
        raise _invalid(text, f"unknown attribute {key} ({_ATTRIBUTE_HELP})")
    roles = [role.value for role in Role]
    if attribute == "node.role" and value.casefold() not in roles:
        raise _invalid(text, f"node.role must be {' or '.join(roles)}")
    return Constraint(text, attribute, label, operator == "==", value.casefold())


def parse_preference(text: str) -> str:
    """Parse `spread=node.labels.<key>` and return the label key to spread over."""
    match = _SPREAD_RE.fullmatch(text)
    key = match["key"] if match else ""
    if not key.lower().startswith(LABEL_PREFIX) or len(key) == len(LABEL_PREFIX):
        raise SwarmctlError(f"placement preference '{text}': expected spread={LABEL_PREFIX}<key>")
    return key[len(LABEL_PREFIX) :]


def _invalid(text: str, why: str) -> SwarmctlError:
    return SwarmctlError(f"constraint '{text}': {why}")
