"""Rendering the shell templates in templates/: strict, and every value quoted by `q`.

The package finds them as its own data (`swarmctl/templates` links to the checkout's
`templates/`, and a wheel carries them there), so an installed swarmctl needs no checkout.
"""

import functools
import ipaddress
import re
import shlex
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import jinja2


def environment(loader: object) -> "jinja2.Environment":
    """A strict environment over `loader`, with the quoting filters every template uses."""
    import jinja2

    env = jinja2.Environment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["q"] = lambda value: shlex.quote(str(value))
    # For places no quoting can protect (iptables-restore input): an address or an error.
    env.filters["ipv4"] = lambda value: str(ipaddress.IPv4Address(value))
    env.filters["ipv4net"] = lambda value: str(ipaddress.IPv4Network(value))
    env.filters["iface"] = lambda value: _matching(value, r"[A-Za-z0-9_.-]{1,15}", "interface")
    env.filters["proto"] = lambda value: _matching(value, r"tcp|udp|sctp", "protocol")
    return env


@functools.cache
def _packaged() -> "jinja2.Environment":
    import jinja2

    return environment(jinja2.PackageLoader("swarmctl", "templates"))


def _matching(value: object, pattern: str, what: str) -> str:
    if not re.fullmatch(pattern, str(value)):
        raise ValueError(f"not a valid {what}: {value!r}")
    return str(value)


def render(name: str, **values: object) -> str:
    return _packaged().get_template(name).render(**values)
