"""Rendering the shell templates in templates/: strict, and every value quoted by `q`."""

import functools
import ipaddress
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
    return env


def render(name: str, **values: object) -> str:
    return _environment().get_template(name).render(**values)
