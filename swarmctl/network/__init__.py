"""Overlay networking as data: address management and per-node VXLAN state (pure)."""
