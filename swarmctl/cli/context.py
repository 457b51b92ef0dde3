"""The world a command runs in: which inventory, which state file, how to reach hosts.

Resolved lazily, so a read-only command never parses the inventory or imports SSH.
"""

import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import typer

from swarmctl.errors import SwarmctlError
from swarmctl.state import StateStore


@dataclass
class Env:
    inventory_option: str | None = None
    state_option: str | None = None
    _warned: bool = field(default=False, repr=False)

    @cached_property
    def inventory_path(self) -> Path:
        from swarmctl.inventory import inventory_path

        return inventory_path(self.inventory_option)

    @cached_property
    def inventory(self):
        from swarmctl.inventory import load_inventory

        inventory = load_inventory(self.inventory_path)
        for warning in inventory.warnings:
            print(f"Warning: {warning}", file=sys.stderr)
        return inventory

    @cached_property
    def state_path(self) -> Path:
        """--state (or $SWARMCTL_STATE), else beside the inventory: <stem>.state.json."""
        if self.state_option:
            return Path(self.state_option).expanduser()
        try:
            inventory = self.inventory_path
        except SwarmctlError:
            raise SwarmctlError(
                "no cluster selected: pass -i INVENTORY (or set "
                "SWARMCTL_INVENTORY), or --state PATH"
            ) from None
        return inventory.with_name(inventory.stem + ".state.json")

    @cached_property
    def store(self) -> StateStore:
        return StateStore(self.state_path)

    def pool(self, accept_new: bool = False, retry_unreachable: bool = False):
        """Connections to every inventory host, each opened on first use; a host that
        could not be reached is not tried again (`retry_unreachable`: it is)."""
        from swarmctl.membership import recorded_trust
        from swarmctl.transport.group import Pool

        return Pool(
            self.inventory.hosts.values(),
            recorded_trust(self.store, accept_new),
            retry_unreachable=retry_unreachable,
        )


def env(ctx: typer.Context) -> Env:
    return ctx.find_root().obj
