"""A resolver that never answers: every lookup sent to it waits its full timeout.

Run inside the lab's control namespace (`swarmctl lab control` points /etc/resolv.conf at
it), it stands for an ops laptop whose DNS is dead, and logs each query as "<name> <type>"
so tests can count the lookups a command made.
"""

from __future__ import annotations

import socket
import struct
import sys

PORT = 53
_TYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA"}


def question(packet: bytes) -> tuple[str, str] | None:
    """The (name, type) asked by a DNS query, None for a packet that is not one."""
    labels = []
    at = 12  # after the header
    try:
        while packet[at]:
            length = packet[at]
            if length & 0xC0:  # a compression pointer has no place in a question
                return None
            labels.append(packet[at + 1 : at + 1 + length].decode("ascii", "replace"))
            at += 1 + length
        (qtype,) = struct.unpack_from("!H", packet, at + 1)
    except (IndexError, struct.error):
        return None
    return ".".join(labels) + ".", _TYPES.get(qtype, f"TYPE{qtype}")


def serve(address: str, log_path: str) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((address, PORT))
    with open(log_path, "a", buffering=1) as log:
        while True:
            packet, _ = sock.recvfrom(4096)
            asked = question(packet)
            if asked:
                log.write(f"{asked[0]} {asked[1]}\n")


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2])
