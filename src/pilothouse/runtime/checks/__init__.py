"""Readiness checks: config entries become probes; the runner runs and caches them."""

from pilothouse.runtime.checks.factory import build_checks
from pilothouse.runtime.checks.python import check
from pilothouse.runtime.checks.result import Check, CheckFailed, CheckResult
from pilothouse.runtime.checks.runner import CheckRunner, ReadinessReport

__all__ = ["Check", "CheckFailed", "CheckResult", "CheckRunner", "ReadinessReport", "build_checks", "check"]
