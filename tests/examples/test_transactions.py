"""The mainframe-style transaction runtime's acceptance (examples/transactions/ACCEPTANCE.md)."""

from tests.examples.acceptance import load

globals().update(load("transactions"))
