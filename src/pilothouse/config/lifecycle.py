"""`[lifecycle]`: graceful shutdown, and the stop timeouts every target derives from it."""

from __future__ import annotations

import math

from pilothouse.config.base import Section
from pilothouse.durations import Duration

STOP_MARGIN_SECONDS = 5
"""Slack between the worst-case shutdown and the kill, for every target (the one place it lives)."""


class LifecycleConfig(Section):
    """Graceful shutdown: fail readiness, wait for load balancers, drain, flush, exit.

    The pod's grace period is derived, never configured: it must cover the pre-stop delay, the
    drain and the flush, or the kubelet kills the process mid-drain.
    """

    pre_stop_delay: Duration = 5.0
    drain_timeout: Duration = 20.0
    flush_timeout: Duration = 3.0
    startup_timeout: Duration = 60.0

    @property
    def shutdown_budget(self) -> float:
        """Seconds from SIGTERM to exit in the worst case (pre-stop wait, drain, flush)."""
        return self.pre_stop_delay + self.drain_timeout + self.flush_timeout

    @property
    def hard_exit_after(self) -> float:
        """Seconds from SIGTERM to the runtime's forced exit if shutdown is stuck: the budget plus
        3 s, inside the margin the stop timeouts add (STOP_MARGIN_SECONDS)."""
        return self.shutdown_budget + 3

    @property
    def stop_timeout_seconds(self) -> int:
        """SIGTERM to SIGKILL where nothing runs before SIGTERM (compose `stop_grace_period`,
        systemd `TimeoutStopSec`): the shutdown budget plus the margin."""
        return math.ceil(self.shutdown_budget + STOP_MARGIN_SECONDS)

    @property
    def pre_stop_hook_seconds(self) -> int:
        """The Kubernetes preStop hook sleeps the pre-stop delay so endpoints go before SIGTERM."""
        return math.ceil(self.pre_stop_delay)

    @property
    def pod_grace_period_seconds(self) -> int:
        """The pod's `terminationGracePeriodSeconds`: the kubelet counts the preStop hook inside
        it, so it is the hook's sleep plus the stop timeout."""
        return self.pre_stop_hook_seconds + self.stop_timeout_seconds
