"""Fixtures for tests on real hosts: a lab of their own ("t"), up once per session.

The test lab has its own prefix and subnet, so a lab a user left up is not touched.
"""

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from swarmctl.lab.layout import LabHost, LabLayout
from swarmctl.lab.manager import Lab

# Another name lets two test runs share the machine (each lab has its own prefix and subnet).
TEST_LAB = os.environ.get("SWARMCTL_TEST_LAB", "t")
pytestmark = pytest.mark.lab


@dataclass
class RunningLab:
    lab: Lab
    hosts: list[LabHost]

    @property
    def layout(self) -> LabLayout:
        return self.lab.layout

    def host(self, name: str) -> LabHost:
        return next(h for h in self.hosts if h.name == name)

    def ssh(self, name: str, command: str, check: bool = True) -> subprocess.CompletedProcess:
        argv = self.lab.ssh_argv(name, [command])
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(f"{name}: {command}: {result.stderr.strip()}")
        return result


def swarmctl(
    *args: str, env: dict | None = None, check: bool = False, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess, as a user would."""
    result = subprocess.run(
        [sys.executable, "-m", "swarmctl", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"swarmctl {' '.join(args)} failed: {result.stderr.strip()}")
    return result


@pytest.fixture(scope="session")
def lab() -> RunningLab:
    the_lab = Lab(LabLayout(TEST_LAB), say=lambda _: None)
    the_lab.down()  # leftovers of an interrupted run
    hosts = the_lab.up(3)
    yield RunningLab(the_lab, hosts)
    the_lab.down()


@pytest.fixture(scope="session")
def lab_record(lab: RunningLab) -> dict:
    return json.loads(Path(lab.layout.description).read_text())
