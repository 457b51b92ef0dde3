"""The helpers' built-in image: a static ELF per architecture, in a tar for docker import."""

import gzip
import io
import platform
import shutil
import signal
import struct
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from swarmctl import pause


@pytest.mark.parametrize(("arch", "machine"), [("amd64", 62), ("arm64", 183)])
def test_the_program_is_a_static_elf64_executable_for_its_machine(arch: str, machine: int) -> None:
    program = pause.elf(arch)
    assert program[:4] == b"\x7fELF"
    assert program[4:6] == b"\x02\x01"  # 64-bit, little-endian
    kind, got_machine, _, entry, phoff = struct.unpack("<HHIQQ", program[16:40])
    assert (kind, got_machine, phoff) == (2, machine, 64)
    p_type, flags, offset, vaddr, _, filesz, memsz, _ = struct.unpack("<IIQQQQQQ", program[64:120])
    assert (p_type, flags, offset, filesz, memsz) == (1, 5, 0, len(program), len(program))
    assert vaddr <= entry < vaddr + filesz


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_the_archive_is_a_gzipped_tar_holding_the_executable_program(arch: str) -> None:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(pause.archive(arch)))) as tar:
        (member,) = tar.getmembers()
        assert member.name == "pause" and member.mode == 0o755
        assert tar.extractfile(member).read() == pause.elf(arch)


def test_the_archive_is_the_same_every_time() -> None:
    assert pause.archive("amd64") == pause.archive("amd64")


def test_uname_names_map_to_dockers() -> None:
    assert [pause.docker_arch(m) for m in ("x86_64", "aarch64", "arm64", "riscv64")] == [
        "amd64",
        "arm64",
        "arm64",
        "",
    ]


RUNNERS = {"amd64": [], "arm64": ["qemu-aarch64-static"]}


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_the_program_waits_until_sigterm_and_exits_0(arch: str, tmp_path: Path) -> None:
    runner = RUNNERS[arch]
    if (runner and not shutil.which(runner[0])) or (not runner and platform.machine() != "x86_64"):
        pytest.skip(f"cannot run {arch} code here")
    program = tmp_path / "pause"
    program.write_bytes(pause.elf(arch))
    program.chmod(0o755)
    process = subprocess.Popen([*runner, str(program)])
    time.sleep(0.3)
    assert process.poll() is None  # still waiting
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
