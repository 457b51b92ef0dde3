"""The package as a user installs it: a wheel in a fresh virtualenv, outside the checkout."""

import subprocess
import sys
from pathlib import Path

import pytest

from swarmctl.lab.layout import LabLayout

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
# A lab of this test's own: it is brought up and down by the installed command.
PACKAGE_LAB = "pk"

RENDER_EVERY_TEMPLATE = """
import importlib.resources, sys
from swarmctl.commands import render
root = importlib.resources.files("swarmctl") / "templates"
names = sorted(f"{d.name}/{f.name}" for d in root.iterdir() if d.is_dir() for f in d.iterdir())
for name in names:
    render._packaged().get_template(name)  # parses, so a missing file or include fails here
assert render.render("host/facts.sh.j2").startswith("#")
print("\\n".join(names))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bin/ of a fresh virtualenv holding only the built wheel (with its lab extra)."""
    root = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", root, REPO],
        check=True,
        cwd=root,
    )
    (wheel,) = root.glob("swarmctl-*.whl")
    subprocess.run([sys.executable, "-m", "venv", root / "venv"], check=True)
    bin_dir = root / "venv" / "bin"
    subprocess.run(
        [bin_dir / "pip", "install", "-q", f"swarmctl[lab] @ {wheel.as_uri()}"],
        check=True,
        cwd=root,
    )
    return bin_dir


def run(bin_dir: Path, *argv: str) -> subprocess.CompletedProcess:
    # From the virtualenv's own folder, so nothing of the checkout can be imported.
    return subprocess.run(
        argv, cwd=bin_dir.parent, capture_output=True, text=True, timeout=300, check=False
    )


def test_the_wheel_carries_every_template_and_renders_them(installed: Path) -> None:
    result = run(installed, str(installed / "python"), "-c", RENDER_EVERY_TEMPLATE)
    assert result.returncode == 0, result.stderr
    shipped = result.stdout.split()
    in_checkout = sorted(
        str(p.relative_to(REPO / "templates")) for p in (REPO / "templates").glob("*/*")
    )
    assert shipped == in_checkout
    module = run(
        installed, str(installed / "python"), "-c", "import swarmctl; print(swarmctl.__file__)"
    )
    assert str(installed.parent) in module.stdout, "the checkout was imported, not the wheel"


def test_the_wheel_carries_the_compose_schema_and_loads_the_example_stack(installed: Path) -> None:
    example = REPO / "docs" / "examples" / "stack.yml"
    load = f"from swarmctl.stack.compose import load; print(load([{str(example)!r}], 'demo', {{}}))"
    result = run(installed, str(installed / "python"), "-c", load)
    assert result.returncode == 0, result.stderr
    assert "name='demo_web'" in result.stdout


def test_the_installed_command_answers_help(installed: Path) -> None:
    result = run(installed, str(installed / "swarmctl"), "--help")
    assert result.returncode == 0, result.stderr
    assert "service" in result.stdout and "network" in result.stdout


def test_the_installed_command_brings_a_lab_up_and_down(installed: Path) -> None:
    swarmctl = str(installed / "swarmctl")
    try:
        up = run(installed, swarmctl, "lab", "up", "--hosts", "1", "--lab", PACKAGE_LAB)
        assert up.returncode == 0, up.stderr
        status = run(installed, swarmctl, "lab", "status", "--lab", PACKAGE_LAB)
        assert status.returncode == 0, status.stderr
        assert "manager1" in status.stdout
    finally:
        down = run(installed, swarmctl, "lab", "down", "--lab", PACKAGE_LAB)
    assert down.returncode == 0, down.stderr
    assert not LabLayout(PACKAGE_LAB).dir.exists()
