"""`python -m pilothouse` is the `pilothouse` command."""

from pilothouse.cli import entrypoint

entrypoint()
