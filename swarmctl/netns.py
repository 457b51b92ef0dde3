"""Sockets opened inside a named network namespace, without moving the whole process.

swarmctl talks to lab hosts from the lab's control namespace, so that no packet for a
lab address is ever sent from the root namespace (where the default route would carry
it off the machine). setns() only switches the calling thread, and a socket keeps the
namespace it was created in, so we switch, create the socket and switch back.
"""

import ctypes
import os
import socket

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


def connect(address: str, port: int, *, netns: str | None, timeout: float) -> socket.socket:
    """A TCP connection to address:port, made from `netns` when given."""
    sock = socket_in(netns) if netns else socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect((address, port))
    except BaseException:
        sock.close()
        raise
    return sock
