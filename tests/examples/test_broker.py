"""The broker integration's acceptance (examples/broker/ACCEPTANCE.md)."""

from tests.examples.acceptance import load

globals().update(load("broker"))
