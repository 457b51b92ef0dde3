"""Builders of remote commands: argv lists and rendered templates, never run here."""
