"""Reaching hosts: SSH connections and running on many hosts at once."""
