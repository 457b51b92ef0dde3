"""Networking: address management, per-node VXLAN state and the routing mesh as data
(ipam, overlay, mesh, endpoints: pure), and bringing nodes to it (networking)."""
