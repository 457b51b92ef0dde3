"""Fixtures for tests on real hosts: a lab of their own ("t"), up once per session.

The test lab has its own prefix and subnet, so a lab a user left up is not touched.
"""

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from swarmctl.lab.layout import LabHost, LabLayout
from swarmctl.lab.manager import Lab

# Another name lets two test runs share the machine (each lab has its own prefix and subnet).
TEST_LAB = os.environ.get("SWARMCTL_TEST_LAB", "t")
# Tests marked `@pytest.mark.modes("online", "offline")` also run on a second lab brought up
# with --offline (no registry on the hosts) and drive swarmctl from its control namespace,
# whose resolver never answers; the others run online only.
LAB_NAMES = {"online": TEST_LAB, "offline": f"{TEST_LAB}x"}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "lab" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("modes")
        modes = marker.args if marker else ("online",)
        metafunc.parametrize("lab", modes, indirect=True, scope="session")


pytestmark = pytest.mark.lab


@dataclass
class RunningLab:
    lab: Lab
    hosts: list[LabHost]
    offline: bool = False

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


def interruptible() -> None:
    """preexec_fn of a child a test will Ctrl-C. A runner started in the background
    (`nohup … &`, some CI shells) has SIGINT ignored; children inherit that, and Python
    then never raises KeyboardInterrupt, so the test would see the command run on."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def swarmctl(
    *args: str,
    env: dict | None = None,
    check: bool = False,
    timeout: float = 300,
    lab: Lab | None = None,
) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess, as a user would; with `lab`, from its control
    namespace, as from an ops laptop whose DNS does not answer."""
    argv = [sys.executable, "-m", "swarmctl", *args]
    result = subprocess.run(
        lab.control_argv(argv) if lab else argv,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"swarmctl {' '.join(args)} failed: {result.stderr.strip()}")
    return result


@pytest.fixture(scope="session")
def lab(request: pytest.FixtureRequest) -> RunningLab:
    offline = request.param == "offline"
    the_lab = Lab(LabLayout(LAB_NAMES[request.param]), say=lambda _: None)
    the_lab.down()  # leftovers of an interrupted run
    hosts = the_lab.up(3, offline=offline)
    yield RunningLab(the_lab, hosts, offline)
    the_lab.down()


@pytest.fixture(scope="session")
def lab_record(lab: RunningLab) -> dict:
    return json.loads(Path(lab.layout.description).read_text())


# Everything a test or any swarmctl cluster leaves on a lab host: used between tests.
WIPE_HOST = r"""
docker ps -aq | xargs -r docker rm -f >/dev/null
docker volume ls -q | xargs -r docker volume rm -f >/dev/null
docker network ls -q --filter label=swarmctl.cluster.id | xargs -r docker network rm >/dev/null
for dev in $(ip -o link show type vxlan | awk -F': ' '{sub(/@.*/, "", $2); print $2}'); do
    case "$dev" in swv*) ip link del "$dev" ;; esac
done
for table in raw filter nat; do
    iptables -t $table -S | grep -E '^-A [A-Z-]+ .*-j (SWARMCTL-|SW[IV]-)' | sed 's/^-A/-D/' \
        | while read -r rule; do eval iptables -t $table $rule; done
    ours=$(iptables -t $table -S | awk '$1 == "-N" && $2 ~ /^(SWARMCTL-|SW[IV]-)/ {print $2}')
    for chain in $ours; do iptables -t $table -F "$chain"; done
    for chain in $ours; do iptables -t $table -X "$chain"; done
done
while arptables -D INPUT -j SWARMCTL-ARP 2>/dev/null; do :; done
arptables -F SWARMCTL-ARP 2>/dev/null && arptables -X SWARMCTL-ARP
true
"""


@dataclass
class Cluster:
    """A fresh cluster state on the lab, driven through the real CLI."""

    lab: RunningLab
    env: dict
    dead_dns: bool = False  # run swarmctl from the control namespace, resolver dead

    def __call__(
        self, *args: str, check: bool = True, timeout: float = 300, warnings: bool = False
    ):
        """Run swarmctl; with check, it must succeed and, unless `warnings`, warn of nothing."""
        result = swarmctl(
            *args,
            env=self.env,
            check=check,
            timeout=timeout,
            lab=self.lab.lab if self.dead_dns else None,
        )
        if check and not warnings and unexpected_warnings(result.stderr, self.lab.offline):
            raise AssertionError(f"swarmctl {' '.join(args)} warned: {result.stderr.strip()}")
        return result

    def popen(self, *args: str, env: dict | None = None, **kwargs) -> subprocess.Popen:
        """Start swarmctl in the background, from where __call__ runs it."""
        argv = [sys.executable, "-m", "swarmctl", *args]
        return subprocess.Popen(
            self.lab.lab.control_argv(argv) if self.dead_dns else argv,
            env=env or self.env,
            **kwargs,
        )


UNRESOLVED = "could not be resolved to a digest"


def unexpected_warnings(stderr: str, offline: bool) -> list[str]:
    """Warning lines, but for the one a registry that cannot be reached is meant to cause."""
    found = [line for line in stderr.splitlines() if "Warning" in line]
    return [line for line in found if not offline or UNRESOLVED not in line]


@pytest.fixture
def cluster(lab: RunningLab, tmp_path: Path) -> Cluster:
    env = {
        **os.environ,
        "SWARMCTL_INVENTORY": str(lab.layout.inventory),
        "SWARMCTL_STATE": str(tmp_path / "state.json"),
    }
    env.pop("SWARMCTL_LAB", None)
    yield Cluster(lab, env, dead_dns=lab.offline)
    for host in lab.hosts:
        if lab.lab._running(host):
            lab.ssh(host.name, WIPE_HOST, check=False)
