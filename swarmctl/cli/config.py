"""`swarmctl config create|ls|inspect|rm|update`: configs, made as secrets are (cli/secret.py)."""

from swarmctl.cli.secret import make_app

app = make_app("config")
