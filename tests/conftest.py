import os

import pytest


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
