"""Sockets opened inside a named network namespace, without moving the whole process.

swarmctl talks to lab hosts from the lab's control namespace, so that no packet for a
lab address is ever sent from the root namespace (where the default route would carry
it off the machine). setns() only switches the calling thread, and a socket keeps the
namespace it was created in, so we switch, create the socket and switch back. A host
name is looked up there too, as a program run by `ip netns exec` would (its
/etc/netns/<name>/hosts and resolv.conf, its queries sent from inside); an address is
used as it is, with no lookup at all.
"""

import ctypes
import os
import socket
import subprocess

from swarmctl.errors import SwarmctlError

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def netns_exists(name: str) -> bool:
    return os.path.exists(os.path.join(NETNS_DIR, name))


def socket_in(
    netns: str, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM
) -> socket.socket:
    """A new socket that lives in network namespace `netns`."""
    path = os.path.join(NETNS_DIR, netns)
    try:
        target = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise SwarmctlError(
            f"network namespace {netns} does not exist (is the lab up? `swarmctl lab up`)"
        ) from None
    except PermissionError:
        raise SwarmctlError(f"network namespace {netns}: permission denied (run as root)") from None
    try:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            try:
                _setns(target)
            except OSError as exc:
                raise SwarmctlError(f"network namespace {netns}: {exc.strerror}") from None
            try:
                return socket.socket(family, kind)
            finally:
                _setns(home)
        finally:
            os.close(home)
    finally:
        os.close(target)


def connect(address: str, port: int, *, netns: str, timeout: float) -> socket.socket:
    """A TCP connection to address:port, made from `netns`."""
    family, address = resolve(address, netns, timeout)
    sock = socket_in(netns, family)
    sock.settimeout(timeout)
    try:
        sock.connect((address, port))
    except BaseException:
        sock.close()
        raise
    return sock


def resolve(host: str, netns: str, timeout: float) -> tuple[int, str]:
    """(family, address) of `host` as seen from inside `netns`."""
    try:
        (found, *_) = socket.getaddrinfo(host, None, flags=socket.AI_NUMERICHOST)
        return found[0], host
    except socket.gaierror:
        pass  # a name
    try:
        result = subprocess.run(
            ["ip", "netns", "exec", netns, "getent", "ahosts", host],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise socket.gaierror(f"{host}: no answer within {timeout:g} s in {netns}") from None
    for line in result.stdout.splitlines():
        address, *kind = line.split()
        if kind[:1] == ["STREAM"]:
            return (socket.AF_INET6 if ":" in address else socket.AF_INET), address
    raise socket.gaierror(f"{host}: unknown in network namespace {netns}")
