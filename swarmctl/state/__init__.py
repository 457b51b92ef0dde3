"""Cluster state: one JSON file per cluster on the control node, read and written via TinyDB.

What the tables mean belongs to the callers; this package only keeps the file whole and
the writers in turn.
"""

from swarmctl.state.storage import SCHEMA_VERSION
from swarmctl.state.store import StateStore

__all__ = ["SCHEMA_VERSION", "StateStore"]
