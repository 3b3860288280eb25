"""The monitoring stack's operations acceptance (examples/monitoring-stack/ACCEPTANCE.md)."""

from tests.examples.acceptance import load

globals().update(load("monitoring-stack"))
