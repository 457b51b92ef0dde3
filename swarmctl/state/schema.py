"""The shape of every document the cluster state holds, checked whenever a file is read.

A document of the wrong shape (valid JSON, wrong fields or types, e.g. an edited or
foreign file) is refused here in one line naming the table, record and field, rather
than failing later as a TypeError deep in a command. msgspec checks a document against
the model's dataclass; fields it does not know are left alone (newer files still load).
"""

from pathlib import Path
from typing import Any

import msgspec

from swarmctl.errors import SwarmctlError, cut
from swarmctl.models import Cluster, Network, Node, SecretsKey, Service, StoredFile, Task
from swarmctl.stack.model import StackDeploy
from swarmctl.state.leases import Lease

MODELS: dict[str, type] = {
    "cluster": Cluster,
    "nodes": Node,
    "networks": Network,
    "services": Service,
    "tasks": Task,
    "leases": Lease,
    "secrets": StoredFile,
    "configs": StoredFile,
    "secrets_key": SecretsKey,
    "stack_deploys": StackDeploy,
}


def check_documents(tables: dict[str, dict[str, Any]], path: Path, remedy: str) -> None:
    for name, model in MODELS.items():
        for doc_id, doc in tables.get(name, {}).items():
            try:
                msgspec.convert(doc, model)
            except msgspec.ValidationError as exc:
                raise SwarmctlError(
                    f"state file {path} is corrupt (table {name!r}, record {doc_id}: "
                    f"{cut(str(exc), 200)}){remedy}"
                ) from None
