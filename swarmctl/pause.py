"""The built-in image of the virtual-IP helpers: `swarmctl/pause:1`, made here, never pulled.

A helper only has to hold an address and a name on a network, so its image is one static
ELF program (a few hundred bytes, hand-assembled below for x86_64 and aarch64) that waits
for SIGTERM or SIGINT and exits 0. The nodes `docker import` it from a gzipped tar that
the converge script carries, so an air-gapped node needs no registry for the mesh (pure).
"""

import base64
import gzip
import io
import struct
import tarfile

IMAGE = "swarmctl/pause:1"
PROGRAM = "/pause"

# Block SIGINT and SIGTERM, then rt_sigtimedwait for them (a PID 1 ignores signals it has
# no handler for, but never blocked ones); exit_group(0) once one came. The signal set,
# 1 << (2 - 1) | 1 << (15 - 1), closes each program; addressing is PC-relative.
_CODE = {
    # xor edi,edi; lea rsi,[rip+set]; xor edx,edx; mov r10d,8; mov eax,14 (rt_sigprocmask);
    # syscall; loop: lea rdi,[rip+set]; xor esi,esi; xor edx,edx; mov r10d,8;
    # mov eax,128 (rt_sigtimedwait); syscall; test rax,rax; js loop; xor edi,edi;
    # mov eax,231 (exit_group); syscall; set: .quad 0x4002
    "amd64": (
        62,
        "31ff488d353500000031d241ba08000000b80e0000000f05488d3d1f00000031f631d241ba0800"
        "0000b8800000000f054885c078e331ffb8e70000000f050240000000000000",
    ),
    # mov x0,#0; adr x1,set; mov x2,#0; mov x3,#8; mov x8,#135 (rt_sigprocmask); svc #0;
    # loop: adr x0,set; mov x1,#0; mov x2,#0; mov x3,#8; mov x8,#137 (rt_sigtimedwait);
    # svc #0; tbnz x0,#63,loop; mov x0,#0; mov x8,#94 (exit_group); svc #0; set: .quad 0x4002
    "arm64": (
        183,
        "000080d2e1010010020080d2030180d2e81080d2010000d440010010010080d2020080d2030180d2"
        "281180d2010000d440ffffb7000080d2c80b80d2010000d40240000000000000",
    ),
}
# Docker's and Go's names for what `uname -m` (node facts) says.
ARCHITECTURES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
_BASE = 0x400000
_HEADERS = 64 + 56  # ELF header, one program header


def docker_arch(machine: str) -> str:
    """Docker's name for an architecture as `uname -m` or Docker say it ("" if unknown)."""
    return ARCHITECTURES.get(machine.strip().lower(), "")


def elf(arch: str) -> bytes:
    """A static ELF64 executable: one read+execute segment holding headers and code."""
    machine, code_hex = _CODE[arch]
    code = bytes.fromhex(code_hex)
    size = _HEADERS + len(code)
    header = struct.pack(
        "<4sBBBBB7xHHIQQQIHHHHHH",
        b"\x7fELF",
        2,  # 64-bit
        1,  # little-endian
        1,  # ELF version
        0,  # System V ABI
        0,
        2,  # ET_EXEC
        machine,
        1,
        _BASE + _HEADERS,  # entry point: the code right after the headers
        64,  # program headers' offset
        0,  # no section headers
        0,
        64,
        56,
        1,
        64,
        0,
        0,
    )
    segment = struct.pack("<IIQQQQQQ", 1, 5, 0, _BASE, _BASE, size, size, 0x1000)
    return header + segment + code


def archive(arch: str) -> bytes:
    """The image's root file system, a gzipped tar for `docker import` (reproducible)."""
    program = elf(arch)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo(PROGRAM.lstrip("/"))
        info.size, info.mode = len(program), 0o755
        tar.addfile(info, io.BytesIO(program))
    return gzip.compress(raw.getvalue(), mtime=0)


def archive_base64(arch: str) -> str:
    return base64.b64encode(archive(arch)).decode()
