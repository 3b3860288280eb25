"""The market's acceptance (examples/market/ACCEPTANCE.md)."""

from tests.examples.acceptance import load

globals().update(load("market"))
