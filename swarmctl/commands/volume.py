"""docker CLI command lines for a node's volumes (built here, run by the caller)."""

from collections.abc import Mapping

from swarmctl.naming import LABEL_CLUSTER


def create(name: str, cluster_id: str, driver: str, options: Mapping[str, str]) -> list[str]:
    argv = ["docker", "volume", "create", "--driver", driver or "local"]
    for key, value in options.items():
        argv += ["--opt", f"{key}={value}"]
    return [*argv, "--label", f"{LABEL_CLUSTER}={cluster_id}", name]


def remove(name: str) -> list[str]:
    return ["docker", "volume", "rm", name]
