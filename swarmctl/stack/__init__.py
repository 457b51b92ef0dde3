"""Stacks: services, networks, volumes, secrets and configs deployed together from
Compose files, named `<stack>_<name>` and labelled as `docker stack deploy` does."""
