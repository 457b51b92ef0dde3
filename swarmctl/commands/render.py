"""Rendering the shell templates in templates/: strict, and every value quoted by `q`."""

import functools
import ipaddress
import re
import shlex
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


@functools.cache
def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["q"] = lambda value: shlex.quote(str(value))
    # For places no quoting can protect (iptables-restore input): an address or an error.
    env.filters["ipv4"] = lambda value: str(ipaddress.IPv4Address(value))
    env.filters["iface"] = lambda value: _matching(value, r"[A-Za-z0-9_.-]{1,15}", "interface")
    env.filters["proto"] = lambda value: _matching(value, r"tcp|udp|sctp", "protocol")
    return env


def _matching(value: object, pattern: str, what: str) -> str:
    if not re.fullmatch(pattern, str(value)):
        raise ValueError(f"not a valid {what}: {value!r}")
    return str(value)


def render(name: str, **values: object) -> str:
    return _environment().get_template(name).render(**values)
