"""swarmctl: agentless container orchestration over SSH, in the spirit of Docker swarm mode."""

__version__ = "0.1.0"
