import os

import pytest
from hypothesis import settings

# No per-example deadline: a timing limit is a timed assertion, and on a loaded 2-core
# machine a correct example can take longer than hypothesis' 200 ms.
settings.register_profile("swarmctl", deadline=None)
settings.load_profile("swarmctl")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--lab",
        action="store_true",
        help="also run the integration tests on a local netns lab (needs root)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--lab"):
        if os.geteuid() != 0:
            raise pytest.UsageError("--lab needs root: the lab is made of network namespaces")
        return
    skip = pytest.mark.skip(reason="lab test: run with --lab (as root)")
    for item in items:
        if "lab" in item.keywords:
            item.add_marker(skip)
