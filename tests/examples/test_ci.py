"""The CI system's operations acceptance (examples/ci/ACCEPTANCE.md)."""

from tests.examples.acceptance import load

globals().update(load("ci"))
