"""The Docker engine of one host: its Engine API over SSH and what it reports about containers."""
