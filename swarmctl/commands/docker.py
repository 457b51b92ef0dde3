"""docker CLI command lines for a host's engine (built here, run by the caller)."""

import shlex

from swarmctl.naming import LABEL_CLUSTER


def remove_cluster_containers(cluster_id: str) -> str:
    """Remove every container this cluster started on the host."""
    select = shlex.join(["docker", "ps", "-aq", "--filter", f"label={LABEL_CLUSTER}={cluster_id}"])
    return f"{select} | xargs -r docker rm -f"
